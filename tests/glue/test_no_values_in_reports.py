"""No data value in a log line, a reason or a message (issue 16, item 3): files holding distinctive values
go through every failure path of the local pipeline (the code that runs in AWS, on moto and a local Spark),
and none of those values is found in what leaves the data stores: log records and output, the reasons of
quarantined files and rows, the gate's verdicts and failures (which the state machine's notifications carry,
with identifiers: tests/infra/test_etl.py holds their shape). The values are found where they belong, in
the quarantined rows beside their reasons, so the test proves they went through."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import IO, Any
from unittest import mock

import pytest
import yaml

SENTINEL = "ZQXJ-SENTINEL"
"""A text no rule, name or message of the pipeline holds."""
DISTINCTIVE = (SENTINEL, "987654.321", "987654321", "987654.125", "V87654321")
"""Each a value of the files below: a text, a valid but sensitive score, an out-of-range age, an out-of-range
score, a repeated key."""

CONTRACT = {
    "dataset": "privacy",
    "table": "visits",
    "key": ["visit_id"],
    "features": ["score", "age"],
    "label": "score",
    "columns": [
        {"name": "visit_id", "type": "string", "nullable": False, "sensitive": True, "pattern": "^V[0-9]+$"},
        {"name": "score", "type": "double", "nullable": False, "sensitive": True, "min": 0, "max": 1e9},
        {"name": "age", "type": "integer", "nullable": False, "sensitive": True, "min": 0, "max": 120},
        {"name": "code", "type": "string", "nullable": True, "allowed": ["A", "B"]},
    ],
    "quality": {"min_rows": 1, "max_rejected_fraction": 1.0, "mean_between": {"score": [0, 1]}},
}
HEADER = "visit_id,score,age,code\n"
ROWS = {  # every row-level failure, each holding a distinctive value
    "V1,987654.321,40,A": None,  # valid: its score is the batch's maximum (and mean) on a sensitive column
    "V87654321,0,40,A": None,  # a repeated key: both rows staged, curated keeps the later
    "V87654321,0,41,B": None,
    f"{SENTINEL},1,40,A": "visit_id: does not match ^V[0-9]+$",
    f"V2,{SENTINEL},40,A": "score: not a number",
    f"V3,1,{SENTINEL},A": "age: not an integer",
    f"V4,1,40,{SENTINEL}": "code: not one of ['A', 'B']",
    "V5,1,987654321,A": "age: above the maximum 120",
    "V6,-987654.125,40,A": "score: below the minimum 0",
    f"V7,1,40,A,{SENTINEL}": "malformed CSV line (wrong number of fields)",
}
FILES: dict[str, bytes] = {  # every file-level failure of validate, each holding a distinctive value
    "rows.csv": (HEADER + "\n".join(ROWS) + "\n").encode(),
    "no-header.csv": f"V9,{SENTINEL},40,A\nV10,1,40,A\n".encode(),
    "repeated-names.csv": f"visit_id,score,age,code,{SENTINEL},{SENTINEL}\nV11,1,40,A,x,y\n".encode(),
    "latin-1.csv": HEADER.encode() + f"V12,{SENTINEL}".encode() + b"\xff,40,A\n",
    "binary.csv": f"{SENTINEL}".encode() + b"\x00\x01",
}
FILE_REASONS = {
    "no-header.csv": "none of its 4 field(s) is a column",
    "repeated-names.csv": "the header repeats 1 name that is not a column of the contract",
    "latin-1.csv": "the file is not utf-8 text: byte",
    "binary.csv": "the file is binary",
}


@pytest.fixture(scope="module")
def run_with_distinctive_values(spark, tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("privacy")
    contracts, data, out = root / "contracts", root / "landing", root / "out"
    (contracts / "privacy").mkdir(parents=True)
    (contracts / "privacy" / "visits.yaml").write_text(yaml.safe_dump(CONTRACT), encoding="utf-8")
    (data / "privacy" / "visits").mkdir(parents=True)
    for name, content in FILES.items():
        (data / "privacy" / "visits" / name).write_bytes(content)

    from lambdas.gate import handler as gate_handler
    from lambdas.observability import logger as lambda_logger

    verdicts: list[str] = []
    gate_batch = gate_handler.gate_batch

    def gate_keeping_the_verdict(s3: Any, staging: str, raw_key: str, contracts: Any) -> dict[str, Any]:
        result = gate_batch(s3, staging, raw_key, contracts)
        bucket, key = result["verdict"].removeprefix("s3://").split("/", 1)
        verdicts.append(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())
        return result

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    # INFO, the level the Lambdas and jobs log at in AWS (below it, py4j traces its wire protocol, values included)
    keep = Keep(logging.INFO)
    loggers = [logging.getLogger(), lambda_logger._logger]  # Powertools' logger does not propagate
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(keep)
        logger.setLevel(logging.INFO)
    output = root / "output.txt"
    try:
        with (
            mock.patch.dict(os.environ),
            mock.patch.object(gate_handler, "gate_batch", gate_keeping_the_verdict),
            output.open("w+b") as sink,
            _file_descriptors_to(sink),
        ):
            from scripts.run_pipeline_local import run

            reports, _ = run(data, [contracts], out, spark=spark)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(keep)
            logger.setLevel(level)
    rows = [
        json.loads(line)
        for part in sorted((out / "quarantine").rglob("*.json"))
        for line in part.read_text(encoding="utf-8").splitlines()
        if line.startswith("{")
    ]
    return {
        "reports": {r.file.rsplit("/", 1)[-1]: r for r in reports},
        "records": records,
        "rows": rows,
        "verdicts": verdicts,
        "out": out,
        "output": output.read_text(encoding="utf-8", errors="replace"),
    }


@contextlib.contextmanager
def _file_descriptors_to(sink: IO[bytes]) -> Iterator[None]:
    """stdout and stderr of this process, at the descriptor level (print, Powertools' JSON lines, anything a
    library writes), into `sink` for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    text = open(sink.fileno(), "w", encoding="utf-8", closefd=False)  # noqa: SIM115 (closed below)
    try:
        for fd in (1, 2):
            os.dup2(sink.fileno(), fd)
        with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            print(CAPTURED)  # proof that both levels land in the sink: Python's streams...
            os.write(1, CAPTURED.encode())  # ...and the descriptor
            yield
    finally:
        text.close()
        for fd, original in zip((1, 2), saved, strict=True):
            os.dup2(original, fd)
            os.close(original)


CAPTURED = "<output captured>"


def test_every_failure_path_was_taken_and_the_values_kept_in_quarantine(run_with_distinctive_values) -> None:
    run = run_with_distinctive_values
    reasons = {row["reject_reason"] for row in run["rows"]}
    assert reasons >= {reason for reason in ROWS.values() if reason}
    kept = json.dumps(run["rows"])
    assert all(value in kept for value in (SENTINEL, "987654321", "987654.125")), (
        "the quarantined rows keep the values, beside their reasons"
    )
    for name, reason in FILE_REASONS.items():
        report = run["reports"][name]
        assert report.file_quarantined and reason in report.reasons[0], (name, report.reasons)
    gate = run["reports"]["rows.csv"]
    assert gate.gate == "failed" and any('Mean "score"' in r for r in gate.reasons), gate.reasons
    assert len(run["verdicts"]) == 1 and run["records"], "the gate wrote its verdict and the steps logged"
    assert run["output"].count(CAPTURED) == 2, "the run's output is captured, from print and from a descriptor"


def _log_text(record: logging.LogRecord) -> str:
    return record.getMessage() + " " + json.dumps(record.__dict__, default=str)


@pytest.mark.parametrize("value", DISTINCTIVE)
def test_no_value_in_a_log_line_reason_or_message(run_with_distinctive_values, value: str) -> None:
    run = run_with_distinctive_values
    reports = json.dumps({name: [r.reasons, r.gate] for name, r in run["reports"].items()})
    assert value not in reports, "a per-file reason (the report, the file quarantine's reason, the gate's failures)"
    assert not [row["reject_reason"] for row in run["rows"] if value in row["reject_reason"]], "a row's reason"
    assert not [v for v in run["verdicts"] if value in v], "the gate's verdict (its details reach notifications)"
    assert not [_log_text(r) for r in run["records"] if value in _log_text(r)], "a log record"
    report_file = run["out"] / "report.json"
    assert not report_file.exists() or value not in report_file.read_text(encoding="utf-8")
    assert value not in run["output"], "stdout or stderr of the run"
