"""raw -> staging -> curated as DataFrame functions, with the contract's rules as Spark SQL (etl_spark.rules).

The rules are those of `pipeline.contract.Column.check` (the Python engine the Lambdas and tests use);
a test runs both engines on the same values and requires the same verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from etl_spark.io import CORRUPT, field_name
from etl_spark.rules import SPARK_TYPES, ContractRules, identifier, sql_string
from etl_spark.table_transform import apply_transform
from pipeline.contract import LINEAGE_TYPES, Contract, curated_columns
from pipeline.csv_format import header_problem
from pipeline.layout import PARTITION

ROW = "source_row"
REASON = "reject_reason"
LANDING_KEY = "landing_key"
LINEAGE = ("created_at", "updated_at", "source_file", LANDING_KEY, ROW)
BOM = "\ufeff"


FAILING = "_failing"
MALFORMED = "malformed CSV line (wrong number of fields)"


def _checked(numbered: DataFrame, rules: ContractRules, raw_names: list[str]) -> DataFrame:
    """Every row's typed values and whether it fails, with its raw text kept only where it does (to
    quarantine it). Three projections (texts, numbers, verdicts) so that each is computed once per row; the
    numbers are `cast_numbers` (the reasons of the failing rows read `numbers`)."""
    failing = f"{CORRUPT} IS NOT NULL OR {rules.failed()}"
    verdicts = (
        numbered.selectExpr("*", *rules.texts())
        .selectExpr("*", *rules.cast_numbers())
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


@dataclass(frozen=True)
class StagingResult:
    """One file's records checked, and what each becomes: a staged row or a rejected one (its raw text and every
    reason). Frames of `checked`, so that the job decides how often the file is parsed (`over`)."""

    checked: DataFrame
    """Every record: its typed values, its row number, whether it fails, its raw text where it does."""
    contract: Contract
    header: list[str]
    unknown_columns: list[str]
    lineage: tuple[SparkColumn, ...]
    extra: tuple[SparkColumn, ...]
    """The rejected rows' columns beside the raw text and the reasons (their file and landing name)."""
    rules: ContractRules
    raw_names: list[str]

    def over(self, checked: DataFrame) -> StagingResult:
        """The same plan over `checked` (e.g. kept by a checkpoint) instead of this one's."""
        return replace(self, checked=checked)

    @property
    def staging(self) -> DataFrame:
        """Every record that passes, typed, with its lineage and its row number (staging keeps a key's every
        accepted row: curated takes the latest, `staging_to_curated`)."""
        return self.checked.where(~F.col(FAILING)).select(
            *[F.col(identifier(n)) for n in self.contract.column_names], *self.lineage, F.col(ROW)
        )

    @property
    def failing(self) -> DataFrame:
        """The failing records' raw text by position, Spark's corrupt record and the row number."""
        return self.checked.where(F.col(FAILING)).select(*self.raw_names, CORRUPT, ROW)

    def rejected_of(self, failing: DataFrame) -> DataFrame:
        """`failing` (rows as `failing` has them) as quarantine rows: their raw text as `raw_<header name>`,
        every reason each fails for (the checks computed again, for these rows alone), file and landing name."""
        return _failed_with_reasons(failing, self.rules, self.raw_names, self.header).select("*", *self.extra)

    @property
    def rejected(self) -> DataFrame:
        return self.rejected_of(self.failing)

    @property
    def rows_in(self) -> int:
        """Records in the file (an action: the job observes it while it writes instead)."""
        return self.checked.count()


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
    """Cast and check every record; what fails is rejected with every reason.

    `raw` is the file read by `etl_spark.io.read_raw_csv` (text fields by position, Spark's corrupt-record
    column) and `header` its names (validate guarantees every contract column is there, once). Nothing here
    reads the data: the frames are plans, and `etl_spark.jobs.run_raw_to_staging` writes them in one pass.
    A key may repeat within a file: every accepted row is staged with its row number, and curated keeps the
    last (staging_to_curated orders a key's rows by batch, then row). Sorting out repeats here took a shuffle
    of every key, the costliest step of the job, to hand curated what it works out anyway.
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
        f"CASE WHEN startswith({first}, {sql_string(BOM)}) THEN substr({first}, 2) ELSE {first} END AS {first}",
        *raw_names[1:],
        CORRUPT,
        f"monotonically_increasing_id() AS {ROW}",
    )
    lineage = (
        F.to_timestamp(F.lit(created_at), "yyyyMMdd'T'HHmmss'Z'").alias("created_at"),
        F.to_timestamp(F.lit(updated_at), "yyyyMMdd'T'HHmmss'Z'").alias("updated_at"),
        F.lit(source_file).alias("source_file"),
        F.lit(landing_key).cast("string").alias(LANDING_KEY),
    )
    extra = (F.lit(source_file).alias("source_file"), F.lit(landing_key).cast("string").alias(LANDING_KEY))
    return StagingResult(
        _checked(numbered, rules, raw_names), contract, header, unknown, lineage, extra, rules, raw_names
    )


def profile_aggregates(contract: Contract) -> list[str]:
    """What the gate needs of the staged rows, as Spark SQL aggregates for `selectExpr` (one call to the JVM for
    them all, where a Column each took several; names quoted, whatever they hold), read back from what was
    written."""
    aggs = ["count(1) AS rows"]
    for column in contract.columns:
        name = identifier(column.name)
        aggs.append(f"count_if({name} IS NULL) AS {identifier(column.name + '__nulls')}")
        if column.type != "string":
            aggs += [
                f"{function}({name}) AS {identifier(f'{column.name}__{figure}')}"
                for function, figure in (("min", "min"), ("max", "max"), ("avg", "mean"))
            ]
    return aggs


def profile(
    observed: dict[str, Any],
    contract: Contract,
    *,
    rows_in: int,
    rows_rejected: int,
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
        "unknown_columns": unknown_columns,
        "columns": columns,
    }


def staging_schema(contract: Contract) -> str:
    """The staged rows' schema under `contract` as it is now (DDL): what a build reads every batch as, so that a
    column the contract gained since older batches were staged reads as null there instead of missing from the
    build (Spark would take one file's schema), and staging's own lineage columns keep their types."""
    columns = [f"{identifier(c.name)} {SPARK_TYPES[c.type]}" for c in contract.columns]
    lineage = ["created_at timestamp", "updated_at timestamp", "source_file string", f"{LANDING_KEY} string"]
    return ", ".join([*columns, *lineage, f"{ROW} bigint"])


def latest_first(contract: Contract) -> list[SparkColumn]:
    """A key's rows, latest first: by the contract's version column where it names one (so that a late file
    of older data never overwrites newer), then by landing time, file and line, so that every rebuild picks
    the same row (files that land in the same second are told apart by name, not by a generated id)."""
    version = [F.col(contract.version).desc()] if contract.version else []
    return [*version, F.col("created_at").desc(), F.col("source_file").desc(), F.col(ROW).desc()]


DELETED = "_deleted"
"""A merged row's mark: the key's latest row is a delete (the contract's `delete_when`)."""


def curated_state(staging: DataFrame, contract: Contract) -> DataFrame:
    """Staged rows as a build merges them: the curated columns, the row's order within its file, and whether
    it deletes its key."""
    deleted = F.lit(False)
    if contract.delete_when is not None:
        matches = F.col(identifier(contract.delete_when.column)).isin(*contract.delete_when.values)
        deleted = F.coalesce(matches, F.lit(False))  # a row without the column's value is no delete
    return staging.select(*[F.col(identifier(c)) for c in state_columns(contract)], deleted.alias(DELETED))


def merge_latest(state: DataFrame, contract: Contract) -> DataFrame:
    """The latest row per key (`latest_first`) of `state` (`curated_state`'s columns): a build's rows and its
    deleted keys, before the live ones and the deleted ones are split. Taking the latest is associative, so
    merging new batches into the previous build's rows and deleted keys gives what merging every batch from
    scratch gives (tests/glue/test_transforms.py builds both ways)."""
    latest = Window.partitionBy(*[F.col(identifier(k)) for k in contract.key]).orderBy(*latest_first(contract))
    return state.withColumn("_rank", F.row_number().over(latest)).where(F.col("_rank") == 1).drop("_rank")


def staging_to_curated(staging: DataFrame, contract: Contract) -> DataFrame:
    """The feature table training reads, built from scratch: the latest row per key across `staging`, through
    the table's own transform if it has one (etl_spark/table_transform.py), in `latest_first` order, unless that
    row is a delete (the contract's `delete_when`): then the key is gone. A delete that an even later row
    follows is history; one older than the key's newest row (by version) deletes nothing."""
    merged = merge_latest(curated_state(apply_transform(staging, contract), contract), contract)
    return merged.where(~F.col(DELETED)).select(*[F.col(identifier(c)) for c in state_columns(contract)])


def state_columns(contract: Contract) -> list[str]:
    """A curated build's columns: `curated_columns` and the row's place in its file, the last of the order
    (`latest_first`) in which a later build compares them with new rows."""
    return [*curated_columns(contract), ROW]


def order_columns(contract: Contract) -> list[str]:
    """What a build keeps of a deleted key: the key and the columns `latest_first` orders a key's rows by."""
    version = [contract.version] if contract.version else []
    return list(dict.fromkeys([*contract.key, *version, "created_at", "source_file", ROW]))


def state_schema(contract: Contract) -> str:
    """`state_columns`' types (DDL), as the contract types them now."""
    types = {c.name: SPARK_TYPES[c.type] for c in contract.columns} | LINEAGE_TYPES | {ROW: "bigint"}
    return ", ".join(f"{identifier(name)} {types[name]}" for name in state_columns(contract))


PLAIN_PARTITION_VALUE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\z"
r"""A partition column's value that names its folder as it is (after `v`); any other is named by its hash.
Java's regex, as `rlike` runs it: `\z` is the end of the text (`$` would also match before a final newline)."""


def partition_token(contract: Contract) -> SparkColumn:
    """The partition a row's key falls in (`pipeline.contract.Partitioning`), as the name of its folder
    (`partition=<token>`), a function of the key alone: `b<bucket>` (Spark's xxhash64 of the key columns,
    stable across runs and versions, modulo the buckets, zero-padded so that folders sort by bucket), or
    `v<value>` of the partition column where the value is a plain name (a day, a code, a number) and
    `h<16 hex digits of its SHA-256>` where not (no character of it reaches a path)."""
    partition = contract.partition
    if partition.column is None:
        buckets = partition.buckets or 1
        bucket = F.pmod(F.xxhash64(*[F.col(identifier(k)) for k in contract.key]), F.lit(buckets))
        return F.concat(F.lit("b"), F.lpad(bucket.cast("string"), len(str(buckets - 1)), "0")).alias(PARTITION)
    value = F.col(identifier(partition.column)).cast("string")
    hashed = F.concat(F.lit("h"), F.substring(F.sha2(value, 256), 1, 16))
    return F.when(value.rlike(PLAIN_PARTITION_VALUE), F.concat(F.lit("v"), value)).otherwise(hashed).alias(PARTITION)
