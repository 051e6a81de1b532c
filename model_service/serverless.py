"""The service on AWS Lambda (config `service.mode: serverless`): the same image and the same app, behind a
function URL that takes IAM-signed requests, with no compute running between requests.

The image's entry point is replaced by the Lambda runtime interface client:

    python -m awslambdaric model_service.lambda_entry.handler

Mangum turns each function-URL event into an ASGI request to the FastAPI app (model_service/api.py), so the
API, its validation and its limits are those of the server on Fargate. A Lambda environment is frozen between
requests, so no thread follows the alias: a request checks it once `refresh_seconds` have passed since the last
check (the first request of a new environment loads the model), and the service answers before any model
exists (`/ready` and `/v1/*` 503 with the reason), as on Fargate.

Settings that cannot work fail the environment's initialisation (model_service/lambda_entry.py builds the
handler when Lambda imports it), with the message the server would print before exiting 3.
"""

from __future__ import annotations

import os
import sys

from mangum import Mangum

from model_service.api import create_app
from model_service.assembly import STARTUP_ERRORS, assemble

LAMBDA_MLFLOW_CLIENT_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "8"}
"""Tighter than the server's (model_service/assembly.py): a request waits for the alias check it triggers, and
the function's 60 s timeout must leave room to answer 503 with the reason when MLflow does not answer."""


class StartupError(RuntimeError):
    """Settings the service cannot start on (Lambda reports it as the init error)."""


def build(environ: dict[str, str] | None = None) -> Mangum:
    """The Lambda handler of the service configured by `environ` (the process's environment)."""
    try:
        service = assemble(os.environ if environ is None else environ)
    except STARTUP_ERRORS as exc:
        raise StartupError(f"model service not started: {exc}") from None
    print(service.started + " (on request: Lambda)", file=sys.stderr)
    app = create_app(service.settings, service.tracker, service.contract, following="request")
    return Mangum(app, lifespan="off")
