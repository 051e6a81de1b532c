"""What the state machine hands the pipeline's functions and what they hand back: one definition for the
handlers (their signatures) and for the stack's state machine, whose every `$.validation.*` and `$.gate.*`
path a template test holds to these keys (tests/infra/test_payloads.py), so the two cannot drift apart."""

from __future__ import annotations

from typing import Literal, TypedDict


class FileEvent(TypedDict):
    """Validate's input: the raw object the pipeline started for, its key as the event named it."""

    bucket: str
    key: str


class Validated(TypedDict):
    """A readable file: `$.validation` on the path to raw_to_staging; `key` is the object's own key."""

    valid: Literal[True]
    source: str
    key: str
    dataset: str
    table: str
    created_at: str
    batch: str
    unknown_columns: list[str]
    landing_key: str | None
    read_whole: Literal["true", "false"]
    """raw_to_staging's `--read_whole` (pipeline.job_arguments): the file is read whole where "true"."""


class Quarantined(TypedDict):
    """An unreadable file, moved to quarantine whole: `$.validation` on the quarantined path."""

    valid: Literal[False]
    source: str
    reason: str
    quarantined: str


Validation = Validated | Quarantined


class BatchEvent(TypedDict):
    """The gate's input: the raw key of the batch that raw_to_staging staged."""

    key: str


class GateVerdict(TypedDict):
    """`$.gate`: the verdict on the batch's staged run, and that run's counts."""

    passed: bool
    verdict: str
    failures: list[str]
    run_id: str
    rows_in: int
    rows_written: int
    rows_rejected: int
