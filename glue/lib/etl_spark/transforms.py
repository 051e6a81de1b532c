"""raw -> staging -> curated as DataFrame functions, with the contract's rules as Spark SQL (etl_spark.rules).

The rules are those of `pipeline.contract.Column.check` (the Python engine the Lambdas and tests use);
a test runs both engines on the same values and requires the same verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from etl_spark.io import CORRUPT, field_name
from etl_spark.rules import ContractRules, identifier, sql_string
from pipeline.contract import Contract
from pipeline.csv_format import header_problem

ROW = "source_row"
REASON = "reject_reason"
LANDING_KEY = "landing_key"
LINEAGE = ("created_at", "updated_at", "source_file", LANDING_KEY, ROW)
BOM = "\ufeff"


FAILING = "_failing"
MALFORMED = "malformed CSV line (wrong number of fields)"


def _checked(numbered: DataFrame, rules: ContractRules, raw_names: list[str]) -> DataFrame:
    """Every row's typed values and whether it fails, with its raw text kept only where it does (to
    quarantine it). Three projections (texts, numbers, verdicts) so that each is computed once per row."""
    failing = f"{CORRUPT} IS NOT NULL OR {rules.failed()}"
    verdicts = (
        numbered.selectExpr("*", *rules.texts())
        .selectExpr("*", *rules.numbers())
        .selectExpr(*rules.values(), ROW, *raw_names, CORRUPT, f"{failing} AS {FAILING}")
    )
    return verdicts.selectExpr(
        *[identifier(n) for n in rules.contract.column_names],
        ROW,
        FAILING,
        *[f"CASE WHEN {FAILING} THEN {n} END AS {n}" for n in [*raw_names, CORRUPT]],
    )


def _failed_with_reasons(
    failing: DataFrame, rules: ContractRules, raw_names: list[str], header: list[str]
) -> DataFrame:
    """The failing rows' raw text (as `raw_<header name>`) and every reason each fails for."""
    reasons = rules.reasons(f"CASE WHEN {CORRUPT} IS NOT NULL THEN {sql_string(MALFORMED)} END")
    return (
        failing.selectExpr("*", *rules.texts())
        .selectExpr("*", *rules.numbers())
        .selectExpr(
            *[f"{n} AS {identifier('raw_' + name)}" for n, name in zip(raw_names, header, strict=True)],
            CORRUPT,
            f"{reasons} AS {REASON}",
            ROW,
        )
    )


def superseded_reason(contract: Contract) -> str:
    """Why a row a later row of the same key replaces is quarantined: the key's columns, never its value."""
    return f"superseded by a later row with the same {', '.join(contract.key)} in the same file"


def _superseded(rows: DataFrame, contract: Contract, header: list[str]) -> DataFrame:
    """Valid rows a later row of the same key replaces, as quarantine rows (their values as text)."""
    as_text = {name: F.col(name).cast("string") for name in contract.column_names}
    return rows.select(
        *[(as_text[name] if name in as_text else F.lit(None).cast("string")).alias(f"raw_{name}") for name in header],
        F.lit(None).cast("string").alias(CORRUPT),
        F.lit(superseded_reason(contract)).alias(REASON),
        F.col(ROW),
    )


@dataclass(frozen=True)
class StagingResult:
    staging: DataFrame
    rejected: DataFrame
    rows_in: int
    distinct_keys: int
    unknown_columns: list[str]
    cached: tuple[DataFrame, ...] = ()

    def release(self) -> None:
        """Drop what is cached once staging and quarantine are written (the checkpoint goes with the session)."""
        for frame in self.cached:
            frame.unpersist()


def raw_to_staging(
    raw: DataFrame,
    contract: Contract,
    header: list[str],
    *,
    created_at: str,
    updated_at: str,
    source_file: str,
    landing_key: str | None = None,
) -> StagingResult:
    """Cast and check every record; keep the latest row per key; everything else is rejected with its reason.

    `raw` is the file read by `etl_spark.io.read_raw_csv` (text fields by position, Spark's corrupt-record
    column) and `header` its names (validate guarantees every contract column is there, once). The file is
    parsed once: the checked rows are checkpointed (kept as computed, local to the executors, freed with the
    session; cheaper than building the columnar cache), with the raw text kept only for rows that fail.
    Duplicate keys are found by an aggregation on (key, row) alone and joined back (broadcast when few, as
    they are in a feed that is mostly new rows), not by a window that would sort every whole row.
    Invariant: rows_in == staging.count() + rejected.count().
    """
    positions = {name: i for i, name in enumerate(header)}
    unknown = [name for name in header if name not in contract.column_names]
    missing = [c.name for c in contract.columns if c.name not in positions]
    if missing or len(positions) != len(header):
        problem = header_problem(header, contract.column_names)
        problems = ([f"it lacks the columns {missing}"] if missing else []) + ([problem] if problem else [])
        raise ValueError(
            f"the file's header does not name the columns of {contract.name} once each: "
            f"{'; '.join(problems)} (the validate step quarantines such a file before "
            "it reaches this job; the error quotes no name that is not a column, as it may be data)"
        )
    raw_names = [field_name(i) for i in range(len(header))]
    rules = ContractRules(contract, [field_name(positions[c.name]) for c in contract.columns])
    first = raw_names[0]  # a byte-order mark Spark's decoder keeps (Python's drops it), where no header line absorbs it
    numbered = raw.selectExpr(
        f"CASE WHEN left({first}, 1) = {sql_string(BOM)} THEN substr({first}, 2) ELSE {first} END AS {first}",
        *raw_names[1:],
        CORRUPT,
        f"monotonically_increasing_id() AS {ROW}",
    )
    checked = _checked(numbered, rules, raw_names).localCheckpoint(eager=False)  # kept as computed by the first action
    # one aggregation counts the rows, the failing rows and the repeated keys (the checkpoint is computed by it)
    groups = checked.groupBy(*[identifier(k) for k in contract.key], FAILING).agg(
        F.max(ROW).alias("_keep"), F.count(F.lit(1)).alias("_rows")
    )
    is_repeated = ~F.col(FAILING) & (F.col("_rows") > 1)
    totals = groups.agg(
        F.sum("_rows"),
        F.sum(F.when(F.col(FAILING), F.col("_rows"))),
        F.count(F.when(is_repeated, 1)),
        F.sum(F.when(is_repeated, F.col("_rows"))),
    ).first()
    rows_in, failed_rows, repeated_keys, repeated_rows = (int(v or 0) for v in (totals or (0, 0, 0, 0)))
    repeated = groups.where(is_repeated).select(*contract.key, "_keep", "_rows")
    if repeated_keys:  # rare: computed once more, then kept for the two writes that join it
        repeated = repeated.persist()
    valid = checked.where(~F.col(FAILING)).select(*contract.column_names, ROW)
    valid_rows = rows_in - failed_rows
    distinct_keys = valid_rows - (repeated_rows - repeated_keys)  # each repeated key counts once
    keep = repeated.drop("_rows")
    if not repeated_keys:  # the usual case: every key once, nothing to join
        with_keep = valid.withColumn("_keep", F.lit(None).cast("long"))
    else:
        with_keep = valid.join(
            F.broadcast(keep) if repeated_keys <= BROADCAST_KEYS else keep, on=list(contract.key), how="left"
        )
    kept = F.col("_keep").isNull() | (F.col("_keep") == F.col(ROW))

    lineage = [
        F.to_timestamp(F.lit(created_at), "yyyyMMdd'T'HHmmss'Z'").alias("created_at"),
        F.to_timestamp(F.lit(updated_at), "yyyyMMdd'T'HHmmss'Z'").alias("updated_at"),
        F.lit(source_file).alias("source_file"),
        F.lit(landing_key).cast("string").alias(LANDING_KEY),
    ]
    staging = with_keep.where(kept).select(*contract.column_names, *lineage, F.col(ROW))
    failed = _failed_with_reasons(
        checked.where(F.col(FAILING)).select(*raw_names, CORRUPT, ROW), rules, raw_names, header
    )  # few rows: their checks computed again, with the reasons
    if repeated_keys:  # else nothing is superseded, and no scan of the valid rows is needed to find that out
        failed = failed.unionByName(_superseded(with_keep.where(~kept), contract, header))
    rejected = failed.select(
        "*", F.lit(source_file).alias("source_file"), F.lit(landing_key).cast("string").alias(LANDING_KEY)
    )
    return StagingResult(staging, rejected, rows_in, distinct_keys, unknown, (checked, repeated))


BROADCAST_KEYS = 2_000_000
"""Up to this many repeated keys in one file are joined back by broadcast (a few tens of MB); more, by a
shuffle join."""


def profile_aggregates(contract: Contract) -> list[SparkColumn]:
    """What the gate needs of the staging rows, as aggregates computed while they are written
    (DataFrame.observe): no second pass over the data."""
    aggs = [F.count(F.lit(1)).alias("rows")]
    for column in contract.columns:
        name = column.name
        aggs.append(F.sum(F.col(name).isNull().cast("long")).alias(f"{name}__nulls"))
        if column.type != "string":
            aggs += [
                F.min(name).alias(f"{name}__min"),
                F.max(name).alias(f"{name}__max"),
                F.avg(name).alias(f"{name}__mean"),
            ]
    return aggs


def profile(
    observed: dict[str, Any],
    contract: Contract,
    *,
    rows_in: int,
    rows_rejected: int,
    distinct_keys: int,
    unknown_columns: list[str],
    source_file: str,
) -> dict[str, Any]:
    """The profile document the gate reads, from the observed aggregates."""
    columns = {}
    for column in contract.columns:
        stats: dict[str, float | int | None] = {"nulls": int(observed[f"{column.name}__nulls"] or 0)}
        if column.type != "string":
            stats |= {
                s: (None if observed[f"{column.name}__{s}"] is None else float(observed[f"{column.name}__{s}"]))
                for s in ("min", "max", "mean")
            }
        columns[column.name] = stats
    return {
        "contract": contract.name,
        "source_file": source_file,
        "rows_in": rows_in,
        "rows_written": int(observed["rows"]),
        "rows_rejected": rows_rejected,
        "distinct_keys": distinct_keys,
        "unknown_columns": unknown_columns,
        "columns": columns,
    }


def staging_to_curated(staging: DataFrame, contract: Contract) -> DataFrame:
    """The feature table training reads: the latest row per key across all gated batches."""
    latest = Window.partitionBy(*contract.key).orderBy(F.col("created_at").desc(), F.col(ROW).desc())
    return (
        staging.withColumn("_rank", F.row_number().over(latest))
        .where(F.col("_rank") == 1)
        .select(*contract.key, *contract.features, contract.label, "created_at", "source_file")
    )
