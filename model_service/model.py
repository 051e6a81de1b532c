"""The model registry at the edge: which version an alias points to, and loading one version.

The service loads `models:/<name>/<version>` (the version the alias was resolved to), never
`models:/<name>@<alias>` directly: what it reports as served is exactly what it loaded, even if the
alias moves while a load is in progress.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model_service.compiled import (
    COMPILED_FILE,
    NotCompiled,
    TreeEnsemble,
    compile_gradient_boosting,
    verified,
)
from model_service.events import DRIFT_NOT_MEASURED, MODEL_NOT_COMPILED, event_line
from pipeline.drift import PROFILE_FILE, Profile

logger = logging.getLogger("model_service")


class ModelLoadError(RuntimeError):
    """A version could not be loaded, or the registry could not say which one to load."""


class NoModelYet(ModelLoadError):
    """The registry answered: no version carries the alias (a new workspace before its first training)."""


@dataclass(frozen=True)
class LoadedModel:
    predictor: Any  # mlflow.pyfunc.PyFuncModel, or anything with .predict(DataFrame); None: only `compiled`
    name: str
    version: str
    run_id: str | None
    uri: str
    signature: dict[str, Any] | None
    feature_names: tuple[str, ...]  # the columns of the matrix `predict` takes, in order
    compiled: Callable[[np.ndarray], np.ndarray] | None = None
    """The model in its fastest form (model_service/compiled.py); None: predictions go through `predictor`."""
    profile: Profile | None = None
    """Its training data's profile (pipeline/drift.py), stored beside it by training; None: no drift reported."""

    @property
    def form(self) -> str:
        return "compiled" if self.compiled is not None else "mlflow pyfunc"

    def predict(self, matrix: np.ndarray) -> list[float]:
        """Predictions for a float64 matrix: one row per record, columns in `feature_names` order, NaN where a
        value is missing."""
        if self.compiled is not None:
            return list(self.compiled(matrix).tolist())
        frame = pd.DataFrame(matrix, columns=list(self.feature_names))
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
        return load_model(f"models:/{name}/{version}", name, version, feature_names, where=f" from {self.tracking_uri}")


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
        return load_model(self.uri, name, version, feature_names)


def load_model(uri: str, name: str, version: str, feature_names: tuple[str, ...], where: str = "") -> LoadedModel:
    """Load an MLflow model, check that it takes the contract's features (by its signature), in its fastest form
    (model_service/compiled.py): the arrays training stored beside it, read with NumPy alone; else the model
    through MLflow's wrapper, compiled here where a compiled form answers exactly as it does."""
    import tempfile

    import mlflow
    from mlflow.models import Model

    try:
        # downloaded into a folder deleted once loaded (what serves is held in memory): a long-lived process,
        # and a Lambda environment's 512 MB of /tmp, do not fill with every version served
        with tempfile.TemporaryDirectory(prefix="model-") as download:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=download))
            metadata = Model.load(str(local))
            inputs = _inputs(metadata, uri, feature_names)
            signature = metadata.signature.to_dict() if metadata.signature else None
            identity = (name, version, metadata.run_id, uri, signature)
            stored = _stored_ensemble(local, uri, inputs)
            profile = _stored_profile(local, uri)
            if stored is not None:
                return LoadedModel(None, *identity, stored.columns, stored.predict, profile)
            predictor = mlflow.pyfunc.load_model(str(local))
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot load {uri}{where}: {type(exc).__name__}: {_first_line(exc)}") from None
    try:
        ensemble = _compiled_here(predictor, inputs)
    except Exception as exc:  # NotCompiled, or anything else on the way: the wrapper still serves it
        reason = str(exc) if isinstance(exc, NotCompiled) else f"{type(exc).__name__}: {_first_line(exc)}"
        logger.info(event_line(MODEL_NOT_COMPILED, model=uri, reason=reason))
        return LoadedModel(predictor, *identity, inputs, profile=profile)
    return LoadedModel(predictor, *identity, ensemble.columns, ensemble.predict, profile)


def _stored_profile(local: Path, uri: str) -> Profile | None:
    """The training profile beside the model; None (and said) where there is none or it cannot be read."""
    path = local / PROFILE_FILE
    if not path.is_file():
        logger.info(event_line(DRIFT_NOT_MEASURED, model=uri, reason=f"no {PROFILE_FILE} beside the model"))
        return None
    try:
        return Profile.from_json(path.read_text(encoding="utf-8"))
    except Exception as exc:  # an optional file: whatever is wrong with it, the model serves
        logger.info(event_line(DRIFT_NOT_MEASURED, model=uri, reason=f"{PROFILE_FILE} not used: {exc}"))
        return None


def _inputs(metadata: Any, uri: str, feature_names: tuple[str, ...]) -> tuple[str, ...]:
    inputs = tuple(metadata.get_input_schema().input_names()) if metadata.signature else feature_names
    if set(inputs) != set(feature_names):
        raise ModelLoadError(
            f"{uri} expects inputs {list(inputs)}, but the contract's features are "
            f"{list(feature_names)}: train it on the curated table of this contract"
        )
    return inputs


def _stored_ensemble(local: Path, uri: str, inputs: tuple[str, ...]) -> TreeEnsemble | None:
    """The arrays training stored in the model's directory, or None (not there, or unreadable: logged)."""
    path = local / COMPILED_FILE
    if not path.exists():
        return None
    try:
        ensemble = TreeEnsemble.load(path)
    except Exception as exc:  # unreadable, another format, or answering its own check differently
        logger.info(event_line(MODEL_NOT_COMPILED, model=uri, reason=f"{COMPILED_FILE} not used: {exc}"))
        return None
    if set(ensemble.columns) != set(inputs):
        raise ModelLoadError(
            f"{uri}: its {COMPILED_FILE} takes {list(ensemble.columns)}, its signature {list(inputs)}: "
            "the file is not this model's; register the model again with python -m training.train"
        )
    return ensemble


def _compiled_here(predictor: Any, inputs: tuple[str, ...]) -> TreeEnsemble:
    """A model registered without the arrays (trained elsewhere, or before training stored them), compiled from
    its scikit-learn objects and served so only if it answers the probe as MLflow's wrapper does."""
    if "sklearn" not in predictor.metadata.flavors:
        raise NotCompiled(f"flavours {sorted(predictor.metadata.flavors)}: only sklearn models are compiled")
    ensemble = compile_gradient_boosting(predictor.get_raw_model())
    if set(ensemble.columns) != set(inputs):
        raise NotCompiled(f"the model was fitted on {list(ensemble.columns)}, its signature takes {list(inputs)}")
    return verified(ensemble, lambda rows: predictor.predict(pd.DataFrame(rows, columns=list(ensemble.columns))))


def _first_line(exc: BaseException, limit: int = 500) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else repr(exc))[:limit]
