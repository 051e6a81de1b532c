"""First step of the pipeline (invoked by the state machine for each raw object created): a file that
cannot be read against its contract goes to quarantine whole, with the reason beside it."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.keys import resolve_raw_key
from lambdas.observability import instrumented, logger, metrics
from lambdas.payloads import FileEvent, Quarantined, Validated, Validation
from lambdas.quarantine import quarantine_file
from lambdas.telemetry import Metric
from lambdas.validate.logic import Verdict, inspect
from pipeline.contract import Contract, load_contracts
from pipeline.job_arguments import read_whole_argument
from pipeline.layout import LayoutError, landing_key_from_metadata, parse_raw_key, quarantined_file_key
from pipeline.ledger import Entry, Step, ledger_from_environment, record_all

if TYPE_CHECKING:  # the stubs are a development dependency: the Lambda runtime has none
    from mypy_boto3_s3 import S3Client

_contracts = functools.cache(load_contracts)  # read once per container, not per invocation


def validate_object(s3: S3Client, bucket: str, key: str, quarantine: str, contracts: dict[str, Contract]) -> Validation:
    landing_key = None
    try:
        raw = parse_raw_key(key)
        contract = contracts.get(raw.contract_name)
        if contract is None:
            verdict = Verdict(False, f"no data contract for {raw.contract_name}")
        else:
            obj = s3.get_object(Bucket=bucket, Key=key)  # its metadata holds the landing key ingest kept
            landing_key = landing_key_from_metadata(obj.get("Metadata", {}))
            verdict = inspect(obj["Body"], raw.file, contract)
    except LayoutError as exc:
        raw, verdict = None, Verdict(False, str(exc))
    if not verdict.readable:
        where = quarantine_file(s3, bucket, key, quarantine, quarantined_file_key(key), verdict.reason)
        logger.warning("file quarantined", extra={"key": key, "reason": verdict.reason})
        return Quarantined(valid=False, source=f"s3://{bucket}/{key}", reason=verdict.reason, quarantined=where)
    if raw is None:  # a valid verdict always comes with the parsed raw key
        raise ValueError(f"validated s3://{bucket}/{key} without a raw key")
    return Validated(
        valid=True,
        source=f"s3://{bucket}/{key}",
        key=key,
        dataset=raw.dataset,
        table=raw.table,
        created_at=raw.created_at,
        batch=raw.batch,
        unknown_columns=list(verdict.unknown_columns),
        landing_key=landing_key,
        read_whole=read_whole_argument(verdict.read_whole),
    )


def ledger_entry(key: str, result: Validation) -> Entry:
    """The ledger's record of a verdict: validated, with the columns the contract does not know, or
    quarantined whole, with the reason and where the file went."""
    if result["valid"]:
        return Entry(key, Step.VALIDATED, {"unknown_columns": result["unknown_columns"]})
    return Entry(key, Step.QUARANTINED, {"reason": result["reason"], "location": result["quarantined"]})


@instrumented
def handler(event: FileEvent, context: LambdaContext) -> Validation:
    s3, bucket = boto3.client("s3"), event["bucket"]
    key = resolve_raw_key(s3, bucket, event["key"])  # the event's key, maybe URL-encoded: the object's own key
    # the steps after validate read result["key"] ($.validation.key), never the event's
    result = validate_object(s3, bucket, key, os.environ["QUARANTINE_BUCKET"], _contracts())
    record_all(ledger_from_environment(), [ledger_entry(key, result)])
    metrics.add_metric(
        name=Metric.FILES_VALID if result["valid"] else Metric.FILES_QUARANTINED, unit=MetricUnit.Count, value=1
    )
    return result
