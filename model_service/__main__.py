"""Entry point of the image: settings from the environment, then the server; the model follows.

    python -m model_service [--host 0.0.0.0] [--port 8080]

The server listens at once: before a model exists (a new workspace before its first training run) it
is live (`/health` 200) and not ready (`/ready` 503 with the reason), and it picks the model up when the
alias appears. Only settings that cannot work stop it (exit 3), before it listens.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

MLFLOW_CLIENT_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
"""MLflow retries a dead server for minutes by default; the tracker checks again at its next interval,
so a short retry gives /ready its reason sooner."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_service")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 (in its container, reached through the load balancer's port)
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for name, value in MLFLOW_CLIENT_DEFAULTS.items():
        os.environ.setdefault(name, value)

    from model_service.model import FixedModel, ModelLoadError, Registry
    from model_service.settings import SettingsError, settings_from_env
    from model_service.tracker import ModelTracker
    from pipeline.contract import ContractError, contract_named, load_contracts

    try:
        settings = settings_from_env(os.environ)
        contract = contract_named(load_contracts(), settings.contract)
        if settings.contract_version not in (None, contract.contract_version):
            raise SettingsError(
                f"MODEL_SERVICE_CONTRACT_VERSION is {settings.contract_version}, but the image holds version "
                f"{contract.contract_version} of contract {contract.name}: the task definition and the image come "
                "from different commits; deploy the model-service stack and its image from one commit"
            )
        registry = FixedModel(settings.model_uri) if settings.model_uri else Registry(settings.tracking_uri)
    except (SettingsError, ContractError, ModelLoadError) as exc:
        print(f"model service not started: {exc}", file=sys.stderr)
        return 3

    import uvicorn

    from model_service.api import create_app

    tracker = ModelTracker(
        model_uri=settings.source,
        interval=settings.refresh_seconds,
        resolve=lambda: registry.version_of(settings.model_name, settings.model_alias),
        load=lambda version: registry.load(settings.model_name, version, contract.features),
    )
    print(
        f"serving the fixed model {settings.model_uri}"
        if settings.model_uri
        else f"following {settings.source} in {registry.tracking_uri} every {settings.refresh_seconds:g} s",
        file=sys.stderr,
    )
    uvicorn.run(create_app(settings, tracker, contract), host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
