"""The quality gate (a state of the pipeline): evaluate the staging profile of one raw file against
its contract's rules and leave the verdict beside it; staging_to_curated promotes only passed batches."""

from __future__ import annotations

import functools
import json
import os
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.observability import instrumented, logger, metrics
from lambdas.telemetry import Metric
from pipeline.contract import Contract, load_contracts
from pipeline.gate import evaluate
from pipeline.layout import GATE_FAILED, GATE_PASSED, PROFILE_FILE, parse_raw_key, run_prefix

if TYPE_CHECKING:  # the stubs are a development dependency: the Lambda runtime has none
    from mypy_boto3_s3 import S3Client

_contracts = functools.cache(load_contracts)  # read once per container, not per invocation


def gate_batch(s3: S3Client, staging: str, raw_key: str, contracts: dict[str, Contract]) -> dict[str, Any]:
    raw = parse_raw_key(raw_key)
    prefix = run_prefix(raw)
    profile = json.loads(s3.get_object(Bucket=staging, Key=prefix + PROFILE_FILE)["Body"].read())
    result = evaluate(contracts[raw.contract_name], profile)
    verdict_key = prefix + (GATE_PASSED if result.passed else GATE_FAILED)
    s3.put_object(Bucket=staging, Key=verdict_key, ContentType="application/json", Body=json.dumps(result.as_dict()))
    return {
        "passed": result.passed,
        "verdict": f"s3://{staging}/{verdict_key}",
        "failures": [f"{c.rule} (observed {c.observed})" for c in result.failures],
    }


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = gate_batch(boto3.client("s3"), os.environ["STAGING_BUCKET"], event["key"], _contracts())
    metrics.add_metric(
        name=Metric.GATE_PASSED if result["passed"] else Metric.GATE_FAILED, unit=MetricUnit.Count, value=1
    )
    logger.info("gate evaluated", extra=result)
    return result
