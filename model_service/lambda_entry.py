"""The Lambda function's handler (`python -m awslambdaric model_service.lambda_entry.handler`): the service is
built when Lambda imports this module, in the environment's initialisation, so that settings that cannot work
fail it with their reason (model_service/serverless.py). The process is Lambda's alone: its logging and MLflow's
client defaults are set here, as `python -m model_service` sets them for the server."""

import logging
import os
import sys

from model_service.assembly import MLFLOW_CLIENT_DEFAULTS
from model_service.serverless import build

logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr, force=True)
for name, value in MLFLOW_CLIENT_DEFAULTS.items():
    os.environ.setdefault(name, value)

handler = build()
