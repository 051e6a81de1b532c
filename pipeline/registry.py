"""Names in the model registry that training, the model service and the stacks share."""

MODEL_NAME = "diabetes-progression"
"""The registered model trained on the curated diabetes/patients table."""
CHAMPION_ALIAS = "champion"
"""The alias training moves on improvement and the service follows."""
