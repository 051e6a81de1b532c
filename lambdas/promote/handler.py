"""Scheduled: start staging_to_curated for each table with batches waiting for a curated build.

Promotion runs per table over every batch that passed since the table's current build, not once per file: a
burst of files makes one build. Tables go longest-waiting first; a table whose promotion runs is left to it;
Glue's limit on the job's concurrent runs (one per table) stops the rest until the next tick. How long the
oldest waiting pass has waited is a metric, which alarms past the configured age (the queue's, for a file
waiting to start). Two passing runs of one batch cannot be promoted: the function names them and fails
(its errors alarm) after starting the other tables.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.observability import instrumented, logger, metrics
from lambdas.promote.logic import TABLE_PROMOTION_JOBS_ENV, Refused, Waiting, running_tables, to_start, waiting
from lambdas.telemetry import Metric
from pipeline.builds import Build, current_build, held_runs
from pipeline.catalog import sync_partitions
from pipeline.contract import Contract, load_contracts
from pipeline.job_arguments import Argument
from pipeline.layout import table_runs_prefix
from pipeline.s3_objects import read_text_or_none

if TYPE_CHECKING:  # the stubs are a development dependency: the Lambda runtime has none
    from mypy_boto3_glue import GlueClient
    from mypy_boto3_s3 import S3Client


class PromotionRefused(RuntimeError):
    """A table whose passed batches cannot be promoted as they are."""


def listed_runs(s3: S3Client, staging: str, table: str) -> list[tuple[str, datetime]]:
    """Every key under the table's `_runs/` in staging, with when it was written."""
    dataset, name = table.split("/")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=staging, Prefix=table_runs_prefix(dataset, name))
    return [(o["Key"], o["LastModified"]) for page in pages for o in page.get("Contents", [])]


def promote_waiting(
    s3: S3Client,
    glue: GlueClient,
    buckets: tuple[str, str],
    job: str,
    contracts: list[Contract],
    now: datetime,
    catalog: str | None = None,
    table_jobs: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Start a promotion of each waiting table that is not being promoted, while Glue lets its job run: `job`,
    or the table's own in `table_jobs` (config etl.dedicated_jobs; by `dataset/table`).
    `buckets`: staging (the runs and their verdicts) and curated (each table's current build and its manifest).
    Then, with a `catalog` database, bring the catalog partitions of every table no promotion is building to its
    current build's (pipeline/catalog.py): a new workspace's tables, or a sync a failed run left undone, are
    current within a tick, with or without new data; a table being built is synced by its run."""
    staging, curated = buckets

    def read(key: str) -> str | None:
        return read_text_or_none(s3, curated, key)

    def holding(contract: Contract) -> tuple[Build, list[str]] | None:
        current = current_build(read, contract.dataset, contract.table)
        return None if current is None else (current, held_runs(read, current))

    found = [waiting(c.name, listed_runs(s3, staging, c.name), holding(c), c, now) for c in contracts]
    ready = [w for w in found if isinstance(w, Waiting)]
    refused = [r for r in found if isinstance(r, Refused)]
    own = table_jobs or {}
    job_of = {c.name: own.get(c.name, job) for c in contracts}
    running = set().union(
        *(
            running_tables(glue.get_job_runs(JobName=name, MaxResults=200)["JobRuns"])
            for name in sorted(set(job_of.values()))
        )
    )
    started, full = [], set()
    for table in to_start(ready, running):
        if job_of[table] in full:
            continue
        try:
            glue.start_job_run(JobName=job_of[table], Arguments={Argument.TABLE.flag: table})
        except glue.exceptions.ConcurrentRunsExceededException:
            full.add(job_of[table])  # its other tables wait for the next tick
            continue
        started.append(table)
    busy = running | set(started)
    idle = [c for c in contracts if c.name not in busy]
    synced, unsynced = ({}, {}) if catalog is None else sync_catalog(glue, catalog, idle, read, curated)
    return {
        "started": started,
        "catalog": synced,
        "catalog_failed": unsynced,
        "waiting": {w.table: w.batches for w in ready},
        "oldest_wait_seconds": max(((now - w.oldest_pass).total_seconds() for w in ready), default=0.0),
        "refused": {r.table: r.reason for r in refused},
    }


def sync_catalog(
    glue: GlueClient, catalog: str, contracts: list[Contract], read: Callable[[str], str | None], curated: str
) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    """Each table's catalog partitions brought to its current build's: what changed, by table, and why a table's
    could not be (the catalog refused, throttled, or its build cannot be read). One table's failure leaves the
    others to be synced; the handler reports them all and fails after its metrics."""
    synced, failed = {}, {}
    for contract in contracts:
        try:
            build = current_build(read, contract.dataset, contract.table)
            changes = sync_partitions(glue, catalog, contract, build, curated)
        except Exception as error:
            failed[contract.name] = f"{type(error).__name__}: {error}"
            continue
        if not changes.empty:
            synced[contract.name] = {what: len(tokens) for what, tokens in vars(changes).items()}
    return synced, failed


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    contracts = [contract for _, contract in sorted(load_contracts().items()) if not contract.check_only]
    result = promote_waiting(
        boto3.client("s3"),
        boto3.client("glue"),
        (os.environ["STAGING_BUCKET"], os.environ["CURATED_BUCKET"]),
        os.environ["PROMOTION_JOB"],
        contracts,
        datetime.now(UTC),
        os.environ["CATALOG_DATABASE"],
        json.loads(os.environ.get(TABLE_PROMOTION_JOBS_ENV, "{}")),
    )
    logger.info("promotions", extra=result)
    metrics.add_metric(name=Metric.PROMOTIONS_STARTED, unit=MetricUnit.Count, value=len(result["started"]))
    metrics.add_metric(name=Metric.BATCHES_WAITING, unit=MetricUnit.Count, value=sum(result["waiting"].values()))
    metrics.add_metric(name=Metric.PROMOTION_WAIT_SECONDS, unit=MetricUnit.Seconds, value=result["oldest_wait_seconds"])
    problems = [
        *([f"tables whose passed batches cannot be promoted: {result['refused']}"] if result["refused"] else []),
        *(
            [f"tables whose catalog could not be synced: {result['catalog_failed']}"]
            if result["catalog_failed"]
            else []
        ),
    ]
    if problems:
        raise PromotionRefused("; ".join(problems))
    return result
