"""The run ledger (pipeline/ledger.py) on moto's DynamoDB: what each step records, and a file's state that
only moves forward."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from pipeline.ledger import RANK, DynamoLedger, Step, create_table, landing_file_id

RAW_KEY = "diabetes/patients/created_at=20261122T103005Z/visits.csv"


@pytest.fixture
def ledger(monkeypatch) -> DynamoLedger:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield create_table(boto3.client("dynamodb"), "ledger")


def item(ledger: DynamoLedger, file_id: str = RAW_KEY) -> dict:
    (found,) = [i for i in ledger.items() if i["file"] == file_id]
    return found


def test_a_file_through_the_pipeline_is_one_item_with_every_steps_record(ledger) -> None:
    ledger.record(RAW_KEY, Step.INGESTED, landing_key="diabetes/patients/visits.csv", landing_version="v1", size=10)
    ledger.record(RAW_KEY, Step.DISPATCHED, execution="visits-csv-abc")
    ledger.record(RAW_KEY, Step.VALIDATED, unknown_columns=["notes"])
    ledger.record(RAW_KEY, Step.GATED, passed=True, failures=[], rows_in=100, rows_written=95, rows_rejected=5)
    ledger.record(RAW_KEY, Step.PROMOTED, build="jr_9")
    (record,) = ledger.items()
    assert record["state"] == "promoted"
    assert record["ingested_landing_version"] == "v1" and record["ingested_size"] == 10
    assert record["validated_unknown_columns"] == ["notes"]
    assert (record["gated_passed"], record["gated_failures"], record["gated_rows_in"]) == (True, [], 100)
    assert record["gated_rows_written"] + record["gated_rows_rejected"] == record["gated_rows_in"]
    assert record["promoted_build"] == "jr_9"
    assert all(record[f"{s}_at"] for s in ("ingested", "dispatched", "validated", "gated", "promoted"))


def test_a_repeated_earlier_step_updates_its_record_but_never_rolls_the_state_back(ledger) -> None:
    ledger.record(RAW_KEY, Step.INGESTED, landing_version="v1")
    ledger.record(RAW_KEY, Step.GATED, passed=True)
    ledger.record(RAW_KEY, Step.DISPATCHED, execution="again")  # a late duplicate of an earlier step
    record = item(ledger)
    assert record["state"] == "gated" and record["dispatched_execution"] == "again"


def test_a_failure_is_always_the_state_and_a_redrive_takes_over_from_it(ledger) -> None:
    ledger.record(RAW_KEY, Step.VALIDATED)
    ledger.record(RAW_KEY, Step.FAILED, error="States.TaskFailed", cause="Glue job run failed")
    assert item(ledger)["state"] == "failed" and item(ledger)["failed_error"] == "States.TaskFailed"
    ledger.record(RAW_KEY, Step.VALIDATED)  # redriven from the step it reached
    assert item(ledger)["state"] == "validated"
    ledger.record(RAW_KEY, Step.GATED, passed=True)
    record = item(ledger)
    assert record["state"] == "gated" and record["failed_cause"] == "Glue job run failed", "the failure is kept"


def test_a_quarantined_file_stays_quarantined(ledger) -> None:
    file_id = landing_file_id("stray.csv", "v1")
    assert file_id == "landing/stray.csv@v1" and landing_file_id("stray.csv", None) == "landing/stray.csv@null"
    ledger.record(file_id, Step.QUARANTINED, reason="is not <dataset>/<table>/<file>")
    ledger.record(file_id, Step.INGESTED)
    assert item(ledger, file_id)["state"] == "quarantined"


def test_ranks_follow_the_pipeline_and_quarantine_ends_it() -> None:
    ordered = [Step.INGESTED, Step.DISPATCHED, Step.VALIDATED, Step.GATED, Step.PROMOTED]
    assert [RANK[s] for s in ordered] == sorted(RANK[s] for s in ordered) and len(set(RANK.values())) == len(RANK)
    assert RANK[Step.QUARANTINED] > max(RANK[s] for s in ordered) and Step.FAILED not in RANK


def test_a_value_the_ledger_cannot_hold_is_refused_by_name(ledger) -> None:
    with pytest.raises(TypeError, match="the ledger records no set"):
        ledger.record(RAW_KEY, Step.INGESTED, versions={"v1"})
