"""The extractor's Lambda (lambdas/extract) against moto (S3, DynamoDB, Secrets Manager) and a real local
PostgreSQL: each page lands in raw where a landed file of the table would, with its metadata and ledger entry,
before its position is committed in the ledger; a run that dies between the two loses nothing; a second run at
once stops; a placeholder secret is refused by name; a run out of time stops between pages and the next goes on;
and validate takes the extracted file as it takes a landed one."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import boto3
import pytest

from lambdas.extract import handler as extract_handler
from lambdas.extract.logic import (
    EXTRACTED_FROM_METADATA,
    RAW_BUCKET_ENV,
    SECRET_ENV,
    SOURCE_ENV,
    STOP_MARGIN_MS,
    TABLE_ENV,
    place,
    time_left,
)
from lambdas.validate.handler import validate_object
from pipeline.contract import load_contracts
from pipeline.extract import ExtractError
from pipeline.layout import landing_key_from_metadata, parse_raw_key
from pipeline.ledger import POSITION, position_id, position_store
from pipeline.sample_data import appointment_rows
from pipeline.sources import PLACEHOLDER_HOST, SourceError, source_files
from scripts.local_postgres import load_appointments
from tests.lambdas.conftest import BUCKETS, FakeContext, keys, ledger_items
from tests.lambdas.harness import LEDGER, REGION

TABLE = "clinic/appointments"
T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def source(s3, postgres) -> dict[str, Any]:
    """40 appointments in the local server, its connection in a secret, the function's environment (pages of 15
    rows: three files)."""
    load_appointments(postgres.target(), appointment_rows(40), T0)
    secret = postgres.rds_secret("require")
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="clinic-appointments", SecretString=json.dumps(secret)
    )["ARN"]
    data, _ = source_files(load_contracts())[TABLE]
    environment = {
        TABLE_ENV: TABLE,
        SOURCE_ENV: json.dumps(data | {"chunk_rows": 15}, default=str),
        SECRET_ENV: arn,
        RAW_BUCKET_ENV: BUCKETS["raw"],
    }
    with mock.patch.dict(os.environ, environment):
        yield {"arn": arn, "secret": secret}


@pytest.fixture
def no_overlap(source) -> None:
    """The source file with no overlap: a run reads again only what was not committed."""
    described = json.loads(os.environ[SOURCE_ENV])
    described["watermark"] = described["watermark"] | {"overlap": 0}
    with mock.patch.dict(os.environ, {SOURCE_ENV: json.dumps(described)}):
        yield


def _raw_rows(s3) -> list[dict[str, str]]:
    rows = []
    for key in keys(s3, BUCKETS["raw"]):
        body = s3.get_object(Bucket=BUCKETS["raw"], Key=key)["Body"].read().decode("utf-8")
        rows += list(csv.DictReader(io.StringIO(body, newline="")))
    return rows


def _position() -> str | None:
    store = position_store(boto3.client("dynamodb", region_name=REGION), LEDGER, TABLE)
    return store.read_text(store.key)


def test_a_run_writes_each_page_to_raw_as_a_landed_file_then_commits_its_position(s3, source) -> None:
    result = extract_handler.handler({}, FakeContext())
    assert result["files"] == 3 and result["rows"] == 40 and result["snapshot"] and result["complete"]
    written = keys(s3, BUCKETS["raw"])
    assert len(written) == 3 and all(k.startswith(f"{TABLE}/created_at=") for k in written)
    assert len({parse_raw_key(k).created_at for k in written}) == 1, "a run's pages share its partition"
    assert sorted(r["appointment_id"] for r in _raw_rows(s3)) == sorted(
        r["appointment_id"] for r in appointment_rows(40)
    )
    head = s3.head_object(Bucket=BUCKETS["raw"], Key=written[0])
    assert head["Metadata"][EXTRACTED_FROM_METADATA] == f"database:{TABLE}"
    assert landing_key_from_metadata(head["Metadata"]).startswith(f"{TABLE}/extract-")
    records = {item["file"]: item for item in ledger_items()}
    assert {k for k in records if not k.startswith("source-position:")} == set(written)
    assert all(
        records[k]["state"] == "ingested" and records[k]["ingested_source"] == f"database:{TABLE}" for k in written
    )
    assert json.loads(records[position_id(TABLE)][POSITION]) == json.loads(result["position"])
    validated = validate_object(s3, BUCKETS["raw"], written[0], BUCKETS["quarantine"], load_contracts())
    assert validated["valid"] is True, "validate takes it as a landed file"

    second = extract_handler.handler({}, FakeContext())
    # nothing changed since; the source file's overlap (300 s) reads the last 5 minutes again: a row a minute
    assert second["rows"] == 6 and second["files"] == 1 and not second["snapshot"]


def test_a_run_that_dies_after_writing_a_page_and_before_committing_loses_nothing(s3, no_overlap) -> None:
    """The position is committed after each page: a failure in between leaves the page in raw and the position
    before it; the next run writes that page again (its rows resolved by the key downstream), and the rest."""
    real = position_store
    calls = {"swaps": 0}

    def failing_second_commit(client, table, name):
        store = real(client, table, name)

        def swap(key: str, text: str, expected: str | None) -> None:
            calls["swaps"] += 1
            if calls["swaps"] == 2:
                raise ConnectionError("the ledger is unreachable")
            store.swap(key, text, expected)

        return type(store)(store.key, store.read_text, swap)

    with mock.patch.object(extract_handler, "position_store", failing_second_commit), pytest.raises(ConnectionError):
        extract_handler.handler({}, FakeContext())
    assert len(keys(s3, BUCKETS["raw"])) == 2, "the page whose commit failed is in raw"
    committed = json.loads(_position())
    assert committed["key"][1] is not None
    extract_handler.handler({}, FakeContext())
    ids = [r["appointment_id"] for r in _raw_rows(s3)]
    assert set(ids) == {r["appointment_id"] for r in appointment_rows(40)}, "no row lost"
    assert len(ids) == 40 + 15, "only the uncommitted page twice"


def test_a_second_run_at_once_stops_at_its_commit(s3, source) -> None:
    """Two runs read the same position; the one that commits second finds it moved (the conditional update)."""
    client = boto3.client("dynamodb", region_name=REGION)
    store = position_store(client, LEDGER, TABLE)
    assert store.read_text(store.key) is None
    store.swap(store.key, "first", None)
    with pytest.raises(ExtractError, match="another run extracts clinic/appointments at the same time"):
        store.swap(store.key, "second", None)
    store.swap(store.key, "second", "first")
    with pytest.raises(ExtractError, match="moved while this run read it"):
        store.swap(store.key, "third", "first")
    assert store.read_text(store.key) == "second"


def test_a_placeholder_secret_is_refused_with_what_to_put_there(s3, source) -> None:
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId=source["arn"], SecretString=json.dumps(source["secret"] | {"host": PLACEHOLDER_HOST})
    )
    with pytest.raises(SourceError, match="still holds the template's placeholder: put the database's host"):
        extract_handler.handler({}, FakeContext())
    assert keys(s3, BUCKETS["raw"]) == []


def test_a_run_short_of_time_stops_between_pages_and_the_next_goes_on(s3, no_overlap) -> None:
    first = extract_handler.handler({}, FakeContext(remaining_ms=STOP_MARGIN_MS - 1))
    assert first["files"] == 1 and first["rows"] == 15 and not first["complete"]
    rest = extract_handler.handler({}, FakeContext())
    assert rest["files"] == 2 and rest["rows"] == 25 and rest["complete"] and not rest["snapshot"]
    assert len(_raw_rows(s3)) == 40, "each row once"


def test_a_page_goes_where_a_landed_file_of_its_table_would() -> None:
    placed = place(TABLE, "extract-20261201T000000Z-r1-00000.csv", T0, b"abc")
    assert placed.key == f"{TABLE}/created_at=20261201T000000Z/extract-20261201T000000Z-r1-00000.csv"
    assert placed.entry.file_id == placed.key and placed.entry.step == "ingested"
    assert placed.entry.fields == {
        "landing_key": f"{TABLE}/extract-20261201T000000Z-r1-00000.csv",
        "size": 3,
        "source": f"database:{TABLE}",
    }
    assert placed.metadata == {
        "landing-key": f"{TABLE}/extract-20261201T000000Z-r1-00000.csv",
        EXTRACTED_FROM_METADATA: f"database:{TABLE}",
    }
    remaining = [STOP_MARGIN_MS + 1]
    more = time_left(lambda: remaining[0])
    assert more()
    remaining[0] = STOP_MARGIN_MS
    assert not more(), "at the margin, no new page"


def test_a_run_that_finds_its_position_moved_by_another_stops_without_failing(s3, source) -> None:
    """A retry beside the schedule's run: the one that commits second stops quietly (no error to retry, no
    alarm); the pages it wrote are duplicates the key resolves."""
    from pipeline.extract import PositionMoved

    real = position_store

    def moved_meanwhile(client, table, name):
        store = real(client, table, name)

        def swap(key: str, text: str, expected: str | None) -> None:
            raise PositionMoved(f"{key} moved while this run read it")

        return type(store)(store.key, store.read_text, swap)

    with mock.patch.object(extract_handler, "position_store", moved_meanwhile):
        result = extract_handler.handler({}, FakeContext())
    assert result == {
        "table": TABLE,
        "stopped": "source-position:clinic/appointments moved while this run read it",
    }
    assert _position() is None
