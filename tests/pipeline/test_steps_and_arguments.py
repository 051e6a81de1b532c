"""The names the pipeline's parts share (pipeline/steps.py, pipeline/job_arguments.py) are the ones its users and
its running parts know: the steps as the README names them, in its order; the Glue jobs' arguments as runs already
started pass them, and none that Glue keeps for itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.job_arguments import (
    RAW_TO_STAGING,
    STAGING_TO_CURATED,
    UNKNOWN,
    Argument,
    read_whole_argument,
    read_whole_of,
)
from pipeline.steps import PER_FILE, PIPELINE, PipelineStep

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_the_readme_names_the_steps_in_their_order() -> None:
    assert f"# sample data -> {' -> '.join(PIPELINE)}, locally" in README, "the `make pipeline` line"
    diagram = README[README.index("raw object created ──EventBridge──▶") :]
    places = [diagram.index(text) for text in ("  validate ─▶", "─▶ raw_to_staging (Glue)", "─▶ gate (Lambda)")]
    assert places == sorted(places)
    assert [str(step) for step in PER_FILE] == ["validate", "raw_to_staging", "gate"], "the diagram's per-file steps"
    assert PIPELINE[0] is PipelineStep.INGEST and PIPELINE[-1] is PipelineStep.STAGING_TO_CURATED


def test_the_jobs_arguments_keep_the_names_runs_already_started_pass() -> None:
    """A deploy replaces the jobs while runs started by the previous state machine are queued or running (and the
    promote function reads an in-flight run's `--table` to leave its table alone): a renamed argument is a
    breaking change, made here on purpose, never by accident."""
    assert [a.flag for a in RAW_TO_STAGING] == [
        "--raw_bucket",
        "--staging_bucket",
        "--quarantine_bucket",
        "--contracts",
        "--key",
        "--read_whole",  # added with a default in the job (a run the previous state machine starts has it)
    ]
    assert [a.flag for a in STAGING_TO_CURATED] == [
        "--staging_bucket",
        "--curated_bucket",
        "--ledger_table",
        "--ledger_region",
        "--catalog_database",
        "--contracts",
        "--table",
        "--from_scratch",
    ]
    assert set(RAW_TO_STAGING) | set(STAGING_TO_CURATED) == set(Argument), "every argument is some job's"


GLUE_SPECIAL = {
    "--JOB_NAME",
    "--JOB_ID",
    "--JOB_RUN_ID",
    "--TempDir",
    "--job-language",
    "--class",
    "--scriptLocation",
    "--extra-py-files",
    "--extra-jars",
    "--extra-files",
    "--user-jars-first",
    "--job-bookmark-option",
    "--additional-python-modules",
    "--python-modules-installer-option",
    "--conf",
    "--datalake-formats",
    "--enable-metrics",
    "--enable-spark-ui",
    "--spark-event-logs-path",
    "--enable-glue-datacatalog",
    "--enable-continuous-cloudwatch-log",
    "--enable-auto-scaling",
    "--enable-job-insights",
    "--enable-observability-metrics",
    "--continuous-log-logGroup",
}
"""Glue's special job parameters (AWS Glue: "Using job parameters in AWS Glue jobs"): Glue reads them itself."""


@pytest.mark.parametrize("argument", list(Argument))
def test_an_argument_is_a_plain_name_glue_leaves_to_the_job(argument: Argument) -> None:
    assert re.fullmatch(r"--[a-z][a-z_]*", argument.flag), "getResolvedOptions reads lower-case names"
    assert argument.flag not in GLUE_SPECIAL
    assert argument.flag == f"--{argument.value}"


def test_read_whole_reads_validates_answer_or_unknown_and_refuses_anything_else() -> None:
    assert (read_whole_argument(True), read_whole_argument(False)) == ("true", "false")
    assert (read_whole_of("true"), read_whole_of("false"), read_whole_of(UNKNOWN)) == (True, False, None)
    with pytest.raises(ValueError, match="--read_whole is 'True'"):
        read_whole_of("True")
