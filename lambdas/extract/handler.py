"""Scheduled (or invoked by hand): a table's rows changed in its operational database since the committed
position, written to raw as files of its contract's format, then the position moved (pipeline/extract.py).

Each page is in raw and in the ledger before its position is committed: a run that fails or times out after
writing a page and before committing it leaves a file the next run writes again, whose rows the key resolves
downstream; no row is lost. The secret is read on every run (AWSCURRENT), so a rotated password applies to
the next run. The run's report (files, rows, whether it read the table whole or stopped for want of time) is
its return value and its log; a run that fails raises (Lambda's errors alarm, then the dead-letter queue).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import pg8000.dbapi  # noqa: F401 (the driver pipeline.extract.connect imports late, loaded at cold start: missing from the asset, the function fails its first import, not its first run)
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.extract.logic import RAW_BUCKET_ENV, SECRET_ENV, SOURCE_ENV, TABLE_ENV, place, time_left
from lambdas.observability import emit_per_table, instrumented, logger
from lambdas.telemetry import EXTRACT_TABLE_METRICS
from pipeline.contract import Contract, load_contracts
from pipeline.extract import ExtractReport, PositionMoved, PositionStore, connect, extract
from pipeline.ledger import LEDGER_TABLE_ENV, DynamoLedger, Ledger, position_store, record_all
from pipeline.sources import Connection, Source, parse_source

if TYPE_CHECKING:  # the stubs are a development dependency: the Lambda runtime has none
    from mypy_boto3_s3 import S3Client

_contracts = functools.cache(load_contracts)  # read once per container, not per invocation


def writer(s3: S3Client, bucket: str, ledger: Ledger, table: str, started: datetime) -> Callable[[str, bytes], None]:
    """pipeline.extract.extract's `write_file`: the page into raw, then its ledger entry (both before its
    position is committed)."""

    def write_file(name: str, data: bytes) -> None:
        placed = place(table, name, started, data)
        s3.put_object(Bucket=bucket, Key=placed.key, Body=data, Metadata=placed.metadata, ContentType="text/csv")
        record_all(ledger, [placed.entry])

    return write_file


def run(
    *,
    target: Connection,
    source: Source,
    contract: Contract,
    store: PositionStore,
    write_file: Callable[[str, bytes], None],
    started: datetime,
    time_left: Callable[[], bool],
) -> ExtractReport:
    connection = connect(target)
    try:
        return extract(
            connection, source, contract, store=store, write_file=write_file, started=started, time_left=time_left
        )
    finally:
        connection.close()


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    table, secret = os.environ[TABLE_ENV], os.environ[SECRET_ENV]
    contract = _contracts()[table]
    source = parse_source(json.loads(os.environ[SOURCE_ENV]), contract, f"sources/{table}.yaml")
    secret_text = boto3.client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"]
    dynamodb = boto3.client("dynamodb")
    ledger = DynamoLedger(dynamodb, os.environ[LEDGER_TABLE_ENV])
    started = datetime.now(UTC)
    try:
        report = run(
            target=Connection.from_secret(secret_text, secret),
            source=source,
            contract=contract,
            store=position_store(dynamodb, os.environ[LEDGER_TABLE_ENV], table),
            write_file=writer(boto3.client("s3"), os.environ[RAW_BUCKET_ENV], ledger, table, started),
            started=started,
            time_left=time_left(context.get_remaining_time_in_millis),
        )
    except PositionMoved as moved:  # two runs at once (a late retry beside the schedule's): not a failure to retry
        logger.warning("extract stopped: another run moved the position", extra={"table": table, "reason": str(moved)})
        return {"table": table, "stopped": str(moved)}
    emit_per_table(table, dict(zip(EXTRACT_TABLE_METRICS, [report.rows, 0 if report.complete else 1], strict=True)))
    result = {
        "table": table,
        "files": len(report.files),
        "rows": report.rows,
        "snapshot": report.snapshot,
        "complete": report.complete,
        "position": report.position.text() if report.position else None,
    }
    logger.info("extract finished" if report.complete else "extract stopped for want of time", extra=result)
    return result
