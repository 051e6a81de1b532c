"""The quality gate (a state of the pipeline): evaluate the staging profile of one raw file against
its contract's rules and leave the verdict beside it; staging_to_curated promotes only passed batches."""

from __future__ import annotations

import functools
import json
import os
from typing import TYPE_CHECKING

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.observability import emit_per_table, instrumented, logger, metrics
from lambdas.payloads import BatchEvent, GateVerdict
from lambdas.telemetry import GATE_TABLE_METRICS, Metric
from pipeline.contract import Contract, load_contracts
from pipeline.gate import evaluate
from pipeline.layout import (
    GATE_FAILED,
    GATE_PASSED,
    PROFILE_FILE,
    batch_runs_prefix,
    parse_raw_key,
    run_id_of,
    run_prefix,
)
from pipeline.ledger import Entry, Step, ledger_from_environment, record_all
from pipeline.s3_objects import keys_under

if TYPE_CHECKING:  # the stubs are a development dependency: the Lambda runtime has none
    from mypy_boto3_s3 import S3Client

_contracts = functools.cache(load_contracts)  # read once per container, not per invocation


def gate_batch(s3: S3Client, staging: str, raw_key: str, contracts: dict[str, Contract]) -> GateVerdict:
    """The verdict on the one run of the batch that left a profile, written in that run's folder (the run's
    other verdict, if any, removed): only the run that wrote the data is judged, and a run raw_to_staging
    cleared first is never judged by an earlier run's profile."""
    raw = parse_raw_key(raw_key)
    present = keys_under(s3, staging, batch_runs_prefix(raw))
    profiles = [k for k in present if k.endswith("/" + PROFILE_FILE)]
    if len(profiles) != 1:
        raise RuntimeError(
            f"{raw.batch} has {len(profiles)} staged runs with a profile, not one: "
            + ("raw_to_staging has not staged it" if not profiles else "two runs of one file overlapped")
            + "; run raw_to_staging for it again (a run clears the batch's earlier runs)"
        )
    run_id = run_id_of(profiles[0], raw)
    prefix = run_prefix(raw, run_id)
    profile = json.loads(s3.get_object(Bucket=staging, Key=profiles[0])["Body"].read())
    result = evaluate(contracts[raw.contract_name], profile)
    verdict, other = (GATE_PASSED, GATE_FAILED) if result.passed else (GATE_FAILED, GATE_PASSED)
    if prefix + other in present:  # only then: in a versioned bucket each delete leaves a marker
        s3.delete_object(Bucket=staging, Key=prefix + other)
    s3.put_object(
        Bucket=staging, Key=prefix + verdict, ContentType="application/json", Body=json.dumps(result.as_dict())
    )
    return GateVerdict(
        passed=result.passed,
        verdict=f"s3://{staging}/{prefix + verdict}",
        failures=[f"{c.rule} (observed {c.observed})" for c in result.failures],
        run_id=run_id,
        rows_in=int(profile["rows_in"]),  # COUNTS, one by one: a TypedDict's keys are written out
        rows_written=int(profile["rows_written"]),
        rows_rejected=int(profile["rows_rejected"]),
    )


COUNTS = ("rows_in", "rows_written", "rows_rejected")
"""raw_to_staging's counts of the run judged, from its profile: into the gate's result and the ledger."""


def ledger_entry(raw_key: str, result: GateVerdict) -> Entry:
    """The ledger's record of a verdict: passed or not, why not, and the judged run's counts."""
    recorded = ("passed", "failures", "run_id", *COUNTS)
    return Entry(raw_key, Step.GATED, {k: v for k, v in result.items() if k in recorded})


@instrumented
def handler(event: BatchEvent, context: LambdaContext) -> GateVerdict:
    result = gate_batch(boto3.client("s3"), os.environ["STAGING_BUCKET"], event["key"], _contracts())
    record_all(ledger_from_environment(), [ledger_entry(event["key"], result)])
    table = parse_raw_key(event["key"]).contract_name
    values = [result["rows_in"], result["rows_written"], result["rows_rejected"], 0 if result["passed"] else 1]
    emit_per_table(table, dict(zip(GATE_TABLE_METRICS, values, strict=True)))  # GATE_TABLE_METRICS' order
    metrics.add_metric(
        name=Metric.GATE_PASSED if result["passed"] else Metric.GATE_FAILED, unit=MetricUnit.Count, value=1
    )
    logger.info("gate evaluated", extra=result)
    return result
