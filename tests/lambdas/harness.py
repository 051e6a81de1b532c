"""The handlers run as Lambda runs them, against moto's S3: every code path that emits a metric, and the
metrics it emitted, read from its stdout as CloudWatch reads them (EMF).

Two uses: in-process in the handlers' tests (tests/lambdas/test_metrics.py), and in a fresh interpreter
started with a synthesised function's own environment (`emitted_metrics`, tests/infra/test_observability.py),
as a Lambda cold start would: Powertools takes its settings from the environment at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
BUCKETS = {"landing": "test-landing", "raw": "test-raw", "quarantine": "test-quarantine", "staging": "test-staging"}
FUNCTIONS = tuple(sorted(path.parent.name for path in (ROOT / "lambdas").glob("*/handler.py")))
"""Every handler of lambdas/: a new one without a path in `exercise` fails the metrics tests."""
AWS_TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
KEY = "diabetes/patients/created_at=20261122T103005Z/visits.csv"


class FakeContext:
    function_name = "test"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:test"
    aws_request_id = "req-1"


def keys(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def create_buckets(s3: Any) -> None:
    for bucket in BUCKETS.values():
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})


@dataclass(frozen=True)
class EmittedMetric:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    """(name, value) pairs, sorted: CloudWatch identifies a metric by the set, not the order."""


def parse_emf(output: str) -> list[EmittedMetric]:
    """Every metric of every EMF record printed in `output`, one per dimension set (what CloudWatch creates)."""
    emitted = []
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or "_aws" not in record:
            continue
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                dimensions = tuple(sorted((name, record[name]) for name in dimension_set))
                emitted += [
                    EmittedMetric(directive["Namespace"], metric["Name"], dimensions) for metric in directive["Metrics"]
                ]
    return emitted


def exercise(function: str, s3: Any) -> None:
    """Invoke `function`'s handler once on each path that emits a metric (S3: moto, with BUCKETS created).
    The handler module is imported here, so that a fresh interpreter imports it with its environment."""
    import importlib

    from pipeline.contract import load_contracts
    from pipeline.layout import PROFILE_FILE, parse_raw_key, run_prefix
    from tests.pipeline.test_gate import GOOD

    handler = importlib.import_module(f"lambdas.{function}.handler").handler
    environment = {
        "LANDING_BUCKET": BUCKETS["landing"],
        "RAW_BUCKET": BUCKETS["raw"],
        "QUARANTINE_BUCKET": BUCKETS["quarantine"],
        "STAGING_BUCKET": BUCKETS["staging"],
    }
    with mock.patch.dict(os.environ, environment):
        if function == "ingest":  # one file to move, one to quarantine: both metrics in one run
            s3.put_object(Bucket=BUCKETS["landing"], Key="diabetes/patients/visits.csv", Body=b"x")
            s3.put_object(Bucket=BUCKETS["landing"], Key="stray.csv", Body=b"x")
            handler({}, FakeContext())
        elif function == "validate":  # a readable file, then an empty one
            header = ",".join(load_contracts()["diabetes/patients"].column_names).encode() + b"\n"
            for key, body in ((KEY, header), (KEY.replace("visits", "empty"), b"")):
                s3.put_object(Bucket=BUCKETS["raw"], Key=key, Body=body)
                handler({"bucket": BUCKETS["raw"], "key": key}, FakeContext())
        elif function == "gate":  # a profile that passes, then one that breaks a rule
            for profile in (GOOD, dict(GOOD, rows_written=90)):
                s3.put_object(
                    Bucket=BUCKETS["staging"],
                    Key=run_prefix(parse_raw_key(KEY), "jr_harness") + PROFILE_FILE,
                    Body=json.dumps(profile),
                )
                handler({"key": KEY}, FakeContext())
        else:
            raise KeyError(f"no metric path of lambdas/{function} in tests/lambdas/harness.py: add one")


def emitted_metrics(environments: Mapping[str, Mapping[str, str]]) -> dict[str, list[EmittedMetric]]:
    """For each function (name -> its environment), the metrics its handler emits when run, like a cold
    start, in a fresh interpreter with that environment and nothing else of this process's. In parallel."""
    runs = {
        function: subprocess.Popen(
            [sys.executable, "-m", "tests.lambdas.harness", function],
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PATH": os.environ["PATH"], **AWS_TEST_ENVIRONMENT, **environment},
        )
        for function, environment in environments.items()
    }
    emitted = {}
    for function, run in runs.items():
        out, err = run.communicate(timeout=300)
        if run.returncode != 0:
            raise RuntimeError(f"lambdas/{function} failed:\n{err[-3000:]}")
        emitted[function] = parse_emf(out)
    return emitted


def _main(function: str) -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        create_buckets(s3)
        exercise(function, s3)


if __name__ == "__main__":
    _main(sys.argv[1])
