"""The arguments of the pipeline's Glue jobs, named once.

Four places must agree on each name: the stack sets a job's default arguments (infra/stacks/etl.py), the
state machine or the code that starts a run passes the rest (the raw key; the promote function's and the
backfill's table), and the job's entry (glue/<job>/job.py) asks `getResolvedOptions` for all of them. A
name spelt differently in one of them fails only in AWS, at the run's start; here it cannot be.
tests/infra/test_glue_arguments.py checks the synthesised templates and the starting code against these.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class Argument(StrEnum):
    """An argument's name as `getResolvedOptions` takes it; `flag` is how a run gets it."""

    RAW_BUCKET = "raw_bucket"
    STAGING_BUCKET = "staging_bucket"
    QUARANTINE_BUCKET = "quarantine_bucket"
    CURATED_BUCKET = "curated_bucket"
    CONTRACTS = "contracts"
    """Every contract the job may be asked to run (JSON by `dataset/table`): a run picks its own."""
    KEY = "key"
    """raw_to_staging: the raw object of this run (the state machine passes the validated key)."""
    READ_WHOLE = "read_whole"
    """raw_to_staging: "true" where reading the file by lines would change its records (a line break in a quoted
    field, a line of blanks: pipeline.csv_format.LineModeHazards), so that it is read whole; "false" where not
    (read by lines, in parallel), as the validate step found reading the file. The job's default, UNKNOWN (a
    run started without it, e.g. by the state machine of the deploy before), has the job scan the file."""
    TABLE = "table"
    """staging_to_curated: the `dataset/table` to build (the promote function, a backfill)."""
    FROM_SCRATCH = "from_scratch"
    """staging_to_curated: "true" rebuilds from every passed batch (a backfill), else "false"."""
    LEDGER_TABLE = "ledger_table"
    LEDGER_REGION = "ledger_region"
    CATALOG_DATABASE = "catalog_database"

    @property
    def flag(self) -> str:
        """The name in a run's or a job's arguments (`--key`)."""
        return f"--{self.value}"


RAW_TO_STAGING = (
    Argument.RAW_BUCKET,
    Argument.STAGING_BUCKET,
    Argument.QUARANTINE_BUCKET,
    Argument.CONTRACTS,
    Argument.KEY,
    Argument.READ_WHOLE,
)
"""What glue/raw_to_staging/job.py reads."""
UNKNOWN = "unknown"
"""`--read_whole` of a run that was not told: the job scans the file."""


def read_whole_argument(read_whole: bool) -> Literal["true", "false"]:
    """`--read_whole` as the validate step returns it for the state machine to pass (Glue's arguments are text)."""
    return "true" if read_whole else "false"


def read_whole_of(value: str) -> bool | None:
    """`--read_whole` as raw_to_staging reads it: None where unknown (the job scans the file)."""
    known = {read_whole_argument(True): True, read_whole_argument(False): False, UNKNOWN: None}
    if value not in known:
        raise ValueError(f"--read_whole is {value!r}: one of {sorted(known)}")
    return known[value]


STAGING_TO_CURATED = (
    Argument.STAGING_BUCKET,
    Argument.CURATED_BUCKET,
    Argument.LEDGER_TABLE,
    Argument.LEDGER_REGION,
    Argument.CATALOG_DATABASE,
    Argument.CONTRACTS,
    Argument.TABLE,
    Argument.FROM_SCRATCH,
)
"""What glue/staging_to_curated/job.py reads."""
