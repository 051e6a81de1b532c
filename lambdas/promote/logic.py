"""Which tables a promotion starts for now, decided without touching AWS, so that tests can call it directly.

A table is waiting when a batch of it passed the gate and no curated build took it in yet, or a batch a build
took in was staged again (`pipeline.layout.promotion_plan`); the table whose oldest such pass is oldest goes
first, and a table whose promotion runs now is left to it (that run lists the table's passes when it starts;
a pass it missed waits for the next one)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from pipeline.builds import Build, build_fingerprint
from pipeline.contract import Contract
from pipeline.job_arguments import Argument
from pipeline.layout import GATE_PASSED, RUNS_FOLDER, promotion_plan

ACTIVE_RUN_STATES = frozenset({"STARTING", "RUNNING", "STOPPING", "WAITING"})
"""A Glue job run in one of these may still write a build."""


TABLE_PROMOTION_JOBS_ENV = "TABLE_PROMOTION_JOBS"
"""The tables with a promotion job of their own (config etl.dedicated_jobs), as JSON: `dataset/table` -> job.
Unset: every table's builds run in PROMOTION_JOB."""


@dataclass(frozen=True)
class Waiting:
    table: str  # <dataset>/<table>
    batches: int
    oldest_pass: datetime
    settling: bool = False
    """A build from scratch is due, but batches it held are being staged again (`PromotionPlan.settling`): it
    waits for their verdicts, the wait measured all the same (alarm: a re-run that never ends)."""


@dataclass(frozen=True)
class Refused:
    table: str
    reason: str


def waiting(
    table: str,
    listed: Iterable[tuple[str, datetime]],
    current: tuple[Build, list[str]] | None,
    contract: Contract,
    now: datetime,
) -> Waiting | Refused | None:
    """What of `table` waits for a build, from the keys under its `_runs/` in staging and when each was
    written, its current build and the runs that build holds (None before the first), and its `contract`
    (changed since the current build: a build from scratch). None where nothing waits; Refused where its
    passes cannot be promoted as they are (two passing runs of one batch: the build would refuse them too).
    The wait runs from the oldest new pass; for a rebuild of runs that no longer pass, from the newest key
    listed (the re-run); for a contract change alone, from `now`."""
    written = dict(listed)
    try:
        plan = promotion_plan(
            list(written),
            held=None if current is None else current[1],
            from_scratch=current is not None and current[0].contract != build_fingerprint(contract),
        )
    except RuntimeError as error:
        return Refused(table, str(error))
    if not plan.waiting:
        return None
    settling = bool(plan.settling)
    if plan.new:
        return Waiting(table, len(plan.new), min(written[pass_key(run)] for run in plan.new), settling)
    if plan.stale:
        return Waiting(table, 0, max(written.values(), default=now), settling)
    return Waiting(table, 0, now)


def to_start(tables: list[Waiting], running: set[str]) -> list[str]:
    """The waiting tables to start a promotion for, the longest waiting first; none already running, none
    whose batches are settling."""
    ordered = sorted(tables, key=lambda w: (w.oldest_pass, w.table))
    return [w.table for w in ordered if w.table not in running and not w.settling]


def running_tables(job_runs: Iterable[Mapping[str, object]]) -> set[str]:
    """The tables (`--table`) of the job's runs that may still write a build."""
    tables = set()
    for run in job_runs:
        arguments = run.get("Arguments")
        if run.get("JobRunState") in ACTIVE_RUN_STATES and isinstance(arguments, dict):
            table = arguments.get(Argument.TABLE.flag)
            if isinstance(table, str):
                tables.add(table)
    return tables


def pass_key(run: str) -> str:
    """The key of a passed run's verdict (`passed_runs`' `<batch>/run=<run>` or legacy `<batch>`)."""
    return f"{RUNS_FOLDER}/{run}/{GATE_PASSED}"
