"""Training end to end on a local MLflow store: a version is registered, the metric is sane, the
champion alias moves only on improvement, bad input fails clearly; and the example notebook runs."""

from __future__ import annotations

from pathlib import Path

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from training.train import (
    CHAMPION,
    METRIC,
    MODEL_NAME,
    TrainingDataError,
    contract,
    features_and_label,
    load_features,
    local_tracking_uri,
    train_and_register,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return local_tracking_uri(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="module")
def sample():
    return load_features(None)


@pytest.fixture(scope="module")
def first(store, sample):
    frame, source = sample
    return train_and_register(frame, source, tracking_uri=store)


def test_a_version_is_registered_with_a_sane_metric(first, store) -> None:
    from mlflow.tracking import MlflowClient

    assert first.version == "1" and first.promoted and first.champion_version == "1"
    assert 35 < first.metrics[METRIC] < 70, "diabetes progression: RMSE well under the target's spread (~77)"
    assert first.metrics["val_r2"] > 0.25
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version) == "1"
    run = client.get_run(first.run_id)
    assert run.data.params["n_estimators"] == "200" and run.data.tags["contract"] == "diabetes/patients"


WEAK = {"n_estimators": 3, "max_depth": 1}
"""A model certain to score worse than the default one on the same split (RMSE about 70 against 54)."""


def test_the_champion_moves_only_on_improvement(tmp_path, sample) -> None:
    """Both paths run, each with a known outcome: a weak champion is replaced by a better model, which a
    weak one then does not replace (an implementation that never, or always, promotes fails)."""
    from mlflow.tracking import MlflowClient

    store = local_tracking_uri(tmp_path / "mlflow")
    frame, source = sample
    client = MlflowClient(tracking_uri=store, registry_uri=store)

    def champion() -> str:
        return str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version)

    weak = train_and_register(frame, source, tracking_uri=store, params=WEAK)
    assert weak.promoted and champion() == "1", "the first version becomes champion"
    better = train_and_register(frame, source, tracking_uri=store)
    assert better.metrics[METRIC] < weak.metrics[METRIC] - 5, "the default model is clearly better"
    assert better.promoted and champion() == better.version == "2" and better.champion_version == "2"
    worse = train_and_register(frame, source, tracking_uri=store, params=WEAK)
    assert worse.metrics[METRIC] > better.metrics[METRIC]
    assert not worse.promoted and champion() == "2" and worse.champion_version == "2"


def test_the_model_carries_its_signature_and_input_example(first, store) -> None:
    import mlflow

    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)  # a test before may have left it at a server that has stopped since
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{first.version}")
    assert model.metadata.get_input_schema().input_names() == list(contract().features)
    assert model.metadata.saved_input_example_info is not None


def test_the_registered_version_holds_its_arrays_for_the_service(first, store, tmp_path) -> None:
    """The file the service predicts from without scikit-learn (model_service/compiled.py), in the registered
    model's own directory, and the run says it was stored."""
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from model_service.compiled import COMPILED_FILE, TreeEnsemble, probe

    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)  # a test before may have left it at a server that has stopped since
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}/{first.version}", dst_path=str(tmp_path)))
    ensemble = TreeEnsemble.load(folder / COMPILED_FILE)
    rows = probe(ensemble, seed=3)
    model = mlflow.sklearn.load_model(str(folder))
    assert np.array_equal(ensemble.predict(rows), model.predict(pd.DataFrame(rows, columns=list(ensemble.columns))))
    assert MlflowClient(tracking_uri=store).get_run(first.run_id).data.tags["compiled"] == "yes"
    from importlib.metadata import version

    stated = (folder / "requirements.txt").read_text().split()
    assert stated == [
        f"{name}=={version(name)}" for name in ("mlflow", "numpy", "pandas", "scikit-learn", "scipy", "skops")
    ], "what loading it needs, at the versions it was trained with, and nothing of the training process besides"


def test_missing_columns_and_empty_tables_fail_clearly(sample) -> None:
    frame, _ = sample
    with pytest.raises(TrainingDataError, match=r"curated\.parquet lacks the columns \['bmi'\]"):
        features_and_label(frame.drop(columns=["bmi"]), "curated.parquet", contract())
    with pytest.raises(TrainingDataError, match="has no rows"):
        features_and_label(frame.head(0), "empty.parquet", contract())
    unlabelled = frame.head(30).assign(target=None)
    with pytest.raises(TrainingDataError, match="30 rows without a target value"):
        features_and_label(unlabelled, "x", contract())
    with pytest.raises(TrainingDataError, match="does not exist"):
        load_features(Path("/no/such/table"))


def test_the_curated_parquet_table_is_read(tmp_path: Path, sample) -> None:
    frame, _ = sample
    frame.to_parquet(tmp_path / "part-0.parquet")
    loaded, source = load_features(tmp_path)
    assert len(loaded) == len(frame) and source == str(tmp_path)
    features, label = features_and_label(loaded, source, contract())
    assert list(features.columns) == list(contract().features) and label.dtype == "float64"


def test_the_example_notebook_runs_headless(tmp_path: Path, monkeypatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", local_tracking_uri(tmp_path / "nb-mlflow"))
    notebook = nbformat.read(ROOT / "notebooks" / "example-mlflow-train.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
    )
    assert "version 1: val_rmse" in outputs and "promoted - champion is version 1" in outputs


def test_the_champion_is_compared_on_todays_split_not_on_its_stored_metric(tmp_path, sample) -> None:
    """A champion trained on the easy part of the data (low targets) stored a low RMSE; on today's data it
    scores far worse than a new model, which therefore replaces it although its own RMSE is above that stored
    figure. Comparing with the stored metric would have kept the stale champion."""
    from mlflow.tracking import MlflowClient

    from training.promotion import PREVIOUS_CHAMPION_TAG

    store = local_tracking_uri(tmp_path / "mlflow")
    frame, source = sample
    spec = contract()
    target = frame[spec.label].astype(float)  # the sample holds the export's text
    easy = frame[target < target.median()]
    narrow = train_and_register(easy, "easy half", tracking_uri=store)
    wide = train_and_register(frame, source, tracking_uri=store)
    assert wide.metrics[METRIC] > narrow.metrics[METRIC], "above the stale champion's stored figure"
    assert wide.champion_before is not None and wide.champion_before.version == "1"
    assert wide.champion_before.rmse > wide.metrics[METRIC], "but the champion is worse on today's split"
    assert wide.promoted and wide.champion_version == "2"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    run = client.get_run(wide.run_id)
    assert run.data.tags["decision"] == "champion" and run.data.tags["champion_before"] == "1"
    assert "on the same held-out split: better by" in run.data.tags["decision_reason"]
    assert run.data.metrics[f"champion_{METRIC}"] == pytest.approx(wide.champion_before.rmse)
    assert {a.path for a in client.list_artifacts(wide.run_id)} >= {"residuals.png", "feature_importances.png"}
    assert client.get_model_version(MODEL_NAME, "2").tags[PREVIOUS_CHAMPION_TAG] == "1"


def test_where_a_person_approves_a_better_version_waits_as_challenger_and_can_be_rolled_back(tmp_path, sample) -> None:
    from mlflow.tracking import MlflowClient

    from training.aliases import AliasError, approve, rollback

    store = local_tracking_uri(tmp_path / "mlflow")
    frame, source = sample
    client = MlflowClient(tracking_uri=store, registry_uri=store)

    def alias(name: str) -> str:
        return str(client.get_model_version_by_alias(MODEL_NAME, name).version)

    train_and_register(frame, source, tracking_uri=store, params=WEAK)  # version 1, champion (no approval here)
    better = train_and_register(frame, source, tracking_uri=store, approval_required=True)
    assert better.decision.alias == "challenger" and not better.promoted
    assert alias(CHAMPION) == "1" and alias("challenger") == "2", "the service keeps serving version 1"
    with pytest.raises(AliasError, match="version 1 replaced no champion: there is no version to roll back to"):
        rollback(client, MODEL_NAME)
    assert approve(client, MODEL_NAME) == f"{MODEL_NAME}: champion is now version 2 (was version 1)"
    assert alias(CHAMPION) == "2"
    with pytest.raises(AliasError, match="has no challenger: nothing waits for approval"):
        approve(client, MODEL_NAME)
    assert rollback(client, MODEL_NAME) == f"{MODEL_NAME}: champion rolled back from version 2 to version 1"
    assert alias(CHAMPION) == "1"
    worse = train_and_register(frame, source, tracking_uri=store, params=WEAK, approval_required=True)
    assert worse.decision.alias is None and "the champion stays" in worse.decision.reason
    assert client.get_run(worse.run_id).data.tags["decision"] == "kept"


def test_training_waits_for_enough_new_rows_since_the_last_run(tmp_path, capsys, monkeypatch) -> None:
    """The command AWS runs: a first run trains; a second on the same data, asked for 10 new rows, does not
    (it says why and registers nothing); with no minimum it trains again."""
    from mlflow.tracking import MlflowClient

    from training.train import main

    store = local_tracking_uri(tmp_path / "mlflow")
    assert main(["--tracking-uri", store, "--n-estimators", "5"]) == 0
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    unreported = ["--tracking-uri", store, "--min-new-rows", "10", "--metrics-namespace", "DataPlatform"]
    assert main(unreported) == 0, "a report that cannot go does not fail the run"
    assert "warning: champion age not reported (NoRegionError" in capsys.readouterr().err
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")  # the training job's environment sets it
    with mock_aws():  # a run that trains nothing reports the champion's age all the same (the stale alarm's data)
        cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1")
        reporting = ["--metrics-namespace", "DataPlatform", "--metric-dimensions", '{"workspace": "w"}']
        assert main(["--tracking-uri", store, "--min-new-rows", "10", *reporting]) == 0
        (metric,) = cloudwatch.list_metrics(Namespace="DataPlatform")["Metrics"]
    assert metric["MetricName"] == "ChampionAgeDays"
    assert {d["Name"]: d["Value"] for d in metric["Dimensions"]} == {"workspace": "w", "model": MODEL_NAME}
    out = capsys.readouterr().out
    assert "champion age reported: 0.0 days" in out, "the champion learned this very data"
    assert "not trained on bundled sample" in out
    assert "0 new rows since the last training (442 then, 442 now): fewer than the 10" in out
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    assert [str(v.version) for v in client.search_model_versions(f"name='{MODEL_NAME}'")] == ["1"]
    assert main(["--tracking-uri", store, "--n-estimators", "5"]) == 0
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == 2


def test_the_champions_age_counts_from_its_registration_once_the_table_holds_newer_data(first, store) -> None:
    from mlflow.tracking import MlflowClient

    from training.promotion import DAY_MS
    from training.train import report_champion_age

    calls: list[dict] = []

    class Recorder:
        def put_metric_data(self, **call) -> None:
            calls.append(call)

    champion = MlflowClient(tracking_uri=store, registry_uri=store).get_model_version_by_alias(MODEL_NAME, CHAMPION)
    learned = MlflowClient(tracking_uri=store).get_run(champion.run_id).data.params["data_source"]
    now = int(champion.creation_timestamp) + 10 * DAY_MS

    def report(data_now: str) -> float:
        return report_champion_age(
            "NS",
            {"workspace": "w"},
            model_name=MODEL_NAME,
            data_now=data_now,
            tracking_uri=store,
            now_ms=now,
            cloudwatch=Recorder(),
        )

    assert report("s3://curated/diabetes/patients build 9") == pytest.approx(10.0)
    assert report(learned) == 0.0, "it learned today's data: not stale, however old"
    assert (
        report_champion_age(
            "NS", {}, model_name="no-such-model", data_now="x", tracking_uri=store, now_ms=now, cloudwatch=Recorder()
        )
        == 0.0
    )
    first_call = calls[0]
    assert first_call["Namespace"] == "NS"
    (datum,) = first_call["MetricData"]
    assert datum["MetricName"] == "ChampionAgeDays" and datum["Value"] == pytest.approx(10.0)
    assert datum["Dimensions"] == [{"Name": "workspace", "Value": "w"}, {"Name": "model", "Value": MODEL_NAME}]


def test_a_row_stays_on_its_side_of_the_split_as_the_table_changes(sample) -> None:
    """Validation rows by a hash of the key: the same patient is held out whatever else the table holds, so a
    champion is never scored on rows it learned."""
    from training.train import held_out

    frame, _ = sample
    spec = contract()
    split = held_out(frame, spec.key)
    assert 0.12 < split.mean() < 0.28, "about a fifth"
    shuffled = frame.sample(frac=1.0, random_state=7)
    grown = pd.concat([shuffled, frame.assign(patient_id=frame["patient_id"] + "9")], ignore_index=True)
    again = held_out(grown, spec.key)
    by_patient = dict(zip(frame["patient_id"], split, strict=True))
    assert all(by_patient[p] == v for p, v in zip(grown["patient_id"], again, strict=True) if p in by_patient)
    assert held_out(frame.drop(columns=["patient_id"]), spec.key).sum() > 0, "no key: by position"


def test_a_champion_of_other_features_is_replaced_and_one_that_cannot_be_read_stops_the_run(
    tmp_path, sample, monkeypatch
) -> None:
    from mlflow.tracking import MlflowClient

    from training.train import ChampionUnavailable

    store = local_tracking_uri(tmp_path / "mlflow")
    frame, source = sample
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    first = train_and_register(frame, source, tracking_uri=store, params=WEAK)
    client.set_tag(first.run_id, "features", "age,bmi")  # as if trained before the contract gained features
    second = train_and_register(frame, source, tracking_uri=store, params=WEAK)
    assert second.promoted and "champion version 1 cannot score this data (trained on features [age,bmi]" in (
        second.decision.reason
    )

    def unreachable(uri: str):
        raise OSError("the artifact store refused the read")

    import mlflow.sklearn

    monkeypatch.setattr(mlflow.sklearn, "load_model", unreachable)
    with pytest.raises(ChampionUnavailable, match=r"champion version 2 of .* could not be scored \(OSError"):
        train_and_register(frame, source, tracking_uri=store)
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version) == "2"
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == 2, "nothing registered"
