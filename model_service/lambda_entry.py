"""The Lambda function's handler (`python -m awslambdaric model_service.lambda_entry.handler`): the service is
built when Lambda imports this module, in the environment's initialisation, so that settings that cannot work
fail it with their reason (model_service/serverless.py). The process is Lambda's alone: its logging and MLflow's
client defaults are set here, as `python -m model_service` sets them for the server."""

import logging
import os
import sys

from model_service.serverless import LAMBDA_MLFLOW_CLIENT_DEFAULTS, build

# force: awslambdaric has configured the root logger with its own prefix, which the JSON metric filter of the
# model-load alarm would not match (tests/model_service/test_image.py reads the lines)
logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr, force=True)
for name, value in LAMBDA_MLFLOW_CLIENT_DEFAULTS.items():
    os.environ.setdefault(name, value)

handler = build()
