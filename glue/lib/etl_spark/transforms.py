"""raw -> staging -> curated as DataFrame functions, with the contract's rules as Spark expressions.

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
from pipeline.contract import INTEGER_LIMIT, NUMBER_PATTERN, Column, Contract

ROW = "source_row"
REASON = "reject_reason"
LANDING_KEY = "landing_key"
LINEAGE = ("created_at", "updated_at", "source_file", LANDING_KEY, ROW)
BOM = "\ufeff"


def _text(field: SparkColumn, null_values: tuple[str, ...]) -> SparkColumn:
    """Trimmed text, or null where it is empty or one of the format's null spellings (Column.check's rule)."""
    trimmed = F.trim(field)
    return F.when((trimmed == "") | trimmed.isin(list(null_values)), F.lit(None)).otherwise(trimmed)


def _fmt(value: float) -> str:
    return f"{value:g}"


def _number(text: SparkColumn) -> SparkColumn:
    """The number a text spells in the contract's syntax (no NaN, no 1_000, no 0x10), else null."""
    return F.when(text.rlike(f"^{NUMBER_PATTERN}$"), text).cast("double")


def _value_and_reason(column: Column, text: SparkColumn,
                      number: SparkColumn) -> tuple[SparkColumn, SparkColumn, SparkColumn]:
    """(typed value or null, failed flag, reason or null) for one contract column's `text` (and the `number`
    it spells), mirroring Column.check. Both are column references of an earlier projection, so each is
    computed once per row however many checks read it. The flag is what every row computes; the reason
    (strings) only the rows that fail."""
    quoted = F.concat(F.lit("'"), text, F.lit("'"))
    checks: list[tuple[SparkColumn, SparkColumn]] = []
    if column.type == "string":
        value = text
    else:
        finite = number.isNotNull() & (F.abs(number) != float("inf"))
        if column.type == "integer":
            integral = finite & (number == F.floor(number)) & (F.abs(number) < INTEGER_LIMIT)
            checks.append((~integral, F.concat(F.lit(f"{column.name}: "), quoted, F.lit(" is not an integer"))))
            value = F.when(integral, number).cast("long")
        else:
            checks.append((number.isNull(), F.concat(F.lit(f"{column.name}: "), quoted, F.lit(" is not a number"))))
            checks.append((~finite, F.concat(F.lit(f"{column.name}: "), quoted, F.lit(" is not a finite number"))))
            value = number
        prefix = F.lit(f"{column.name}: ")
        if column.min is not None:
            checks.append((number < column.min,
                           F.concat(prefix, text, F.lit(f" is below the minimum {_fmt(column.min)}"))))
        if column.max is not None:
            checks.append((number > column.max,
                           F.concat(prefix, text, F.lit(f" is above the maximum {_fmt(column.max)}"))))
    if column.allowed is not None:
        allowed = [float(a) for a in column.allowed] if column.type != "string" else list(column.allowed)
        compare = number if column.type != "string" else text
        checks.append((~compare.isin(allowed),
                       F.concat(F.lit(f"{column.name}: "), text, F.lit(f" is not one of {list(column.allowed)}"))))
    if column.pattern is not None:
        checks.append((~text.rlike(f"^(?:{column.pattern.strip('^$')})$"),
                       F.concat(F.lit(f"{column.name}: "), quoted, F.lit(f" does not match {column.pattern}"))))
    reason = F.lit(None).cast("string")
    for failed, message in reversed(checks):  # the first failing check wins, as in Column.check
        reason = F.when(failed, message).otherwise(reason)
    missing = F.lit(f"{column.name} is missing (required)") if not column.nullable else F.lit(None).cast("string")
    reason = F.when(text.isNull(), missing).otherwise(reason)
    any_failed = F.lit(False)
    for condition, _ in checks:
        any_failed = any_failed | F.coalesce(condition, F.lit(False))
    failed = F.when(text.isNull(), F.lit(not column.nullable)).otherwise(any_failed)
    return F.when(text.isNotNull(), value), failed, reason


FAILING = "_failing"
MALFORMED = "malformed CSV line (wrong number of fields)"


def _text_and_number_names(contract: Contract) -> tuple[dict[str, str], dict[str, str]]:
    return ({c.name: f"_t{i}" for i, c in enumerate(contract.columns)},
            {c.name: f"_n{i}" for i, c in enumerate(contract.columns) if c.type != "string"})


def _checks(frame: DataFrame, contract: Contract,
            positions: list[int]) -> tuple[list[SparkColumn], list[SparkColumn], DataFrame]:
    """(typed values, failed flags, `frame` with each contract column's text and number added) for a frame of
    positional fields. One projection per step, so that no expression is evaluated twice per row (Spark keeps
    projections apart when merging them would repeat a costly expression): text, then numbers."""
    text, number = _text_and_number_names(contract)
    nulls = contract.format.null_values
    texts = frame.select("*", *[_text(F.col(field_name(p)), nulls).alias(text[c.name])
                                for c, p in zip(contract.columns, positions, strict=True)])
    numbers = texts.select("*", *[_number(F.col(text[name])).alias(alias) for name, alias in number.items()])
    values, flags = [], []
    for column in contract.columns:
        value, failed, _ = _value_and_reason(column, F.col(text[column.name]),
                                             F.col(number.get(column.name, text[column.name])))
        values.append(value.alias(column.name))
        flags.append(failed)
    return values, flags, numbers


def _reason(contract: Contract) -> SparkColumn:
    """Every reason a row of `_checks`' frame fails for, joined by '; ' (Column.check's messages)."""
    text, number = _text_and_number_names(contract)
    reasons = [_value_and_reason(c, F.col(text[c.name]), F.col(number.get(c.name, text[c.name])))[2]
               for c in contract.columns]
    joined = F.concat_ws("; ", F.when(F.col(CORRUPT).isNotNull(), F.lit(MALFORMED)), *reasons)
    return F.when(joined == "", F.lit(None)).otherwise(joined)


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


def raw_to_staging(raw: DataFrame, contract: Contract, header: list[str], *, created_at: str, updated_at: str,
                   source_file: str, landing_key: str | None = None) -> StagingResult:
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
        raise ValueError(f"header {header} does not name the columns {missing} of {contract.name} once each "
                         "(the validate step quarantines such a file before it reaches this job)")
    fields = [F.col(field_name(i)) for i in range(len(header))]
    if header:  # a byte-order mark Spark's decoder keeps (Python's drops it), where no header line absorbs it
        fields[0] = F.regexp_replace(fields[0], f"^{BOM}", "")
    raw_names = [field_name(i) for i in range(len(header))]
    numbered = raw.select(*[f.alias(n) for f, n in zip(fields, raw_names, strict=True)], F.col(CORRUPT),
                          F.monotonically_increasing_id().alias(ROW))
    typed_cols, failed_flags, staged = _checks(numbered, contract, [positions[c.name] for c in contract.columns])
    is_failing = F.col(CORRUPT).isNotNull()
    for flag in failed_flags:
        is_failing = is_failing | flag
    verdicts = staged.select(*typed_cols, ROW, *raw_names, CORRUPT, is_failing.alias(FAILING))
    checked = verdicts.select(  # the raw text is kept for the failing rows only, to quarantine them
        *contract.column_names, ROW, FAILING,
        *[F.when(F.col(FAILING), F.col(n)).alias(n) for n in [*raw_names, CORRUPT]]
    ).localCheckpoint(eager=False)  # kept as computed by the first action: no columnar cache to build
    rows_in, failed_rows = checked.agg(F.count(F.lit(1)), F.sum(F.col(FAILING).cast("long"))).first() or (0, 0)
    failed_rows = failed_rows or 0

    valid = checked.where(~F.col(FAILING)).select(*contract.column_names, ROW)
    groups = valid.groupBy(*contract.key).agg(F.max(ROW).alias("_keep"), F.count(F.lit(1)).alias("_rows"))
    repeated = groups.where(F.col("_rows") > 1).select(*contract.key, "_keep", "_rows")
    repeated_keys, repeated_rows = repeated.agg(F.count(F.lit(1)), F.sum("_rows")).first() or (0, 0)
    if repeated_keys:  # rare: computed once more, then kept for the two writes that join it
        repeated = repeated.persist()
    valid_rows = rows_in - failed_rows
    distinct_keys = valid_rows - ((repeated_rows or 0) - repeated_keys)  # each repeated key counts once
    keep = repeated.drop("_rows")
    if not repeated_keys:  # the usual case: every key once, nothing to join
        with_keep = valid.withColumn("_keep", F.lit(None).cast("long"))
    else:
        with_keep = valid.join(F.broadcast(keep) if repeated_keys <= BROADCAST_KEYS else keep,
                               on=list(contract.key), how="left")
    kept = F.col("_keep").isNull() | (F.col("_keep") == F.col(ROW))

    lineage = [F.to_timestamp(F.lit(created_at), "yyyyMMdd'T'HHmmss'Z'").alias("created_at"),
               F.to_timestamp(F.lit(updated_at), "yyyyMMdd'T'HHmmss'Z'").alias("updated_at"),
               F.lit(source_file).alias("source_file"), F.lit(landing_key).cast("string").alias(LANDING_KEY)]
    staging = with_keep.where(kept).select(*contract.column_names, *lineage, F.col(ROW))
    key_text = F.concat_ws(",", *[F.concat(F.lit(f"{k}="), F.col(k).cast("string")) for k in contract.key])
    as_text = {name: F.col(name).cast("string") for name in contract.column_names}
    superseded = with_keep.where(~kept).select(
        *[(as_text[name] if name in as_text else F.lit(None).cast("string")).alias(f"raw_{name}") for name in header],
        F.lit(None).cast("string").alias(CORRUPT),
        F.concat(F.lit("superseded by a later row for "), key_text, F.lit(" in the same file")).alias(REASON),
        F.col(ROW))
    failing = checked.where(F.col(FAILING)).select(*raw_names, CORRUPT, ROW)
    _, _, again = _checks(failing, contract, [positions[c.name] for c in contract.columns])  # few rows
    failed = again.select(*[F.col(n).alias(f"raw_{name}") for n, name in zip(raw_names, header, strict=True)],
                          CORRUPT, _reason(contract).alias(REASON), ROW)
    rejected = failed.unionByName(superseded).select(
        "*", F.lit(source_file).alias("source_file"), F.lit(landing_key).cast("string").alias(LANDING_KEY))
    return StagingResult(staging, rejected, rows_in, int(distinct_keys or 0), unknown, (checked, repeated))


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
            aggs += [F.min(name).alias(f"{name}__min"), F.max(name).alias(f"{name}__max"),
                     F.avg(name).alias(f"{name}__mean")]
    return aggs


def profile(observed: dict[str, Any], contract: Contract, *, rows_in: int, rows_rejected: int, distinct_keys: int,
            unknown_columns: list[str], source_file: str) -> dict[str, Any]:
    """The profile document the gate reads, from the observed aggregates."""
    columns = {}
    for column in contract.columns:
        stats: dict[str, float | int | None] = {"nulls": int(observed[f"{column.name}__nulls"] or 0)}
        if column.type != "string":
            stats |= {s: (None if observed[f"{column.name}__{s}"] is None else float(observed[f"{column.name}__{s}"]))
                      for s in ("min", "max", "mean")}
        columns[column.name] = stats
    return {"contract": contract.name, "source_file": source_file, "rows_in": rows_in,
            "rows_written": int(observed["rows"]), "rows_rejected": rows_rejected,
            "distinct_keys": distinct_keys, "unknown_columns": unknown_columns, "columns": columns}


def staging_to_curated(staging: DataFrame, contract: Contract) -> DataFrame:
    """The feature table training reads: the latest row per key across all gated batches."""
    latest = Window.partitionBy(*contract.key).orderBy(F.col("created_at").desc(), F.col(ROW).desc())
    return (staging.withColumn("_rank", F.row_number().over(latest)).where(F.col("_rank") == 1)
            .select(*contract.key, *contract.features, contract.label, "created_at", "source_file"))
