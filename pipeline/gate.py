"""The data-quality gate between staging and curated: rules generated from the contract, evaluated on
the profile that raw_to_staging computes in the same Spark pass that writes staging.

Why not Glue Data Quality: its DQDL rules run only inside Glue (no local test), cost DPU time per
evaluation and need a second pass over the data. These rules are the DQDL ones (`dqdl()` prints them)
evaluated on numbers already computed, in a Lambda, the same way here and in AWS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.contract import Contract


@dataclass(frozen=True)
class Check:
    rule: str  # DQDL-style, e.g. 'RowCount >= 10'
    passed: bool
    observed: str


@dataclass(frozen=True)
class GateResult:
    contract: str
    passed: bool
    checks: tuple[Check, ...]

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def as_dict(self) -> dict[str, Any]:
        return {"contract": self.contract, "passed": self.passed, "checks": [asdict(c) for c in self.checks]}


class ProfileError(ValueError):
    """A profile that lacks what the gate needs: the gate cannot pass on it."""


def dqdl(contract: Contract) -> str:
    """The gate's rules on one file's batch written as a Glue Data Quality ruleset, for people and for reuse in
    Glue DQ (the table's minimum row count is checked on each curated build: `check_build`)."""
    rules = ["RowCount >= 1"]
    for column in contract.columns:
        if not column.nullable:
            rules.append(f'IsComplete "{column.name}"')
        if column.min is not None and column.max is not None:
            rules.append(f'ColumnValues "{column.name}" between {column.min:g} and {column.max:g}')
    rules += [
        f'Mean "{name}" between {low:g} and {high:g}' for name, (low, high) in contract.quality.mean_between.items()
    ]
    return "Rules = [\n    " + ",\n    ".join(rules) + "\n]"


WITHHELD = "figures withheld: a sensitive column (see the profile in staging)"
"""The detail of a check on a sensitive column: the batch's minimum or maximum is one person's value, and
the details travel to logs and notifications."""


def evaluate(contract: Contract, profile: Mapping[str, Any]) -> GateResult:
    try:
        rows_in, written, rejected = (int(profile[k]) for k in ("rows_in", "rows_written", "rows_rejected"))
        columns = profile["columns"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProfileError(f"profile of {contract.name} lacks {exc}: it must come from raw_to_staging") from None
    checks = [
        Check(
            "rows in = rows written + rows rejected",
            rows_in == written + rejected,
            f"{rows_in} = {written} + {rejected}",
        ),
        Check("RowCount >= 1", written >= 1, str(written)),  # the table's minimum is the build's: check_build
        Check(
            f"RejectedFraction <= {contract.quality.max_rejected_fraction:g}",
            rows_in == 0 or rejected / rows_in <= contract.quality.max_rejected_fraction,
            f"{rejected}/{rows_in}",
        ),
    ]
    for column in contract.columns:
        stats = columns.get(column.name, {})
        if not column.nullable:
            nulls = stats.get("nulls")
            checks.append(Check(f'IsComplete "{column.name}"', nulls == 0, f"{nulls} nulls"))
        if column.min is not None and column.max is not None and written:
            low, high = stats.get("min"), stats.get("max")
            ok = low is not None and high is not None and column.min <= low and high <= column.max
            checks.append(
                Check(
                    f'ColumnValues "{column.name}" between {column.min:g} and {column.max:g}',
                    ok,
                    WITHHELD if column.sensitive else f"{low}..{high}",
                )
            )
    for name, (low, high) in contract.quality.mean_between.items():
        mean = columns.get(name, {}).get("mean")
        checks.append(
            Check(
                f'Mean "{name}" between {low:g} and {high:g}',
                mean is not None and low <= mean <= high,
                WITHHELD if contract.column(name).sensitive else f"{mean}",
            )
        )
    return GateResult(contract.name, all(c.passed for c in checks), tuple(checks))


@dataclass(frozen=True)
class Moments:
    """A column's mean and standard deviation in a build (None where it has no value)."""

    mean: float | None
    sd: float | None


def mean_shift(now: Moments, before: Moments) -> float | None:
    """How far the mean moved, in the earlier build's standard deviations; None where there is nothing to
    measure against: no mean, or a build whose column did not vary (one row, a constant column), where any
    change would be infinitely far and every later build refused until the contract changed."""
    if now.mean is None or before.mean is None or not before.sd:
        return None
    return abs(now.mean - before.mean) / before.sd


def check_build(
    contract: Contract,
    *,
    rows: int,
    keys: int,
    previous_rows: int | None,
    moments: Mapping[str, Moments] | None = None,
    previous_moments: Mapping[str, Moments] | None = None,
) -> GateResult:
    """The checks of a curated build before it replaces the table: enough rows for the table, one row per key,
    no more shrinking against the build it replaces (`previous_rows`, None for the first) than the contract
    allows, and no column of `quality.max_mean_shift` whose mean moved further than it allows (`moments` of
    this build and `previous_moments` of the one it replaces, per column). Figures only: a build is a table,
    no value of it is quoted, and a sensitive column's shift is not quoted either."""
    quality = contract.quality
    checks = [
        Check(f"RowCount >= {quality.min_rows}", rows >= quality.min_rows, str(rows)),
        Check(f"IsUnique {', '.join(contract.key)}", keys == rows, f"{keys} keys in {rows} rows"),
    ]
    if previous_rows is not None:
        floor = previous_rows * (1 - quality.max_row_drop_fraction)
        checks.append(
            Check(
                f"RowCount >= {1 - quality.max_row_drop_fraction:g} x the previous build",
                rows >= floor,
                f"{rows} after {previous_rows}",
            )
        )
    for name, limit in quality.max_mean_shift.items():
        if previous_moments is None or moments is None:
            break  # a first build: nothing to move from
        shift = mean_shift(moments[name], previous_moments[name])
        if shift is None:
            continue
        observed = "figures withheld" if contract.column(name).sensitive else f"{shift:.2f} sd"
        checks.append(Check(f'Mean "{name}" within {limit:g} sd of the previous build', shift <= limit, observed))
    return GateResult(contract.name, all(c.passed for c in checks), tuple(checks))
