"""Erasure on the local pipeline (issue 16, item 4): a subject's rows, valid, repeated, rejected and
malformed, in two files, go through the pipeline into raw, quarantine, staging and curated; `python -m
infra.erasure --local` removes them, and the subject's key is then in no file of any store, while every
other subject's rows are still there and the tables still read in Spark."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.contract import load_contracts

SUBJECT = "P00777777"
CONTRACT = load_contracts()["diabetes/patients"]
HEADER = ",".join(CONTRACT.column_names)


def _row(patient: str, age: str = "50", target: str = "150") -> str:
    return f"{patient},{age},1,25.5,90,180,100,50,4,4.5,90,{target}"


def _others(start: int) -> list[str]:
    return [_row(f"P{start + i:05d}") for i in range(30)]


FILES = {
    "visits-1.csv": [*_others(10000), _row(SUBJECT, "40"), _row(SUBJECT, "41"), _row("P00099999", "200")],
    "visits-2.csv": [*_others(20000), _row(SUBJECT, "42"), f"{_row(SUBJECT)},extra-field"],
}


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".crc")]


def _holds(path: Path, value: str) -> bool:
    if path.suffix == ".parquet":
        return value in json.dumps(pq.read_table(path).to_pylist(), default=str)
    return value.encode() in path.read_bytes()


@pytest.fixture(scope="module")
def erased(spark, tmp_path_factory) -> dict[str, Any]:
    from infra.erasure import main
    from scripts import run_pipeline_local

    root = tmp_path_factory.mktemp("erasure")
    data, out = root / "landing", root / "out"
    (data / "diabetes" / "patients").mkdir(parents=True)
    for name, rows in FILES.items():
        (data / "diabetes" / "patients" / name).write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    reports, _ = run_pipeline_local.run(data, [], out, spark=spark)
    before = {p.relative_to(out).as_posix() for p in _files(out) if _holds(p, SUBJECT)}
    exit_code = main(
        ["--local", str(out), "--dataset", "diabetes", "--table", "patients", "--key", SUBJECT, "--request", "DSR-0001"]
    )
    return {"out": out, "reports": reports, "before": before, "exit_code": exit_code}


def test_the_subject_was_in_every_store_before(erased) -> None:
    assert all(r.gate == "passed" for r in erased["reports"]), [r.reasons for r in erased["reports"]]
    stores = {path.split("/")[0] for path in erased["before"]}
    assert stores == {"raw", "quarantine", "staging", "curated"}, erased["before"]


def test_after_erasure_the_key_is_in_no_file_of_any_store(erased) -> None:
    assert erased["exit_code"] == 0
    left = [p for p in _files(erased["out"]) if _holds(p, SUBJECT)]
    assert left == []


def test_the_erasure_is_recorded_without_the_key(erased) -> None:
    record = json.loads((erased["out"] / "erasures" / "DSR-0001.json").read_text())
    assert record["table"] == "diabetes/patients" and record["request"] == "DSR-0001"
    # raw: all four lines; quarantine: the malformed row; staging: the three accepted (a key repeated in one
    # file is staged twice); curated: the latest
    assert record["rows_removed"] == {"raw": 4, "quarantine": 1, "staging": 3, "curated": 1}
    assert SUBJECT not in json.dumps(record)


def test_everyone_else_is_still_there_and_the_tables_still_read(erased, spark) -> None:
    """Every column of the rewritten Parquet reads in Spark (timestamps as Spark wrote them), and the next
    promotion runs on the erased staging."""
    from etl_spark.jobs import read_build, read_current, run_staging_to_curated
    from etl_spark.local import local_curated

    out = erased["out"]
    staged = spark.read.parquet(str(out / "staging" / "diabetes" / "patients")).collect()
    assert len(staged) == 60 and all(r.created_at and r.updated_at for r in staged)
    batches = sorted(
        {
            p.parent.relative_to(out / "staging").as_posix()
            for p in (out / "staging" / "diabetes" / "patients").rglob("*.parquet")
        }
    )
    assert len(batches) == 2
    again = local_curated(out / "curated")
    current, pointed = read_current(again, CONTRACT)
    rebuilt = run_staging_to_curated(
        spark,
        CONTRACT,
        staging_root=str(out / "staging"),
        runs=batches,
        curated=again,
        onto=current,
        expected=pointed,
        from_scratch=True,
    )
    assert rebuilt.rows == 60 and current is not None and rebuilt.number == current.number + 1
    for build in (current, rebuilt):
        curated = read_build(spark, CONTRACT, again, build).collect()
        ids = {r.patient_id for r in curated}
        assert len(ids) == 60 and SUBJECT not in ids
        assert all(r.created_at is not None for r in curated)
    rejected = spark.read.json(str(out / "quarantine" / "rows" / "diabetes" / "patients"))
    assert rejected.filter("raw_patient_id = 'P00099999'").count() == 1, "another subject's rejected row stays"


def test_a_second_erasure_finds_nothing(erased, capsys) -> None:
    from infra.erasure import main

    assert (
        main(
            [
                "--local",
                str(erased["out"]),
                "--dataset",
                "diabetes",
                "--table",
                "patients",
                "--key",
                SUBJECT,
                "--request",
                "DSR-0002",
            ]
        )
        == 0
    )
    assert "0 rows removed" in capsys.readouterr().out
