"""The model service: a FastAPI app serving the registered diabetes-progression model.
(Not a package called `app`: that would collide with the CDK entry point app.py.)"""
