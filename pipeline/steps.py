"""The pipeline's steps, in the order a file goes through them, defined once.

The ETL stack chains its state machine's per-file states in this order (infra/stacks/etl.py: `_pipeline`),
and the local pipeline runs its stages in it (scripts/run_pipeline_local.py), so the two cannot drift
apart: a step added, dropped or moved here moves in both.
"""

from __future__ import annotations

from enum import StrEnum


class PipelineStep(StrEnum):
    INGEST = "ingest"
    """Landing -> raw, on a schedule (lambdas/ingest)."""
    VALIDATE = "validate"
    """Is the raw file readable as its contract says (lambdas/validate); else the whole file is quarantined."""
    RAW_TO_STAGING = "raw_to_staging"
    """The file's rows -> staging (Parquet), rejected rows -> quarantine (Glue)."""
    GATE = "gate"
    """The batch's quality gate (lambdas/gate): a failed batch is never promoted."""
    STAGING_TO_CURATED = "staging_to_curated"
    """Every passed batch of a table -> its next curated build, on a schedule (lambdas/promote, Glue)."""


PER_FILE = (PipelineStep.VALIDATE, PipelineStep.RAW_TO_STAGING, PipelineStep.GATE)
"""The steps of one state machine execution: one raw file each."""
PIPELINE = (PipelineStep.INGEST, *PER_FILE, PipelineStep.STAGING_TO_CURATED)
"""Every step, from a landed file to curated."""
