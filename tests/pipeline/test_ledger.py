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


# ---- values and calls, exact (no AWS) ---------------------------------------------------------------------


def test_values_become_dynamodb_attribute_values_and_back() -> None:
    from pipeline.ledger import _value, plain

    value = {"n": None, "b": True, "i": 3, "f": 2.5, "w": 2.0, "s": "x", "l": [1, "y"], "m": {"k": {"z": None}}}
    encoded = _value(value)
    assert encoded == {
        "M": {
            "n": {"NULL": True},
            "b": {"BOOL": True},
            "i": {"N": "3"},
            "f": {"N": "2.5"},
            "w": {"N": "2.0"},
            "s": {"S": "x"},
            "l": {"L": [{"N": "1"}, {"S": "y"}]},
            "m": {"M": {"k": {"M": {"z": {"NULL": True}}}}},
        }
    }
    back = plain(encoded)
    assert back == value and type(back["i"]) is int and type(back["w"]) is float, "2.0 stays a float, 3 an int"
    assert plain({"N": "1e3"}) == 1000 and type(plain({"N": "1e3"})) is int, "whole, written without a point"
    assert _value({7: 1}) == {"M": {"7": {"N": "1"}}}, "a key as text"
    with pytest.raises(TypeError, match="the ledger records no set: "):
        _value({1})


class _Client:
    """What DynamoLedger calls of a DynamoDB client, recorded; `pages` what a scan returns."""

    class exceptions:
        class ConditionalCheckFailedException(Exception):
            pass

    def __init__(self, pages: list[list[dict]] | None = None) -> None:
        self.calls: list[dict] = []
        self.pages = pages or []

    def update_item(self, **call) -> None:
        self.calls.append(call)

    def get_paginator(self, name: str):
        assert name == "scan"
        client = self

        class Paginator:
            def paginate(self, TableName: str):
                assert TableName == "ledger"
                return [{"Items": page} for page in client.pages]

        return Paginator()


def test_a_record_is_the_steps_update_at_the_time_in_utc_then_the_state() -> None:
    from pipeline.ledger import DynamoLedger, Entry, Step, record_all

    client = _Client()
    record_all(DynamoLedger(client, "ledger"), [Entry("d/t/a.csv", Step.VALIDATED, {"rows_in": 3})])
    step, state = client.calls
    assert step["TableName"] == state["TableName"] == "ledger"
    assert step["Key"] == state["Key"] == {"file": {"S": "d/t/a.csv"}}
    at = next(v["S"] for v in step["ExpressionAttributeValues"].values() if "S" in v and "T" in v["S"])
    assert at.endswith("+00:00"), "an aware time in UTC"
    assert {"N": "3"} in step["ExpressionAttributeValues"].values()


def test_every_page_of_a_scan_is_read_and_the_files_sorted() -> None:
    from pipeline.ledger import DynamoLedger

    pages = [[{"file": {"S": "b"}}], [{"file": {"S": "a"}, "n": {"N": "1"}}], [{"file": {"S": "c"}}]]
    assert DynamoLedger(_Client(pages), "ledger").items() == [{"file": "a", "n": 1}, {"file": "b"}, {"file": "c"}]


def test_the_ledger_from_the_environment_is_the_named_tables(monkeypatch) -> None:
    import boto3

    from pipeline.ledger import LEDGER_TABLE_ENV, ledger_from_environment

    made: list[str] = []
    monkeypatch.setattr(boto3, "client", lambda service: made.append(service) or "client")
    monkeypatch.setenv(LEDGER_TABLE_ENV, "dataplat-we-1-ledger")
    ledger = ledger_from_environment()
    assert (ledger.client, ledger.table, made) == ("client", "dataplat-we-1-ledger", ["dynamodb"])


def test_a_sources_position_is_an_item_of_its_own_switched_only_from_what_was_read(ledger) -> None:
    """pipeline/extract.py's PositionStore in the ledger: absent at first; the first commit only where none is;
    each later one only from the text read; a run whose read is stale stops (ExtractError) and changes nothing."""
    from pipeline.extract import ExtractError
    from pipeline.ledger import POSITION, position_id, position_store

    store = position_store(ledger.client, ledger.table, "clinic/appointments")
    assert store.key == position_id("clinic/appointments") == "source-position:clinic/appointments"
    assert store.read_text(store.key) is None
    store.swap(store.key, '{"p": 1}', None)
    with pytest.raises(ExtractError) as stale:
        store.swap(store.key, '{"p": 9}', None)
    assert str(stale.value) == (
        "source-position:clinic/appointments moved while this run read it: another run extracts clinic/appointments "
        "at the same time; this one stops (its files are duplicates of the other's, resolved by the key downstream)"
    )
    store.swap(store.key, '{"p": 2}', '{"p": 1}')
    with pytest.raises(ExtractError):
        store.swap(store.key, '{"p": 3}', '{"p": 1}')
    assert store.read_text(store.key) == '{"p": 2}'
    record = item(ledger, store.key)
    assert record[POSITION] == '{"p": 2}' and record["committed_at"].endswith("+00:00")
    assert set(record) == {"file", POSITION, "committed_at"}, "no file's fields: the ledger's readers tell it apart"
    other = position_store(ledger.client, ledger.table, "diabetes/patients")
    assert other.read_text(other.key) is None, "each source its own"


def test_a_position_is_read_consistently(ledger) -> None:
    """A read right after another run's commit must see it (DynamoDB reads eventually consistent by default)."""
    from pipeline.ledger import position_store

    reads = []

    class Spy:
        exceptions = ledger.client.exceptions

        def get_item(self, **params):
            reads.append(params)
            return ledger.client.get_item(**params)

    store = position_store(Spy(), ledger.table, "clinic/appointments")  # type: ignore[arg-type]
    store.read_text(store.key)
    assert reads == [
        {"TableName": ledger.table, "Key": {"file": {"S": store.key}}, "ConsistentRead": True},
    ]
