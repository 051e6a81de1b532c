"""The model registry at the edge: which version an alias points to, and loading one version.

The service loads `models:/<name>/<version>` (the version the alias was resolved to), never
`models:/<name>@<alias>` directly: what it reports as served is exactly what it loaded, even if the
alias moves while a load is in progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd


class ModelLoadError(RuntimeError):
    """A version could not be loaded, or the registry could not say which one to load."""


class NoModelYet(ModelLoadError):
    """The registry answered: no version carries the alias (a new workspace before its first training)."""


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


class Registry:
    """MLflow's model registry for one tracking URI (a SageMaker MLflow ARN in AWS, through the
    sagemaker-mlflow plugin; an http(s) server or a local store elsewhere)."""

    def __init__(self, tracking_uri: str | None) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri or "the default tracking URI"
        try:
            if tracking_uri:
                mlflow.set_tracking_uri(tracking_uri)
                mlflow.set_registry_uri(tracking_uri)
            self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        except Exception as exc:  # e.g. an ARN without the sagemaker-mlflow plugin installed
            raise ModelLoadError(f"cannot use the tracking URI {self.tracking_uri}: {exc}") from None

    def version_of(self, name: str, alias: str) -> str:
        from mlflow.exceptions import MlflowException

        try:
            return str(self._client.get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise NoModelYet(
                    f"no version of {name!r} has the alias {alias!r} yet in {self.tracking_uri} "
                    f"(train and register one: python -m training.train): {_first_line(exc)}"
                ) from None
            raise ModelLoadError(
                f"the tracking server {self.tracking_uri} did not say which version of {name!r} "
                f"has the alias {alias!r}: {_first_line(exc)}"
            ) from None
        except Exception as exc:  # connection refused, credentials, DNS: the reason is in the message
            raise ModelLoadError(
                f"cannot reach the tracking server {self.tracking_uri} to resolve "
                f"{name}@{alias}: {type(exc).__name__}: {_first_line(exc)}"
            ) from None

    def load(self, name: str, version: str, feature_names: tuple[str, ...]) -> LoadedModel:
        return load_pyfunc(
            f"models:/{name}/{version}", name, version, feature_names, where=f" from {self.tracking_uri}"
        )


FIXED_VERSION = "fixed"
"""The one version of a fixed model: what /ready and /v1/model report for it."""


class FixedModel:
    """One model at a fixed URI (config `service.model_uri`), no registry: what a stage without MLflow serves.
    The tracker asks it like a registry; it always names the same version, so a loaded model stays, and a
    failed load is retried with the tracker's back-off."""

    tracking_uri = None

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def version_of(self, name: str, alias: str) -> str:
        return FIXED_VERSION

    def load(self, name: str, version: str, feature_names: tuple[str, ...]) -> LoadedModel:
        return load_pyfunc(self.uri, name, version, feature_names)


def load_pyfunc(uri: str, name: str, version: str, feature_names: tuple[str, ...], where: str = "") -> LoadedModel:
    """Load an MLflow model and check that it takes the contract's features (by its signature)."""
    import tempfile

    import mlflow

    try:
        # downloaded into a folder deleted once loaded (the sklearn flavour holds the model in memory): a
        # long-lived process, and a Lambda environment's 512 MB of /tmp, do not fill with every version served
        with tempfile.TemporaryDirectory(prefix="model-") as download:
            predictor = mlflow.pyfunc.load_model(uri, dst_path=download)
    except Exception as exc:
        raise ModelLoadError(f"cannot load {uri}{where}: {type(exc).__name__}: {_first_line(exc)}") from None
    metadata = predictor.metadata
    signature = metadata.signature.to_dict() if metadata.signature else None
    inputs = tuple(metadata.get_input_schema().input_names()) if metadata.signature else feature_names
    if set(inputs) != set(feature_names):
        raise ModelLoadError(
            f"{uri} expects inputs {list(inputs)}, but the contract's features are "
            f"{list(feature_names)}: train it on the curated table of this contract"
        )
    return LoadedModel(predictor, name, version, metadata.run_id, uri, signature, inputs)


def _first_line(exc: BaseException, limit: int = 500) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else repr(exc))[:limit]
