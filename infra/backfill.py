"""Backfill one table of a workspace: every raw file of it through the pipeline again, and its curated table
built from scratch.

    python -m infra.backfill --branch main --table diabetes/patients                  # staging and curated
    python -m infra.backfill --branch main --table diabetes/patients --curated-only   # curated, from staging

Restaging sends each raw object's Object Created event to the raw-file queue again, with this backfill's id
(`backfill-<UTC time>`): dispatch names each execution after the object and the id, so every file runs once
more (within `etl.max_running_files` at once, as any burst) and the ledger records it (its dispatch names the
backfill). Each re-run replaces the batch's staged run, so the table's next scheduled promotion finds batches
its builds took in staged again and builds from scratch (pipeline/layout.py: promotion_plan): curated is
rebuilt from raw with no further step. The scheduled promotion holds that build while a batch of the table is
being run again (cleared, no verdict yet), so that no build leaves its rows out; a build between two waves of
re-runs is from scratch and complete, and the last one follows the last file.

`--curated-only` starts the promotion's Glue job for the table with `--from_scratch true` now (refused while
a build of the table runs): after a change of the build's own logic, staging being sound.

The caller's credentials are used (the backfill workflow's role in CI); bucket, queue and job names come
from the workspace's stack outputs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from infra.stack_outputs import PROMOTION_JOB_OUTPUT, RAW_FILE_QUEUE_OUTPUT, RAW_OUTPUT, TABLE_PROMOTION_JOBS_OUTPUT
from pipeline.job_arguments import Argument

if TYPE_CHECKING:
    from mypy_boto3_glue import GlueClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

BATCH = 10
"""SendMessageBatch's limit."""


class BackfillError(RuntimeError):
    """A backfill that cannot start as asked."""


@dataclass(frozen=True)
class RawObject:
    key: str
    etag: str


def replay_event(bucket: str, obj: RawObject, replay: str) -> str:
    """The Object Created event EventBridge sends for `obj` (the fields dispatch and the state machine read:
    its ETag where the version id would be, as for an unversioned bucket), marked as this backfill's replay."""
    detail = {"bucket": {"name": bucket}, "object": {"key": obj.key, "etag": obj.etag}, "replay": replay}
    return json.dumps({"detail-type": "Object Created", "source": "aws.s3", "detail": detail})


def raw_objects(s3: S3Client, bucket: str, table: str) -> Iterator[RawObject]:
    """Every raw object of `table` (`<dataset>/<table>`): raw is write-once, one object per key."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{table}/"):
        for obj in page.get("Contents", []):
            yield RawObject(obj["Key"], obj["ETag"].strip('"'))


def restage(s3: S3Client, sqs: SQSClient, raw_bucket: str, queue_url: str, table: str, replay: str) -> int:
    """Queue every raw file of `table` again, as this backfill's replay; returns how many."""
    objects = list(raw_objects(s3, raw_bucket, table))
    for start in range(0, len(objects), BATCH):
        entries = [
            {"Id": str(i), "MessageBody": replay_event(raw_bucket, obj, replay)}
            for i, obj in enumerate(objects[start : start + BATCH])
        ]
        failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])  # type: ignore[arg-type]
        if failed:
            raise BackfillError(f"the raw-file queue refused {len(failed)} events: {failed[0].get('Message')}")
    return len(objects)


def rebuild(glue: GlueClient, job: str, table: str, also_running_in: tuple[str, ...] = ()) -> str:
    """Start a build of `table` from scratch in `job`; refused while one of the table's builds runs there or in
    `also_running_in` (the shared job, for a table that has just got one of its own: a build started before
    the deploy may still run there)."""
    from lambdas.promote.logic import running_tables

    for name in dict.fromkeys((job, *also_running_in)):  # each job asked once
        if table in running_tables(glue.get_job_runs(JobName=name, MaxResults=200)["JobRuns"]):
            raise BackfillError(f"a build of {table} is running ({name}): start the backfill once it has finished")
    return glue.start_job_run(JobName=job, Arguments={Argument.TABLE.flag: table, Argument.FROM_SCRATCH.flag: "true"})[
        "JobRunId"
    ]


def promotion_job(outputs: dict[str, str], table: str) -> str:
    """The job that builds `table`'s curated data: its own (config etl.dedicated_jobs), else the shared one."""
    own: dict[str, str] = json.loads(outputs.get(TABLE_PROMOTION_JOBS_OUTPUT, "{}"))
    return own.get(table, outputs[PROMOTION_JOB_OUTPUT])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.backfill", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--branch", required=True, help="the workspace's git ref (main: int, a release tag: prd)")
    parser.add_argument("--table", required=True, help="<dataset>/<table>, as its contract names it")
    parser.add_argument(
        "--curated-only", action="store_true", help="rebuild curated from staging now; raw is not run again"
    )
    args = parser.parse_args(argv)
    try:
        outcome = backfill(args.branch, args.table, curated_only=args.curated_only)
    except (BackfillError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(outcome)
    return 0


def backfill(branch: str, table: str, *, curated_only: bool) -> str:
    import boto3

    from infra.config import DEFAULT_CONFIG_PATH, load_config
    from infra.naming import Component, stack_name
    from infra.smoke import stack_outputs
    from infra.workspace import resolve
    from pipeline.contract import contract_named, load_contracts

    contract = contract_named(load_contracts(), table, promote=True)  # a check-only table is refused here
    config = load_config(DEFAULT_CONFIG_PATH)
    target = resolve(branch, config.naming_rules)
    region = config.stage(target.stage).region
    if Component.ETL not in config.stage(target.stage).components.stacks:
        raise BackfillError(
            f"stage {target.stage.value} has no ETL (config components.etl: false): nothing runs the raw files "
            "again or rebuilds curated; switch it on (README: Switch components)"
        )
    cfn = boto3.client("cloudformation", region_name=region)
    outputs: dict[str, str] = {}
    for component in (Component.STORAGE, Component.ETL):
        found = stack_outputs(cfn, stack_name(config.project, target.workspace, component))
        if found is None:
            raise BackfillError(f"the workspace {target.workspace} has no {component.value} stack: deploy it first")
        outputs |= found
    if curated_only:
        job = promotion_job(outputs, contract.name)
        run = rebuild(boto3.client("glue", region_name=region), job, contract.name, (outputs[PROMOTION_JOB_OUTPUT],))
        return f"{contract.name}: a build from scratch started ({job} run {run})"
    replay = f"backfill-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    count = restage(
        boto3.client("s3", region_name=region),
        boto3.client("sqs", region_name=region),
        outputs[RAW_OUTPUT],
        outputs[RAW_FILE_QUEUE_OUTPUT],
        contract.name,
        replay,
    )
    return (
        f"{contract.name}: {count} raw files queued to run again ({replay}); the next scheduled promotion "
        "rebuilds curated from scratch once they pass"
    )


if __name__ == "__main__":
    sys.exit(main())
