"""Files shipped into AWS as they are (scripts run on instances)."""
