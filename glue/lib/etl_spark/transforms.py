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
from pyspark.sql.types import StringType, StructField, StructType

from pipeline.contract import INTEGER_LIMIT, NUMBER_PATTERN, Column, Contract

CORRUPT = "_corrupt_record"
ROW = "source_row"
REASON = "reject_reason"
LINEAGE = ("created_at", "updated_at", "source_file", ROW)


def raw_schema(contract: Contract, header: list[str]) -> StructType:
    """Every column as text (the contract casts), plus Spark's column for lines it cannot split."""
    return StructType([StructField(name, StringType()) for name in header] + [StructField(CORRUPT, StringType())])


def _text(name: str) -> SparkColumn:
    trimmed = F.trim(F.col(f"`{name}`"))
    return F.when(trimmed == "", F.lit(None)).otherwise(trimmed)


def _fmt(value: float) -> str:
    return f"{value:g}"


def _value_and_reason(column: Column) -> tuple[SparkColumn, SparkColumn]:
    """(typed value or null, reason or null) for one contract column, mirroring Column.check."""
    text = _text(column.name)
    quoted = F.concat(F.lit("'"), text, F.lit("'"))
    checks: list[tuple[SparkColumn, SparkColumn]] = []
    if column.type == "string":
        value = text
    else:
        number = F.when(text.rlike(f"^{NUMBER_PATTERN}$"), text).cast("double")
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
    return F.when(text.isNotNull(), value), reason


@dataclass(frozen=True)
class StagingResult:
    staging: DataFrame
    rejected: DataFrame
    rows_in: int
    unknown_columns: list[str]


def raw_to_staging(raw: DataFrame, contract: Contract, *, created_at: str, updated_at: str,
                   source_file: str) -> StagingResult:
    """Cast and check every row; keep the latest row per key; everything else is rejected with its reason.

    `raw` is the file read with `raw_schema` (all text, Spark's corrupt-record column). Invariant:
    rows_in == staging.count() + rejected.count().
    """
    unknown = [c for c in raw.columns if c not in contract.column_names and c != CORRUPT]
    numbered = raw.withColumn(ROW, F.monotonically_increasing_id())
    typed_cols, reasons = [], []
    for column in contract.columns:
        value, reason = _value_and_reason(column)
        typed_cols.append(value.alias(column.name))
        reasons.append(reason)
    malformed = F.when(F.col(CORRUPT).isNotNull(), F.lit("malformed CSV line (wrong number of fields)"))
    all_reasons = F.concat_ws("; ", malformed, *reasons)
    checked = numbered.select(
        *typed_cols, F.col(ROW),
        F.when(all_reasons == "", F.lit(None)).otherwise(all_reasons).alias(REASON),
        *[F.col(f"`{c}`").alias(f"raw_{c}") for c in raw.columns if c != CORRUPT],
        F.col(CORRUPT),
    ).cache()
    rows_in = checked.count()

    key_cols = [F.col(k) for k in contract.key]
    latest = Window.partitionBy(*key_cols).orderBy(F.col(ROW).desc())
    valid = checked.where(F.col(REASON).isNull()).withColumn("_rank", F.row_number().over(latest))
    key_text = F.concat_ws(",", *[F.concat(F.lit(f"{k}="), F.col(k).cast("string")) for k in contract.key])
    superseded = valid.where(F.col("_rank") > 1).withColumn(
        REASON, F.concat(F.lit("superseded by a later row for "), key_text, F.lit(" in the same file")))

    lineage = [F.to_timestamp(F.lit(created_at), "yyyyMMdd'T'HHmmss'Z'").alias("created_at"),
               F.to_timestamp(F.lit(updated_at), "yyyyMMdd'T'HHmmss'Z'").alias("updated_at"),
               F.lit(source_file).alias("source_file")]
    staging = valid.where(F.col("_rank") == 1).select(*contract.column_names, *lineage, F.col(ROW))
    raw_text = [c for c in checked.columns if c.startswith("raw_")] + [CORRUPT]
    rejected_cols = [*raw_text, REASON, F.lit(source_file).alias("source_file"), ROW]
    rejected = checked.where(F.col(REASON).isNotNull()).select(*rejected_cols).unionByName(
        superseded.select(*rejected_cols))
    return StagingResult(staging, rejected, rows_in, unknown)


def profile(staging: DataFrame, contract: Contract, *, rows_in: int, rows_rejected: int,
            unknown_columns: list[str], source_file: str) -> dict[str, Any]:
    """What the gate needs, in one aggregation over the staging rows."""
    aggs = [F.count(F.lit(1)).alias("rows"),
            F.countDistinct(*[F.col(k) for k in contract.key]).alias("distinct_keys")]
    for column in contract.columns:
        name = column.name
        aggs.append(F.sum(F.col(name).isNull().cast("long")).alias(f"{name}__nulls"))
        if column.type != "string":
            aggs += [F.min(name).alias(f"{name}__min"), F.max(name).alias(f"{name}__max"),
                     F.avg(name).alias(f"{name}__mean")]
    row = staging.agg(*aggs).first().asDict()
    columns = {}
    for column in contract.columns:
        stats = {"nulls": int(row[f"{column.name}__nulls"] or 0)}
        if column.type != "string":
            stats |= {s: (None if row[f"{column.name}__{s}"] is None else float(row[f"{column.name}__{s}"]))
                      for s in ("min", "max", "mean")}
        columns[column.name] = stats
    return {"contract": contract.name, "source_file": source_file, "rows_in": rows_in,
            "rows_written": int(row["rows"]), "rows_rejected": rows_rejected,
            "distinct_keys": int(row["distinct_keys"]), "unknown_columns": unknown_columns, "columns": columns}


def staging_to_curated(staging: DataFrame, contract: Contract) -> DataFrame:
    """The feature table training reads: the latest row per key across all gated batches."""
    latest = Window.partitionBy(*contract.key).orderBy(F.col("created_at").desc(), F.col(ROW).desc())
    return (staging.withColumn("_rank", F.row_number().over(latest)).where(F.col("_rank") == 1)
            .select(*contract.key, *contract.features, contract.label, "created_at", "source_file"))
