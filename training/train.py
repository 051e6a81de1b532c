"""Train the diabetes-progression model on the curated feature table, log it to MLflow, register a
version, and move the `champion` alias to it only when it beats the current champion, both scored on the same
held-out split of the same data (training/promotion.py); where a person approves (--require-approval: prd), it
becomes the `challenger` instead. The run records the decision and why, the comparison, a residual plot and the
feature importances.

    python -m training.train [--data build/pipeline-run/curated/<dataset>/<table> [--build N]] [--tracking-uri URI]
        [--require-approval] [--min-improvement RMSE]

The model and its table come from the contract that names the model (`model:`, pipeline/registry.py); without
--data it trains on that table's curated data from `make pipeline` where there is some, else on the bundled
sample.

With no tracking URI (option or MLFLOW_TRACKING_URI) it uses a local store inside the project,
build/mlflow (SQLite for runs and the registry, files for artifacts), so the same command runs on a
laptop and, with the workspace's MLflow ARN as tracking URI, against SageMaker managed MLflow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.builds import Build, BuildError, kept_build, pinned_folder
from pipeline.contract import Contract
from pipeline.layout import CURRENT_BUILD, LOCAL_RUN, table_prefix
from pipeline.registry import CHAMPION_ALIAS, trained_model
from training.promotion import (
    CHAMPION_AGE_METRIC,
    MODEL_DIMENSION,
    PREVIOUS_CHAMPION_TAG,
    ChampionScore,
    Decision,
    champion_age_days,
    decide,
    enough_new_rows,
)

ROOT = Path(__file__).resolve().parents[1]
LOCAL_STORE = ROOT / "build" / "mlflow"
LOCAL_CURATED = ROOT / LOCAL_RUN / "curated"
"""Where `make pipeline` leaves the curated tables (scripts/run_pipeline_local.py, its default --out)."""
MODEL_NAME = str(trained_model().model)
"""The registered model: named by its table's contract (`model:`), whose features and label it learns."""
EXPERIMENT = MODEL_NAME
CHAMPION = CHAMPION_ALIAS
METRIC = "val_rmse"  # lower is better
DEFAULT_PARAMS = {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.05, "subsample": 0.8}
SKOPS_TRUSTED_TYPES = ["numpy.dtype", "sklearn.tree._tree.Tree"]
"""MLflow stores sklearn models with skops (no pickle); these are the types of our own model to trust."""


class TrainingDataError(ValueError):
    """Training data that cannot train the model; the message names the data and what is wrong."""


@dataclass(frozen=True)
class TrainingResult:
    run_id: str
    version: str
    metrics: dict[str, float]
    champion_version: str | None
    """The champion after this run (None: none yet, a challenger waits for approval)."""
    decision: Decision
    champion_before: ChampionScore | None = None
    """The champion this run compared against, scored on this run's held-out split."""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        """Whether this version became the champion."""
        return self.decision.alias == CHAMPION


def contract() -> Contract:
    """The table the model learns from: the contract that names it (pipeline/registry.py)."""
    return trained_model()


def load_features(path: Path | str | None, build: int | None = None) -> tuple[pd.DataFrame, str]:
    """The curated table, else the bundled sample; and where it came from. A table's folder (one with the
    `_CURRENT.json` the promotion switches), on this machine or in S3 (`s3://<curated bucket>/<dataset>/<table>`:
    training in AWS), is read at its current build, or at `build` where one is pinned (while it is kept:
    pipeline/builds.py); any other local folder or file is read as Parquet."""
    if path is None:
        from pipeline.sample_data import diabetes_rows

        frame = pd.DataFrame(diabetes_rows())
        return frame, "bundled sample (scikit-learn diabetes data set)"
    if isinstance(path, str) and path.startswith("s3://"):
        return _curated_in_s3(path, build)
    path = Path(path)
    if not path.exists():
        raise TrainingDataError(
            f"training data {path} does not exist: give the curated table's folder "
            "(e.g. build/pipeline-run/curated/diabetes/patients after `make pipeline`)"
        )
    pointer = path / CURRENT_BUILD
    if not pointer.is_file():
        if build is not None:
            raise TrainingDataError(f"{path} is not a curated table's folder (no {CURRENT_BUILD}): no build to pin")
        return pd.read_parquet(path), str(path)

    def read_text(relative: str) -> str | None:
        file = path / relative
        return file.read_text(encoding="utf-8") if file.is_file() else None

    return _read_build(str(path), read_text, lambda folder: pd.read_parquet(path / folder), build)


def _read_build(
    where: str,
    read_text: Callable[[str], str | None],
    read_folder: Callable[[str], pd.DataFrame],
    build: int | None,
) -> tuple[pd.DataFrame, str]:
    """A curated table at its current build or the pinned one: `read_text` and `read_folder` take paths relative
    to the table's folder."""
    try:
        text = read_text(CURRENT_BUILD)
        if text is None:
            raise TrainingDataError(f"{where} is not a curated table's folder (no {CURRENT_BUILD})")
        current = Build.from_json(text, f"{where}/{CURRENT_BUILD}")
        prefix = table_prefix(current.dataset, current.table)
        chosen = (
            current
            if build is None
            else kept_build(lambda key: read_text(key.removeprefix(prefix)), current, pinned_folder(current, build))
        )
    except BuildError as error:
        raise TrainingDataError(f"{where}: {error}") from error
    folders = chosen.live_folders()
    if not folders:
        raise TrainingDataError(f"{where}: build {chosen.number} holds no rows: nothing to train on")
    # partition by partition (each from the build folder holding it); pandas unifies a widened column's types
    frame = pd.concat([read_folder(folder) for folder in folders], ignore_index=True)
    return frame, f"{where} build {chosen.number}"


def _curated_in_s3(uri: str, build: int | None) -> tuple[pd.DataFrame, str]:
    """A curated table in S3 (the training task's, with its role's read of the curated bucket): its pointer and
    manifests read, then only the build's folders downloaded."""
    import io

    import boto3

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/") + "/"
    s3 = boto3.client("s3")

    def read_text(relative: str) -> str | None:
        try:
            return s3.get_object(Bucket=bucket, Key=prefix + relative)["Body"].read().decode("utf-8")
        except s3.exceptions.NoSuchKey:
            return None

    def read_folder(folder: str) -> pd.DataFrame:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}{folder.strip('/')}/")
        keys = [o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"].endswith(".parquet")]
        parts = [pd.read_parquet(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())) for key in keys]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    return _read_build(uri.rstrip("/"), read_text, read_folder, build)


def default_data(spec: Contract, curated: Path = LOCAL_CURATED) -> Path | None:
    """The table's curated folder from `make pipeline`, where it has a build; else None (the bundled sample)."""
    folder = curated / table_prefix(spec.dataset, spec.table)
    return folder if (folder / CURRENT_BUILD).is_file() else None


MODEL_REQUIREMENTS = ("mlflow", "numpy", "pandas", "scikit-learn", "scipy", "skops")
"""What loading the logged model needs (MLflow's sklearn flavour, skops' format, the Pipeline's libraries)."""


def model_requirements() -> list[str]:
    """MODEL_REQUIREMENTS pinned at the versions this training ran with: stated, not inferred (MLflow's inference
    imports the model in another process, 10 s a model, and lists whatever else that process had loaded, pytest
    and rich included)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            if name != "mlflow":
                raise
            return version("mlflow-skinny")  # the training image's MLflow (training/requirements.txt): same release

    return [f"{name}=={installed(name)}" for name in MODEL_REQUIREMENTS]


def synthetic_example(spec: Contract) -> pd.DataFrame:
    """One made-up row of the features, within the contract's bounds: the middle of min..max, the first
    allowed value, else 0 (a nullable column's median imputation handles the rest)."""
    row = {}
    for name in spec.features:
        column = spec.column(name)
        if column.allowed:
            value = float(column.allowed[0])
        elif column.min is not None and column.max is not None:
            value = (column.min + column.max) / 2
            value = float(round(value)) if column.type == "integer" else value
        else:
            value = float(column.min if column.min is not None else column.max if column.max is not None else 0)
        row[name] = value
    return pd.DataFrame([row], dtype="float64")


def features_and_label(frame: pd.DataFrame, source: str, spec: Contract) -> tuple[pd.DataFrame, pd.Series]:
    """Check the table against the contract's features and label; numbers as floats."""
    needed = [*spec.features, spec.label]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise TrainingDataError(
            f"training data {source} lacks the columns {missing} (the contract {spec.name} needs {needed})"
        )
    if frame.empty:
        raise TrainingDataError(f"training data {source} has no rows")
    data = frame[needed].apply(pd.to_numeric, errors="coerce")
    unlabelled = int(data[spec.label].isna().sum())
    if unlabelled:
        raise TrainingDataError(f"training data {source} has {unlabelled} rows without a {spec.label} value")
    if len(data) < 20:
        raise TrainingDataError(
            f"training data {source} has {len(data)} rows: at least 20 are needed to hold out a validation set"
        )
    return data[list(spec.features)].astype("float64"), data[spec.label].astype("float64")


HELD_OUT_PER_MILLE = 200
"""The share of rows held out for validation: rows whose key hashes below it (of 1000)."""


def held_out(frame: pd.DataFrame, key: Sequence[str]) -> pd.Series:
    """Which rows are validation rows: by a hash of each row's key, so a row stays on its side of the split as
    the table grows and changes, and a champion is never scored on rows it was trained on (a random split of
    today's table would hold out rows the champion learned). A table without its key columns is split by row
    position instead (hashing the row number), the same for the same rows."""
    import hashlib

    if all(column in frame.columns for column in key):
        values = frame[list(key)].astype(str).agg("\x1f".join, axis=1)
    else:
        values = pd.Series([str(i) for i in range(len(frame))], index=frame.index)
    digest = values.map(lambda text: int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) % 1000)
    return digest < HELD_OUT_PER_MILLE


def fit(
    features: pd.DataFrame,
    label: pd.Series,
    params: dict[str, Any],
    validation: pd.Series,
    seed: int = 42,
) -> tuple[Any, dict[str, float], pd.DataFrame, pd.Series]:
    """A gradient-boosted regressor behind a median imputer (nullable lab values), trained on the rows outside
    `validation` (`held_out`); its validation metrics, and the held-out rows (features and label) the champion
    is scored on too."""
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import mean_absolute_error, r2_score
    from sklearn.pipeline import make_pipeline

    x_train, y_train = features[~validation], label[~validation]
    x_val, y_val = features[validation], label[validation]
    model = make_pipeline(SimpleImputer(strategy="median"), GradientBoostingRegressor(random_state=seed, **params))
    model.fit(x_train, y_train)
    predicted = model.predict(x_val)
    metrics = {
        METRIC: rmse(y_val, predicted),
        "val_mae": float(mean_absolute_error(y_val, predicted)),
        "val_r2": float(r2_score(y_val, predicted)),
        "train_rows": float(len(x_train)),
        "val_rows": float(len(x_val)),
    }
    return model, metrics, x_val, y_val


def rmse(label: pd.Series, predicted: Any) -> float:
    """METRIC: the new version's and the champion's, by one formula."""
    from sklearn.metrics import mean_squared_error

    return float(np.sqrt(mean_squared_error(label, predicted)))


class ChampionUnavailable(RuntimeError):
    """The champion could not be loaded or scored for a reason other than its features: the run stops and the
    champion stays (a new version is never promoted unchecked)."""


def score_champion(model_name: str, spec: Contract, features: pd.DataFrame, label: pd.Series) -> ChampionScore | None:
    """The current champion's RMSE on this held-out split (None: there is no champion). A champion trained on
    other features than the contract's now (its run's `features` tag) cannot be compared and says so; any other
    failure to load or score it is ChampionUnavailable."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None
    trained_on = client.get_run(str(version.run_id)).data.tags.get("features", "")
    if trained_on != ",".join(spec.features):
        return ChampionScore(
            str(version.version), None, f"trained on features [{trained_on}], the contract's are {list(spec.features)}"
        )
    try:
        champion = mlflow.sklearn.load_model(f"models:/{model_name}@{CHAMPION}")
        return ChampionScore(str(version.version), rmse(label, champion.predict(features)))
    except Exception as exc:
        raise ChampionUnavailable(
            f"champion version {version.version} of {model_name} could not be scored ({type(exc).__name__}: "
            f"{str(exc)[:200]}): nothing was registered and the champion stays; fix the registry's access and train "
            "again"
        ) from exc


def log_figures(model: Any, features: pd.DataFrame, label: pd.Series, spec: Contract) -> None:
    """What a person would rather look at than read: predicted against actual (residuals) on the held-out split,
    and the features' importances."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file
    import matplotlib.pyplot as plt
    import mlflow

    predicted = model.predict(features)
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.scatter(predicted, label - predicted, s=10)
    axes.axhline(0, color="grey", linewidth=1)
    axes.set(xlabel=f"predicted {spec.label}", ylabel="actual - predicted", title="Residuals (held-out split)")
    mlflow.log_figure(figure, "residuals.png")
    plt.close(figure)
    importances = getattr(model[-1], "feature_importances_", None)
    if importances is None:
        return
    figure, axes = plt.subplots(figsize=(6, 4))
    order = np.argsort(importances)
    axes.barh([spec.features[i] for i in order], importances[order])
    axes.set(xlabel="importance", title="Feature importances")
    mlflow.log_figure(figure, "feature_importances.png")
    plt.close(figure)


def local_tracking_uri(store: Path = LOCAL_STORE) -> str:
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def train_and_register(
    frame: pd.DataFrame,
    source: str,
    *,
    tracking_uri: str,
    model_name: str = MODEL_NAME,
    params: dict[str, Any] | None = None,
    approval_required: bool = False,
    min_improvement: float = 0.0,
) -> TrainingResult:
    import mlflow
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    spec = contract()
    features, label = features_and_label(frame, source, spec)
    params = {**DEFAULT_PARAMS, **(params or {})}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        location = None
        if tracking_uri.startswith("sqlite:///"):  # the local store keeps artifacts beside the database
            location = (Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
        mlflow.create_experiment(EXPERIMENT, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT)
    validation = held_out(frame.loc[features.index], spec.key)
    if validation.all() or not validation.any():
        raise TrainingDataError(f"training data {source}: its {len(frame)} rows leave no train or no validation rows")
    model, metrics, x_val, y_val = fit(features, label, params, validation)
    champion_before = score_champion(model_name, spec, x_val, y_val)  # before this version registers: today's champion
    client = MlflowClient()
    with mlflow.start_run() as run:
        mlflow.log_params({**params, "data_source": source, "rows": len(features)})
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"contract": spec.name, "features": ",".join(spec.features)})
        log_figures(model, x_val, y_val, spec)
        # the example is stored with the model and shown to whoever reads the registry: made up from the
        # contract, never rows of the data (which a subject's erasure would have to find there too)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(x_val, model.predict(x_val)),
            input_example=synthetic_example(spec),
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            pip_requirements=model_requirements(),
        )
        mlflow.set_tag("compiled", store_compiled(client, info.model_id, model))
        mlflow.set_tag("profile", store_profile(client, info.model_id, model, features, spec))
        version = str(mlflow.register_model(info.model_uri, model_name).version)
        decision = decide(
            version,
            metrics[METRIC],
            champion_before,
            approval_required=approval_required,
            min_improvement=min_improvement,
        )
        if champion_before is not None:
            mlflow.set_tag("champion_before", champion_before.version)
            if champion_before.rmse is not None:
                mlflow.log_metric(f"champion_{METRIC}", champion_before.rmse)
        mlflow.set_tags({"decision": decision.alias or "kept", "decision_reason": decision.reason})
    if decision.alias is not None:
        if champion_before is not None:  # the version a rollback (or a refused challenger) returns to
            client.set_model_version_tag(model_name, version, PREVIOUS_CHAMPION_TAG, champion_before.version)
        client.set_registered_model_alias(model_name, decision.alias, version)
    champion = version if decision.alias == CHAMPION else (champion_before.version if champion_before else None)
    return TrainingResult(run.info.run_id, version, metrics, champion, decision, champion_before, params)


def store_profile(client: Any, model_id: str, model: Any, features: pd.DataFrame, spec: Contract) -> str:
    """The training data's profile (pipeline/drift.py: each feature's and the predictions' mean and spread),
    stored in the model's own directory: what the service measures drift against. Aggregates only, no row."""
    from pipeline.drift import PROFILE_FILE, profile_of

    matrix = features.to_numpy(dtype=float)  # features_and_label's: the contract's features, in its order
    profile = profile_of(matrix, spec.features, np.asarray(model.predict(features), dtype=float))
    try:
        _log_beside_model(client, model_id, PROFILE_FILE, lambda path: path.write_text(profile.to_json(), "utf-8"))
    except Exception as exc:  # the version is registered all the same; the service then reports no drift
        return _not_stored(exc)
    return "yes"


def _log_beside_model(client: Any, model_id: str, name: str, write: Callable[[Path], Any]) -> None:
    """A file `write` makes, stored in the model's own directory (where the service finds it at load)."""
    with tempfile.TemporaryDirectory(prefix="beside-model-") as folder:
        write(Path(folder) / name)
        client.log_model_artifact(model_id, str(Path(folder) / name))


def _not_stored(exc: Exception) -> str:
    """A run's tag saying why a file beside the model is not there."""
    return f"no: {type(exc).__name__}: {str(exc)[:200]}"


def store_compiled(client: Any, model_id: str, model: Any) -> str:
    """The model as arrays the service predicts from with NumPy alone (model_service/compiled.py), stored in the
    model's own directory once they answered the probe exactly as the model does; what happened, for the run's
    `compiled` tag (a model that does not compile is served through MLflow's wrapper: slower, same answers)."""
    try:  # where training runs without the service's code beside it, the version is registered all the same
        from model_service.compiled import COMPILED_FILE, NotCompiled, compile_gradient_boosting, verified
    except ImportError as exc:
        return f"no: {exc}"
    try:
        compiled = compile_gradient_boosting(model)
        ensemble = verified(compiled, lambda rows: model.predict(pd.DataFrame(rows, columns=list(compiled.columns))))
        _log_beside_model(client, model_id, COMPILED_FILE, ensemble.save)
    except NotCompiled as exc:
        return f"no: {exc}"
    except Exception as exc:  # e.g. the upload refused: the version is registered all the same, served compiled at load
        return _not_stored(exc)
    return "yes"


def rows_at_last_training(tracking_uri: str) -> int | None:
    """The rows the experiment's latest run trained on (its `rows` parameter); None before any run."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return None
    runs = MlflowClient().search_runs(
        [experiment.experiment_id], "params.rows != ''", order_by=["attributes.start_time DESC"], max_results=1
    )
    return int(runs[0].data.params["rows"]) if runs else None


def report_champion_age(
    namespace: str,
    dimensions: dict[str, str],
    *,
    model_name: str,
    data_now: str,
    tracking_uri: str,
    now_ms: int | None = None,
    cloudwatch: Any = None,
) -> float:
    """Publish how stale the champion is (training/promotion.py champion_age_days) as a CloudWatch metric, with
    `dimensions` and the model's: what the stale-champion alarm reads. Every run in AWS reports it, the ones that
    train nothing too. Returns the figure."""
    import time

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        champion = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        champion = None
    registered = int(champion.creation_timestamp) if champion is not None else None
    trained_on = client.get_run(str(champion.run_id)).data.params.get("data_source") if champion is not None else None
    now = int(time.time() * 1000) if now_ms is None else now_ms
    age = champion_age_days(registered, trained_on, data_now, now)
    if cloudwatch is None:
        import boto3

        cloudwatch = boto3.client("cloudwatch")
    cloudwatch.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": CHAMPION_AGE_METRIC,
                "Dimensions": [{"Name": k, "Value": v} for k, v in {**dimensions, MODEL_DIMENSION: model_name}.items()],
                "Value": age,
                "Unit": "None",
            }
        ],
    )
    return age


def argument_parser() -> argparse.ArgumentParser:
    """The command line, which the state machine's training job passes (infra/constructs/training_pipeline.py
    training_arguments): the template tests parse the job's arguments with it."""
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        help="the curated table's folder, here or s3://<curated bucket>/<dataset>/<table> (or a Parquet file); "
        "default: its make-pipeline output, else the sample",
    )
    parser.add_argument("--build", type=int, help="the curated build to train on (default: the current one)")
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="MLflow tracking URI (the workspace's MLflow ARN in AWS); default: build/mlflow",
    )
    parser.add_argument("--model-name", default=MODEL_NAME)
    parser.add_argument(
        "--require-approval",
        action="store_true",
        help="a better version becomes the challenger; a person moves champion (python -m training.aliases approve)",
    )
    parser.add_argument(
        "--min-improvement", type=float, default=0.0, help="by how much (RMSE) a version must beat the champion"
    )
    parser.add_argument(
        "--min-new-rows", type=int, default=0, help="train only when the data grew by this many rows since the last run"
    )
    parser.add_argument(
        "--metrics-namespace",
        help="report the champion's age to CloudWatch in this namespace (training in AWS; the stale-champion alarm)",
    )
    parser.add_argument(
        "--metric-dimensions",
        type=json.loads,
        default={},
        help='the dimensions of that metric besides the model, as a JSON object (e.g. {"workspace": "int"})',
    )
    parser.add_argument("--n-estimators", type=int, default=DEFAULT_PARAMS["n_estimators"])
    parser.add_argument("--max-depth", type=int, default=DEFAULT_PARAMS["max_depth"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = argument_parser().parse_args(argv)
    try:
        frame, source = load_features(args.data or default_data(contract()), args.build)
        tracking_uri = args.tracking_uri or local_tracking_uri()
        waiting = enough_new_rows(len(frame), rows_at_last_training(tracking_uri), args.min_new_rows)
        result = None
        if waiting:
            print(f"not trained on {source}: {waiting}")
        else:
            result = train_and_register(
                frame,
                source,
                tracking_uri=tracking_uri,
                model_name=args.model_name,
                params={"n_estimators": args.n_estimators, "max_depth": args.max_depth},
                approval_required=args.require_approval,
                min_improvement=args.min_improvement,
            )
    except (TrainingDataError, ChampionUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result is not None:
        print(
            f"trained on {source}: {METRIC} {result.metrics[METRIC]:.2f}, R2 {result.metrics['val_r2']:.3f}; "
            f"registered {args.model_name} version {result.version}; "
            f"{result.decision.alias or 'no alias moved'}: {result.decision.reason}"
        )
    if args.metrics_namespace:
        try:
            age = report_champion_age(
                args.metrics_namespace,
                args.metric_dimensions,
                model_name=args.model_name,
                data_now=source,
                tracking_uri=tracking_uri,
            )
        except Exception as exc:  # the run itself succeeded: it says so, and that the report did not go
            print(f"warning: champion age not reported ({type(exc).__name__}: {str(exc)[:300]})", file=sys.stderr)
            return 0
        print(f"champion age reported: {age:.1f} days ({CHAMPION_AGE_METRIC})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
