"""Model training that logs to MLflow (a local store when no server is set)."""
