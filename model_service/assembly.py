"""The service's parts from its environment, the same wherever it runs: `python -m model_service` (a server:
the image on Fargate, `make serve`) and model_service/serverless.py (the image on Lambda)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from model_service.model import FixedModel, ModelLoadError, Registry
from model_service.settings import Settings, SettingsError, settings_from_env
from model_service.tracker import ModelTracker
from pipeline.contract import Contract, ContractError, contract_named, load_contracts

MLFLOW_CLIENT_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
"""MLflow retries a dead server for minutes by default; the tracker checks again at its next interval,
so a short retry gives /ready its reason sooner (Lambda's are shorter still: model_service/serverless.py)."""
STARTUP_ERRORS: tuple[type[Exception], ...] = (SettingsError, ContractError, ModelLoadError)
"""What `assemble` raises for settings that cannot work: the service must not start on them (exit 3, or a
failed Lambda init), with the message naming the variable and the fix."""


@dataclass(frozen=True)
class Service:
    settings: Settings
    contract: Contract
    tracker: ModelTracker
    started: str
    """What it serves and from where, for the log's first line."""


def assemble(environ: Mapping[str, str] = os.environ) -> Service:
    """Settings, the contract whose features the model takes, and the tracker of the model to serve (the fixed
    model of MODEL_SERVICE_MODEL_URI, or the registry's alias). Raises one of STARTUP_ERRORS."""
    settings = settings_from_env(environ)
    contract = contract_named(load_contracts(), settings.contract)
    if settings.contract_version not in (None, contract.contract_version):
        raise SettingsError(
            f"MODEL_SERVICE_CONTRACT_VERSION is {settings.contract_version}, but the image holds version "
            f"{contract.contract_version} of contract {contract.name}: the task definition and the image come "
            "from different commits; deploy the model-service stack and its image from one commit"
        )
    registry = FixedModel(settings.model_uri) if settings.model_uri else Registry(settings.tracking_uri)
    tracker = ModelTracker(
        model_uri=settings.source,
        interval=settings.refresh_seconds,
        resolve=lambda: registry.version_of(settings.model_name, settings.model_alias),
        load=lambda version: registry.load(settings.model_name, version, contract.features),
    )
    started = (
        f"serving the fixed model {settings.model_uri}"
        if settings.model_uri
        else f"following {settings.source} in {registry.tracking_uri} every {settings.refresh_seconds:g} s"
    )
    return Service(settings, contract, tracker, started)
