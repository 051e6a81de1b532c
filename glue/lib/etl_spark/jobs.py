"""The two jobs as functions of a SparkSession and storage locations (s3:// in Glue, local paths in the
local run and the benchmark): the Glue entry modules only parse arguments and call these."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from etl_spark.io import delete_tree, path_exists, read_raw_csv
from etl_spark.rules import identifier
from etl_spark.transforms import profile, profile_aggregates, raw_to_staging, staging_schema, staging_to_curated
from pipeline.contract import Contract
from pipeline.gate import Moments, check_build
from pipeline.layout import (
    PROFILE_FILE,
    RawObject,
    batch_prefix,
    batch_runs_prefix,
    passed_runs,
    quarantined_rows_prefix,
    run_prefix,
    staging_prefix,
)

WriteText = Callable[[str, str], None]  # (location, text)
DeleteTexts = Callable[[str], None]  # (location prefix): every object under it
HUGE_METHOD_LIMIT = ("spark.sql.codegen.hugeMethodLimit", "8000")
"""The contract's checks make one large projection. Spark compiles it into one method while it stays under
64 KB, but the JVM's JIT never compiles a method over 8,000 bytes, so it ran interpreted: 13 of raw_to_staging's
20 s on 1M rows (scripts/benchmark_raw_to_staging.py). At 8,000 Spark generates code per expression instead."""


def run_raw_to_staging(
    spark: SparkSession,
    contract: Contract,
    raw: RawObject,
    *,
    raw_root: str,
    staging_root: str,
    quarantine_root: str,
    header: list[str],
    updated_at: str,
    write_text: WriteText,
    delete_texts: DeleteTexts,
    run_id: str,
    landing_key: str | None = None,
    size: int | None = None,
) -> dict[str, Any]:
    """Accepted rows to staging (Parquet, in the run's own folder), rejected rows to quarantine (JSON lines,
    each with its reason), the profile in the run's folder for the gate. `size` (the raw object's bytes, as
    Glue's entry passes it) spares a small file the scan for line breaks in quoted fields. Returns the profile:
    rows in counted as the file is checked, the staged figures read back from what was written, rejected rows
    counted as they are written; the job fails if rows in != written + rejected.

    The batch's earlier verdicts go first, then its earlier data: from then on nothing of the file is promoted
    until this run's own verdict, so a re-run that fails the gate, or dies half-way, never leaves an earlier
    pass standing over data it no longer describes."""
    source = f"{raw_root}/{raw.key}"
    staged = f"{staging_root}/{staging_prefix(raw, run_id)}"  # checks the run id before anything is deleted
    delete_texts(f"{staging_root}/{batch_runs_prefix(raw)}")
    delete_tree(spark, f"{staging_root}/{batch_prefix(raw)}")
    spark.conf.set(*HUGE_METHOD_LIMIT)
    frame = read_raw_csv(spark, source, contract.format, len(header), size=size)
    result = raw_to_staging(
        frame,
        contract,
        header,
        created_at=raw.created_at,
        updated_at=updated_at,
        source_file=source,
        landing_key=landing_key,
    )
    # checked once into executor memory (a local checkpoint, freed with the session), then both outputs are
    # written from it; the driver holds none of the rows, whatever the file holds
    result = result.over(result.checked.localCheckpoint(eager=False))
    # named uniquely: Spark hands an observation the metrics of any query with its name, and the local
    # run writes several files' batches at once (a shared name mixed their counts up: the invariant caught it)
    unique = uuid.uuid4().hex
    counted, rejected = Observation(f"in-{unique}"), Observation(f"rejected-{unique}")
    try:
        counting = result.over(result.checked.observe(counted, F.count(F.lit(1)).alias("rows")))
        counting.staging.write.mode("overwrite").parquet(staged)
        # the gate's figures from what was written: a columnar scan of a few columns (observing them during
        # the write evaluated every aggregate row by row: 0.6x a plain copy's time on 1M rows, measured alone)
        (figures,) = spark.read.parquet(staged).agg(*profile_aggregates(contract)).collect()  # one row, always
        (
            result.rejected.observe(rejected, F.count(F.lit(1)).alias("rows"))
            .write.mode("overwrite")
            .json(f"{quarantine_root}/{quarantined_rows_prefix(raw)}")
        )
        report = profile(
            figures.asDict(),
            contract,
            rows_in=int(counted.get["rows"]),
            rows_rejected=int(rejected.get["rows"]),
            unknown_columns=result.unknown_columns,
            source_file=source,
        ) | {"run_id": run_id}
    finally:
        result.checked.unpersist()
    if report["rows_in"] != report["rows_written"] + report["rows_rejected"]:
        raise RuntimeError(
            f"rows lost in {source}: {report['rows_in']} in, {report['rows_written']} written, "
            f"{report['rows_rejected']} rejected"
        )
    write_text(f"{staging_root}/{run_prefix(raw, run_id)}{PROFILE_FILE}", json.dumps(report, indent=2))
    return report


class CuratedCheckFailed(RuntimeError):
    """A curated build that broke the contract's table checks: the table was left as it was."""


def run_staging_to_curated(
    spark: SparkSession, contract: Contract, *, staging_root: str, passed_partitions: list[str], curated_root: str
) -> int:
    """Rebuild the curated table from the batches that passed the gate, once the build passes the table's
    checks (`pipeline.gate.check_build`: rows, one per key, no unexplained shrinking); a build that fails them
    raises CuratedCheckFailed before anything is written. Returns its row count. A check-only contract is
    refused here too, whoever calls: its data never reach curated."""
    if contract.check_only:
        raise RuntimeError(f"{contract.name} is check-only: it is never promoted to curated")
    if not passed_partitions:
        raise RuntimeError(f"no batch of {contract.name} has passed the gate: nothing to promote")
    target = f"{curated_root}/{contract.dataset}/{contract.table}/"
    staging = read_staged(spark, contract, [f"{staging_root}/{p}/" for p in passed_partitions])
    curated = staging_to_curated(staging, contract).cache()
    try:
        shifting = list(contract.quality.max_mean_shift)
        (rows, keys, *figures) = curated.agg(
            F.count(F.lit(1)), F.countDistinct(*contract.key), *_moments(shifting)
        ).first() or (0, 0)
        previous = previous_build(spark, target, shifting)
        result = check_build(
            contract,
            rows=int(rows),
            keys=int(keys),
            previous_rows=None if previous is None else previous[0],
            moments=_by_column(shifting, figures),
            previous_moments=None if previous is None else previous[1],
        )
        if not result.passed:
            failures = "; ".join(f"{c.rule} (observed {c.observed})" for c in result.failures)
            raise CuratedCheckFailed(f"the curated build of {contract.name} was not written: {failures}")
        curated.write.mode("overwrite").parquet(target)
    finally:
        # Spark serves a later plan like this one from the cache: a rebuild in the same session (the local run,
        # after an erasure) must read staging again, not this run's rows
        curated.unpersist()
    return int(rows)


def read_staged(spark: SparkSession, contract: Contract, paths: list[str]) -> DataFrame:
    """The staged batches as the contract now types them. Read with the contract's schema, so that a column it
    gained reads as null in batches staged before it; but Spark 3.5 cannot read a Parquet integer column as a
    double, so where the contract widened a column (integer to double) since some batches were staged, each
    batch is read with its own schema and cast (a union of one scan per batch: slower, until those batches
    are staged again)."""
    schema = spark.createDataFrame([], staging_schema(contract)).schema  # the DDL parsed, no job run
    try:  # the footers only; merging fails (a SparkException) where batches disagree on a column's type
        found = spark.read.option("mergeSchema", "true").parquet(*paths).schema
    except Py4JJavaError:
        found = None
    if found is not None and all(
        field.name not in found.fieldNames() or found[field.name].dataType == field.dataType for field in schema
    ):
        return spark.read.schema(schema).parquet(*paths)

    def cast(batch: DataFrame) -> DataFrame:
        return batch.select(
            *[
                (F.col(f.name) if f.name in batch.columns else F.lit(None)).cast(f.dataType).alias(f.name)
                for f in schema
            ]
        )

    return functools.reduce(DataFrame.unionByName, [cast(spark.read.parquet(path)) for path in paths])


def _moments(columns: list[str]) -> list[Any]:
    """Each column's mean and standard deviation, as aggregates (in `columns` order)."""
    return [
        aggregate
        for name in columns
        for aggregate in (F.avg(F.col(identifier(name))), F.stddev(F.col(identifier(name))))
    ]


def _by_column(columns: list[str], figures: list[Any]) -> dict[str, Moments]:
    return {name: Moments(figures[2 * i], figures[2 * i + 1]) for i, name in enumerate(columns)}


def previous_build(spark: SparkSession, target: str, columns: list[str]) -> tuple[int, dict[str, Moments]] | None:
    """(rows, each of `columns`' moments) of the curated table a build replaces; None where there is none (a
    first build, or a folder an erasure emptied of Parquet files: Spark cannot infer a schema from no file).
    A column the previous build did not have has no moments (None, None): nothing to move from."""
    if not path_exists(spark, target):
        return None
    try:
        previous = spark.read.parquet(target)
    except AnalysisException:
        return None
    present = [name for name in columns if name in previous.columns]
    (rows, *figures) = previous.agg(F.count(F.lit(1)), *_moments(present)).first() or (0,)
    moments = _by_column(present, figures)
    return int(rows), {name: moments.get(name, Moments(None, None)) for name in columns}


def passed_partitions(marker_keys: list[str]) -> list[str]:
    """The staged data of the batches that passed the gate, each in the run the verdict is of
    (`pipeline.layout.passed_runs`)."""
    return passed_runs(marker_keys)
