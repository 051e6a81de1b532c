"""Loading the model once, from an MLflow model URI (models:/<name>@<alias>) or a local folder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd


class ModelLoadError(RuntimeError):
    """The model could not be loaded: the service must not start."""


@dataclass(frozen=True)
class LoadedModel:
    predictor: Any  # mlflow.pyfunc.PyFuncModel, or anything with .predict(DataFrame)
    name: str
    version: str
    run_id: str | None
    uri: str
    signature: dict[str, Any] | None
    feature_names: tuple[str, ...]

    def predict(self, rows: list[dict[str, Any]]) -> list[float]:
        frame = pd.DataFrame.from_records(rows, columns=list(self.feature_names)).astype("float64")
        return [float(p) for p in self.predictor.predict(frame)]


def load_model(uri: str, tracking_uri: str | None, feature_names: tuple[str, ...]) -> LoadedModel:
    import mlflow
    from mlflow.exceptions import MlflowException

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    try:
        predictor = mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as exc:
        where = tracking_uri or "the default tracking URI"
        raise ModelLoadError(f"cannot load the model {uri!r} ({where}): {exc}") from None
    name, version = uri, "local"
    if uri.startswith("models:/"):
        name, _, ref = uri.removeprefix("models:/").partition("@")
        version = _resolve_version(name, ref)
    metadata = predictor.metadata
    signature = metadata.signature.to_dict() if metadata.signature else None
    inputs = tuple(metadata.get_input_schema().input_names()) if metadata.signature else feature_names
    if set(inputs) != set(feature_names):
        raise ModelLoadError(f"model {uri!r} expects inputs {list(inputs)}, but the contract's features are "
                             f"{list(feature_names)}: train it on the curated table of this contract")
    return LoadedModel(predictor, name, version, metadata.run_id, uri, signature, inputs)


def _resolve_version(name: str, ref: str) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    if ref.isdigit() or not ref:
        return ref or "latest"
    return str(client.get_model_version_by_alias(name, ref).version)
