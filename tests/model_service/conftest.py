"""A model trained once for the service tests, registered in a local MLflow store."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from model_service.model import LoadedModel, Registry
from pipeline.contract import Contract, load_contracts
from pipeline.registry import CHAMPION_ALIAS
from training.train import MODEL_NAME, load_features, local_tracking_uri, train_and_register


@dataclass(frozen=True)
class Served:
    tracking_uri: str
    model: LoadedModel
    contract: Contract


@pytest.fixture(scope="session")
def served(tmp_path_factory) -> Served:
    tracking_uri = local_tracking_uri(tmp_path_factory.mktemp("service-mlflow"))
    frame, source = load_features(None)
    train_and_register(frame, source, tracking_uri=tracking_uri, params={"n_estimators": 50})
    contract = load_contracts()["diabetes/patients"]
    registry = Registry(tracking_uri)
    model = registry.load(MODEL_NAME, registry.version_of(MODEL_NAME, CHAMPION_ALIAS), contract.features)
    return Served(tracking_uri, model, contract)


@pytest.fixture(scope="session")
def sample_records() -> list[dict]:
    frame, _ = load_features(None)
    contract = load_contracts()["diabetes/patients"]
    rows = frame[list(contract.features)].head(100)
    integers = {c.name for c in contract.columns if c.type == "integer"}
    return [
        {k: (int(v) if k in integers else float(v)) for k, v in row.items()} for row in rows.to_dict(orient="records")
    ]
