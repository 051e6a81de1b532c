"""A table's own transform: `glue/lib/table_transforms/<dataset>/<table>.py`, a function `transform(staged)`
from a batch's staged rows to the rows its curated table keeps, run by staging_to_curated before the latest
row per key is taken. Without one, curated is the latest staged row per key.

A transform works row by row: it sees the batches being promoted, not the whole table, so that merging new
batches into the previous build gives what a build from scratch gives (the previous build's rows went
through it when they were promoted). It may change values (clean a string, derive a column the contract
declares) but not the rows' columns or their types, and it drops no row: a row that should not reach curated
breaks a contract rule and is quarantined with its reason, never dropped here without one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from pyspark.sql import DataFrame

from pipeline.contract import TRANSFORMS_PATH, Contract

PACKAGE = TRANSFORMS_PATH.name
"""The package of the tables' transforms, in glue/lib (shipped with the Glue jobs' library)."""

Transform = Callable[[DataFrame], DataFrame]

ACROSS_ROWS = (
    "Window",
    "Aggregate",
    "Join",
    "Filter",
    "Generate",
    "Sample",
    "Deduplicate",
    "Distinct",
    "Union",
    "Sort",
    "GlobalLimit",
    "LocalLimit",
    "Repartition",
    "RepartitionByExpression",
    "Expand",
)
"""Plan operators that make a row's result depend on other rows (or drop and add rows): refused in a transform."""
NOT_REPEATABLE = (
    "rand(",
    "randn(",
    "uuid(",
    "shuffle(",
    "monotonically_increasing_id(",
    "spark_partition_id(",
    "input_file_name(",
    "current_timestamp(",
    "current_date(",
    "now(",
    "localtimestamp(",
)
"""Expressions whose value differs between runs: a rebuild from scratch would not give the merged rows."""


class TransformError(RuntimeError):
    """A table's transform that cannot be used, or that broke its rules; names its file and the fix."""


def transform_file(contract: Contract) -> str:
    return (TRANSFORMS_PATH / contract.dataset / f"{contract.table}.py").as_posix()


def table_transform(contract: Contract) -> Transform | None:
    """The table's `transform` function; None when the table has no transform file."""
    name = f"{PACKAGE}.{contract.dataset}.{contract.table}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name in (name, f"{PACKAGE}.{contract.dataset}"):
            return None
        raise TransformError(f"{transform_file(contract)} cannot be imported: {exc}") from exc
    found = getattr(module, "transform", None)
    if not callable(found):
        raise TransformError(
            f"{transform_file(contract)} has no function `transform(staged: DataFrame) -> DataFrame`: define one"
        )
    transform: Transform = found
    return transform


def apply_transform(staged: DataFrame, contract: Contract, transform: Transform | None = None) -> DataFrame:
    """`staged` through the table's transform (`transform`, else its file's), checked: the same columns of
    the same types, in the staged order, and as many rows."""
    transform = transform or table_transform(contract)
    if transform is None:
        return staged
    where = transform_file(contract)
    result = transform(staged)
    if not isinstance(result, DataFrame):
        raise TransformError(f"{where}: transform returned {type(result).__name__}, not a DataFrame")
    _refuse_what_is_not_row_wise(staged, result, where)
    wanted = {field.name: field.dataType for field in staged.schema.fields}
    got = {field.name: field.dataType for field in result.schema.fields}
    if got != wanted:
        missing = sorted(set(wanted) - set(got))
        extra = sorted(set(got) - set(wanted))
        retyped = sorted(n for n in set(wanted) & set(got) if wanted[n] != got[n])
        raise TransformError(
            f"{where}: transform must keep the staged columns and their types (missing {missing}, extra {extra}, "
            f"retyped {retyped}): a new column belongs in the contract ({contract.name}), and a type change too"
        )
    before, after = staged.count(), result.count()
    if before != after:
        raise TransformError(
            f"{where}: transform turned {before} rows into {after}: it must keep every row (a row that should not "
            "reach curated breaks a contract rule and is quarantined with its reason)"
        )
    return result.select(*staged.columns)


def _operators(plan: str) -> list[str]:
    """The operator names of a plan's tree string, one per line (`+- Project [...]` -> `Project`)."""
    names = []
    for line in plan.splitlines():
        text = line.lstrip(" :|+-")
        if text:
            names.append(text.split(" ", 1)[0].split("(", 1)[0])
    return names


def _refuse_what_is_not_row_wise(staged: DataFrame, result: DataFrame, where: str) -> None:
    """The transform's own part of the plan (the result's, less the staged rows'): operators across rows and
    expressions that change between runs are refused, since a merged build must equal one from scratch."""
    before = staged._jdf.queryExecution().analyzed().treeString()
    after = result._jdf.queryExecution().analyzed().treeString()
    added = list(_operators(after))
    for name in _operators(before):
        if name in added:
            added.remove(name)
    across = sorted({name for name in added if name in ACROSS_ROWS})
    changing = sorted({token.rstrip("(") for token in NOT_REPEATABLE if after.count(token) > before.count(token)})
    if across or changing:
        raise TransformError(
            f"{where}: a transform works row by row, with values that are the same in every run (so that a build "
            f"merged onto the last equals one from scratch): it uses {', '.join([*across, *changing])}; "
            "compute such values in the source, or in a reader of curated"
        )
