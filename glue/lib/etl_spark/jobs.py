"""The two jobs as functions of a SparkSession and storage locations (s3:// in Glue, local paths in the
local run and the benchmark): the Glue entry modules only parse arguments and call these."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from etl_spark.io import child_names, delete_tree, path_exists, read_raw_csv
from etl_spark.rules import identifier
from etl_spark.table_transform import apply_transform
from etl_spark.transforms import (
    DELETED,
    curated_state,
    merge_latest,
    order_columns,
    partition_token,
    profile,
    profile_aggregates,
    raw_to_staging,
    staging_schema,
    state_schema,
)
from pipeline.builds import (
    KEEP_BUILDS,
    Build,
    BuildError,
    Partition,
    build_fingerprint,
    current_pointer,
    folders_to_remove,
    held_runs,
    kept_build,
    manifest,
    next_number,
    partitions_to_remove,
    table_moments,
)
from pipeline.contract import Contract
from pipeline.gate import Moments, check_build
from pipeline.layout import (
    DELETED_FOLDER,
    PARTITION,
    PROFILE_FILE,
    RawObject,
    batch_prefix,
    batch_runs_prefix,
    build_folder,
    current_build_key,
    promotion_plan,
    quarantined_rows_prefix,
    run_prefix,
    staging_prefix,
    table_prefix,
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
    multiline: bool | None = None,
) -> dict[str, Any]:
    """Accepted rows to staging (Parquet, in the run's own folder), rejected rows to quarantine (JSON lines,
    each with its reason), the profile in the run's folder for the gate. `multiline`: whether the file must be
    read whole (`etl_spark.io.must_read_whole`), as the validate step found (`--read_whole`); where None, the job
    scans the file itself, unless its `size` (the raw object's bytes, as Glue's entry passes it) is small
    enough to read whole anyway (etl_spark.io.read_raw_csv). Returns the profile:
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
    frame = read_raw_csv(spark, source, contract.format, len(header), multiline=multiline, size=size)
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
        written = spark.read.schema(counting.staging.schema).parquet(staged)  # as written: no footer read to learn it
        (figures,) = written.selectExpr(*profile_aggregates(contract)).collect()  # one row, always
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
    """A curated build that broke the contract's table checks: readers still read the build before it."""


@dataclass(frozen=True)
class CuratedStore:
    """Where a table's builds go: `root` as Spark writes it (s3://<bucket> in Glue, a folder here), and its
    pointers read by key (`read_text`: None where the key is absent) and switched (`swap(key, text, expected)`:
    written only if the key still holds `expected`, the text read before, or is still absent where `expected`
    is None; else BuildConflict). In S3 the swap is a conditional PUT (If-Match the ETag read, If-None-Match)."""

    root: str
    read_text: Callable[[str], str | None]
    swap: Callable[[str, str, str | None], None]

    def location(self, key: str) -> str:
        return f"{self.root}/{key}"


def read_current(curated: CuratedStore, contract: Contract) -> tuple[Build | None, str | None]:
    """The table's current build and its pointer's text (None, None before the first build): a build onto it
    switches the pointer from that text (`run_staging_to_curated`'s `expected`)."""
    pointed = current_pointer(curated.read_text, contract.dataset, contract.table)
    return (None, None) if pointed is None else pointed


def build_onto_current(
    spark: SparkSession,
    contract: Contract,
    *,
    staging_root: str,
    runs: list[str],
    curated: CuratedStore,
    from_scratch: bool = False,
) -> Build:
    """A build of `runs` onto the table's current build (from them alone `from_scratch`), whatever the table's
    staging holds besides: for a rebuild by hand, the tests and the benchmark (`promote` decides the runs)."""
    onto, pointed = read_current(curated, contract)
    return run_staging_to_curated(
        spark,
        contract,
        staging_root=staging_root,
        runs=runs,
        curated=curated,
        onto=onto,
        expected=pointed,
        from_scratch=from_scratch,
    )


def promote(
    spark: SparkSession,
    contract: Contract,
    *,
    marker_keys: list[str],
    staging_root: str,
    curated: CuratedStore,
    from_scratch: bool = False,
) -> tuple[Build, list[str]] | None:
    """The table's next build (`pipeline.layout.promotion_plan`): the batches that passed since its current
    build, merged onto it; or every passed batch from scratch (a backfill, a first build, a contract change,
    or a run the current build holds that no longer passes). `marker_keys`: the keys under the table's
    `_runs/` in staging. Returns the build and the runs it took in (every passed one, from scratch); None where
    nothing is waiting."""
    current, pointed = read_current(curated, contract)
    plan = promotion_plan(
        marker_keys,
        held=None if current is None else held_runs(curated.read_text, current),
        from_scratch=from_scratch or (current is not None and current.contract != build_fingerprint(contract)),
    )
    if not plan.waiting:
        return None
    build = run_staging_to_curated(
        spark,
        contract,
        staging_root=staging_root,
        runs=plan.runs,
        curated=curated,
        onto=current,
        expected=pointed,
        from_scratch=plan.from_scratch,
        held=plan.held,
    )
    return build, plan.runs


def run_staging_to_curated(
    spark: SparkSession,
    contract: Contract,
    *,
    staging_root: str,
    runs: list[str],
    curated: CuratedStore,
    onto: Build | None,
    expected: str | None = None,
    from_scratch: bool = False,
    held: list[str] | None = None,
) -> Build:
    """A new build of the table: `runs` (passed batches, as `passed_runs` names them) merged into build `onto`
    (its live rows and its deleted keys), latest row per key (`merge_latest`); `from_scratch` (or no `onto`),
    `runs` alone, every passed batch, numbered after `onto` and checked against it. Written to a folder of its
    own and made current only once it passes the table's checks (`pipeline.gate.check_build`: rows, one per
    key, no unexplained shrinking, no mean moved too far against `onto`); a build that fails them raises
    CuratedCheckFailed and readers keep reading `onto`. The build's folder holds its manifest, `held` (the runs it
    holds: by default `runs`, and from scratch or not, those of `onto`), written before the switch. The switch
    is a swap of the pointer from `expected`, the pointer's text `onto` was read from (`read_current`):
    BuildConflict where another promotion switched it first. Builds more than KEEP_BUILDS behind, and attempts
    never made current, are removed after the switch. A check-only contract is refused here too, whoever
    calls: its data never reach curated."""
    if contract.check_only:
        raise RuntimeError(f"{contract.name} is check-only: it is never promoted to curated")
    from_scratch = from_scratch or onto is None
    if not runs and onto is None:
        raise RuntimeError(f"no batch of {contract.name} has passed the gate: nothing to promote")
    if (expected is None) != (onto is None):
        raise ValueError("a build onto another switches the pointer from its text: pass both (read_current)")
    partitioned = None if onto is None or onto.partitions is None else onto.partitioning
    if partitioned is not None and not from_scratch and partitioned != contract.partition.as_dict():
        raise BuildError(
            f"build {onto.number} of {contract.name} is partitioned as {partitioned}, the contract now says "
            f"{contract.partition.as_dict()}: build from scratch (make backfill CURATED_ONLY=1 TABLE=...)"
        )
    if held is None:
        held = sorted({*runs, *([] if from_scratch else held_runs(curated.read_text, onto))})
    schema = spark.createDataFrame([], state_schema(contract)).schema  # the DDL parsed, no job run
    parts = [spark.createDataFrame([], schema).withColumn(DELETED, F.lit(False))]  # a build of nothing, at least
    if runs:
        staged = read_staged(spark, contract, [f"{staging_root}/{p}/" for p in runs])
        parts.append(curated_state(apply_transform(staged, contract), contract))  # the table's own, if any
    previous: dict[str, Partition] = {}  # onto's partitions this build leaves as they are, or rewrites
    if onto is not None and not from_scratch:
        live, deleted = _touched_of(spark, contract, functools.reduce(DataFrame.unionByName, parts), onto, curated)
        previous = dict(onto.partitions or {})
        if live:
            parts.append(read_as(spark, schema, live).withColumn(DELETED, F.lit(False)))
        if deleted:
            parts.append(read_as(spark, schema, deleted).withColumn(DELETED, F.lit(True)))
    state = functools.reduce(DataFrame.unionByName, parts).withColumn(PARTITION, partition_token(contract))
    merged = merge_latest(state, contract).cache()
    table = curated.location(table_prefix(contract.dataset, contract.table))
    number = next_number(child_names(spark, table), onto)
    build = Build(
        contract.dataset,
        contract.table,
        number,
        rows=0,
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        folder=build_folder(number, uuid.uuid4().hex[:8]),
        merged=len(runs),
        from_scratch=from_scratch,
        contract=build_fingerprint(contract),
        kept=[] if onto is None else [onto.folder, *onto.kept][:KEEP_BUILDS],
        partitioning=contract.partition.as_dict(),
    )
    try:
        partitions, written = _checked_partitions(spark, contract, curated, merged, build, onto, previous)
        before = {} if onto is None else onto.partitions or {}
        replaced = {token: part.folder for token, part in sorted(before.items()) if from_scratch or token in written}
        rows = sum(part.rows for part in partitions.values())
        build = replace(build, rows=rows, partitions=_recordable(partitions, contract), superseded=replaced)
        # one task a partition where several are written (else every task writes a file into each); a single
        # one is written by every task, as a table without partitions was
        grouped = merged.repartition(PARTITION) if len(written) > 1 else merged
        live_rows = grouped.where(~F.col(DELETED)).drop(DELETED)
        live_rows.write.partitionBy(PARTITION).mode("overwrite").parquet(curated.location(build.prefix))
        # a deleted key's order only (its key and the columns `latest_first` sorts by): none of its values
        grouped.where(F.col(DELETED)).select(
            *[F.col(identifier(c)) for c in order_columns(contract)], F.col(PARTITION)
        ).write.partitionBy(PARTITION).mode("overwrite").parquet(curated.location(build.deleted_prefix))
    finally:
        # Spark serves a later plan like this one from the cache: a rebuild in the same session (the local run,
        # after an erasure) must read staging again, not this run's rows
        merged.unpersist()
    curated.swap(build.manifest_key, manifest(held, build), None)
    curated.swap(current_build_key(contract.dataset, contract.table), build.to_json(), expected)
    _remove_unread(spark, curated, table, build)
    return build


def _touched_of(
    spark: SparkSession, contract: Contract, incoming: DataFrame, onto: Build, curated: CuratedStore
) -> tuple[list[str], list[str]]:
    """The folders of `onto`'s live rows and deleted keys in the partitions `incoming`'s rows fall in (all of
    a build from before partitions): what a build onto it reads. One pass over the new batches' keys, where
    `onto` has more than one partition (reading more partitions than touched is correct, only slower)."""
    if onto.partitions is None:
        deleted = curated.location(onto.deleted_prefix)
        return [curated.location(onto.prefix)], [deleted] if path_exists(spark, deleted) else []
    touched = (
        list(onto.partitions)  # one (or no) partition: read it, no job needed to know
        if len(onto.partitions) <= 1
        else [row[0] for row in incoming.select(partition_token(contract)).distinct().collect()]
    )
    return (
        [curated.location(prefix) for prefix in onto.live_prefixes(touched)],
        [curated.location(prefix) for prefix in onto.deleted_prefixes(touched)],
    )


def _checked_partitions(
    spark: SparkSession,
    contract: Contract,
    curated: CuratedStore,
    merged: DataFrame,
    build: Build,
    onto: Build | None,
    previous: dict[str, Partition],
) -> tuple[dict[str, Partition], dict[str, tuple[Partition, int]]]:
    """The new build's partitions (`previous`, the ones it leaves as they are, and those `merged` rewrote), once
    the build passes the table's checks (`pipeline.gate.check_build`), else CuratedCheckFailed. Figures come from
    the partitions' records where they have them; a column of `quality.max_mean_shift` that some untouched
    partition has none of (the column newly checked, or a sensitive one, never recorded) is computed from the
    partitions' rows, and for the build before from its rows."""
    shifting = list(contract.quality.max_mean_shift)
    written = _partition_figures(merged, contract, build.folder, shifting)
    untouched = {token: part for token, part in previous.items() if token not in written}
    lacking = [name for name, figure in table_moments(untouched, shifting).items() if figure is None]
    if lacking and onto is not None:
        untouched = _with_figures(spark, contract, curated, onto, untouched, lacking)
    partitions = untouched | {token: part for token, (part, _) in written.items()}
    rows = sum(part.rows for part in partitions.values())
    keys = sum(part.rows for part in untouched.values()) + sum(keys for _, keys in written.values())
    previous_moments = None
    if onto is not None and shifting:
        recorded = table_moments(onto.partitions, shifting) if onto.partitions is not None else {}
        unknown = [name for name in shifting if recorded.get(name) is None]
        read = build_moments(spark, [curated.location(p) for p in onto.live_prefixes()], unknown) if unknown else {}
        previous_moments = {name: recorded.get(name) or read[name] for name in shifting}
    moments = {name: figure or Moments(None, None) for name, figure in table_moments(partitions, shifting).items()}
    result = check_build(
        contract,
        rows=rows,
        keys=keys,
        previous_rows=None if onto is None else onto.rows,
        moments=moments,
        previous_moments=previous_moments,
    )
    if not result.passed:
        failures = "; ".join(f"{c.rule} (observed {c.observed})" for c in result.failures)
        raise CuratedCheckFailed(f"build {build.number} of {contract.name} was not made current: {failures}")
    return partitions, written


def _with_figures(
    spark: SparkSession,
    contract: Contract,
    curated: CuratedStore,
    onto: Build,
    untouched: dict[str, Partition],
    columns: list[str],
) -> dict[str, Partition]:
    """`untouched` with `columns`' figures computed from their rows (one read of those partitions)."""
    folders = [curated.location(prefix) for prefix in onto.live_prefixes(untouched)]
    if not folders:
        return untouched
    schema = spark.createDataFrame([], state_schema(contract)).schema
    rows = read_as(spark, schema, folders).withColumn(DELETED, F.lit(False))
    figures = _partition_figures(rows.withColumn(PARTITION, partition_token(contract)), contract, "", columns)
    return {
        token: replace(part, moments=part.moments | figures[token][0].moments) if token in figures else part
        for token, part in untouched.items()
    }


def _recordable(partitions: dict[str, Partition], contract: Contract) -> dict[str, Partition]:
    """The partitions as the pointer records them: no figure of a sensitive column (a partition of one row's
    mean is its value, and the pointer is no object an erasure rewrites)."""
    return {
        token: replace(part, moments={c: v for c, v in part.moments.items() if not contract.column(c).sensitive})
        for token, part in partitions.items()
    }


def _partition_figures(
    merged: DataFrame, contract: Contract, folder: str, shifting: list[str]
) -> dict[str, tuple[Partition, int]]:
    """Each partition the merge rewrote, as the build (in `folder`) records it, with its distinct live keys
    (for the one-row-per-key check): one aggregation, one row per partition to the driver."""
    live = ~F.col(DELETED)
    key = F.struct(*[F.col(identifier(k)) for k in contract.key])
    figures = [
        F.count(F.when(live, F.lit(1))).alias("rows"),
        F.count(F.when(F.col(DELETED), F.lit(1))).alias("deleted"),
        F.count_distinct(F.when(live, key)).alias("keys"),
    ]
    for i, name in enumerate(shifting):
        value = F.when(live, F.col(identifier(name)))
        figures += [F.count(value).alias(f"n{i}"), F.avg(value).alias(f"m{i}"), F.var_pop(value).alias(f"v{i}")]
    written = {}
    for row in merged.groupBy(PARTITION).agg(*figures).collect():
        moments = {
            name: [float(n := int(row[f"n{i}"])), float(row[f"m{i}"] or 0.0), float(row[f"v{i}"] or 0.0) * n]
            for i, name in enumerate(shifting)
        }
        written[row[PARTITION]] = (Partition(folder, int(row["rows"]), int(row["deleted"]), moments), int(row["keys"]))
    return written


def _remove_unread(spark: SparkSession, curated: CuratedStore, table: str, current: Build) -> None:
    """After the switch: the build folders and partitions no kept build reads. A kept build whose manifest
    cannot be read leaves everything where it is (nothing is lost; the next promotion tries again)."""
    try:
        kept = [kept_build(curated.read_text, current, folder) for folder in current.kept]
    except BuildError as error:
        print(f"old builds of {current.dataset}/{current.table} left in place: {error}")
        return
    for folder in folders_to_remove(child_names(spark, table), current, kept):
        delete_tree(spark, f"{table}{folder}")
    for folder in folders_to_remove(child_names(spark, f"{table}{DELETED_FOLDER}"), current, kept):
        delete_tree(spark, f"{table}{DELETED_FOLDER}/{folder}")
    for folder in partitions_to_remove(current, kept):
        delete_tree(spark, f"{table}{folder}")
        delete_tree(spark, f"{table}{DELETED_FOLDER}/{folder}")


def read_build(spark: SparkSession, contract: Contract, curated: CuratedStore, build: Build) -> DataFrame:
    """A build's live rows, as readers read them: its partitions, from whichever build folder holds each."""
    schema = spark.createDataFrame([], state_schema(contract)).schema
    folders = [curated.location(prefix) for prefix in build.live_prefixes()]
    return read_as(spark, schema, folders) if folders else spark.createDataFrame([], schema)


def read_staged(spark: SparkSession, contract: Contract, paths: list[str]) -> DataFrame:
    """The staged batches as the contract now types them (`read_as`)."""
    return read_as(spark, spark.createDataFrame([], staging_schema(contract)).schema, paths)


def read_as(spark: SparkSession, schema: StructType, paths: list[str]) -> DataFrame:
    """Parquet folders (staged batches, a build) as `schema` types them now. Read with that schema, so that a
    column the contract gained reads as null in data written before it; but Spark 3.5 cannot read a Parquet
    integer column as a double, so where the contract widened a column (integer to double) since some of
    them were written, each is read with its own schema and cast (a union of one scan per path: slower,
    until those batches are staged again or a build has rewritten them)."""
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
                (F.col(identifier(f.name)) if f.name in batch.columns else F.lit(None)).cast(f.dataType).alias(f.name)
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


def build_moments(spark: SparkSession, folders: list[str], columns: list[str]) -> dict[str, Moments]:
    """Each of `columns`' moments in a build's folders (one from before partitions): a column that build did not
    have has none (None, None): nothing to move from."""
    rows = spark.read.parquet(*folders)
    present = [name for name in columns if name in rows.columns]
    (_, *figures) = rows.agg(F.count(F.lit(1)), *_moments(present)).first() or (0,)
    moments = _by_column(present, figures)
    return {name: moments.get(name, Moments(None, None)) for name in columns}
