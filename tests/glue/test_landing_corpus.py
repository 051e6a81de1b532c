"""The landing corpus (tests/data/landing): every kind of file real exports are, through the local pipeline
(the code that runs in AWS, on moto and a local Spark), each with its expected outcome; and the Python and
Spark readers on every readable file, which must give the same records."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from etl_spark.io import CORRUPT, exact_path, field_name, must_read_whole, read_raw_csv
from pyspark.sql import functions as F

from lambdas.validate.logic import inspect
from pipeline.contract import Contract, load_contracts
from pipeline.csv_format import decoded_chunks, header_and_records
from pipeline.layout import safe_file_name

CORPUS = Path(__file__).resolve().parents[1] / "data" / "landing"
EXPECTED: dict[str, dict[str, Any]] = yaml.safe_load((CORPUS / "expected.yaml").read_text(encoding="utf-8"))
CONTRACTS = load_contracts() | load_contracts(CORPUS / "contracts")
MALFORMED = "<a record with another number of fields>"
READABLE = sorted(k for k, v in EXPECTED.items() if not v.get("file_quarantined"))


@pytest.fixture(scope="module")
def pipeline_run(spark, tmp_path_factory):
    """The whole corpus landed at once and run through every stage, as `make pipeline DATA=...` runs it."""
    out = tmp_path_factory.mktemp("corpus-run")
    with mock.patch.dict(os.environ):  # the script sets local AWS defaults: keep them out of other tests
        from scripts.run_pipeline_local import run

        reports, _ = run(CORPUS / "files", [CORPUS / "contracts"], out, spark=spark)
    return {report.file: report for report in reports}, out


def test_every_file_of_the_corpus_has_an_expected_outcome() -> None:
    files = {p.relative_to(CORPUS / "files").as_posix() for p in (CORPUS / "files").rglob("*") if p.is_file()}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_each_file_goes_through_or_is_quarantined_whole_with_its_reason(pipeline_run, key: str) -> None:
    reports, _ = pipeline_run
    report, expected = reports[key], EXPECTED[key]
    assert report.file_quarantined is bool(expected.get("file_quarantined")), report.reasons
    if report.file_quarantined:
        assert (report.rows_in, report.gate) == (0, "not run") and len(report.reasons) == 1
        assert expected["reason"] in report.reasons[0]
        return
    assert (report.rows_in, report.rows_written, report.rows_quarantined, report.gate) == (
        expected["rows_in"],
        expected["rows_written"],
        expected["rows_quarantined"],
        expected["gate"],
    ), report.reasons
    assert report.rows_in == report.rows_written + report.rows_quarantined, "nothing lost, nothing counted twice"
    if "reason" in expected:
        assert any(expected["reason"] in reason for reason in report.reasons), report.reasons


def test_the_ledger_holds_each_landed_file_once_with_what_became_of_it(pipeline_run) -> None:
    """One record per landed file (by its raw key, or its landing key and version when unroutable), each
    landing version recorded, its state the report's outcome, its counts the report's."""
    import json

    reports, out = pipeline_run
    records = json.loads((out / "ledger.json").read_text(encoding="utf-8"))
    landed = [r.get("ingested_landing_key") or r.get("quarantined_landing_key") for r in records]
    assert sorted(landed) == sorted(reports), "every landed file once, none twice"
    assert all(r.get("ingested_landing_version") or r["file"].startswith("landing/") for r in records)
    for record in records:
        report = reports[record.get("ingested_landing_key") or record["quarantined_landing_key"]]
        if report.file_quarantined:
            assert record["state"] == "quarantined" and record["quarantined_reason"] == report.reasons[0]
            continue
        counts = (record["gated_rows_in"], record["gated_rows_written"], record["gated_rows_rejected"])
        assert counts == (report.rows_in, report.rows_written, report.rows_quarantined)
        assert record["gated_passed"] is (report.gate == "passed")
        check_only = CONTRACTS[f"{report.dataset}/{report.table}"].check_only
        promoted = report.gate == "passed" and not check_only
        assert record["state"] == ("promoted" if promoted else "gated"), record["file"]
        assert ("promoted_build" in record) is promoted


def test_the_report_is_written_per_file_with_every_field(pipeline_run) -> None:
    import json

    _, out = pipeline_run
    (first, *_) = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert set(first) == {
        "file",
        "dataset",
        "table",
        "rows_in",
        "rows_written",
        "rows_quarantined",
        "file_quarantined",
        "reasons",
        "gate",
    }


def test_quoted_and_encoded_values_reach_staging_intact(spark, pipeline_run) -> None:
    """Delimiters and quotes inside fields, and letters outside ASCII, in every declared format."""
    _, out = pipeline_run
    expected = {"Zoë Ångström", "Jürgen Müller", "Ana Peña"}
    for table in ("semicolon", "excel_utf16", "no_header", "nulls", "latin1"):
        names = {r.patient_name for r in spark.read.parquet(str(out / "staging" / "exports" / table)).collect()}
        assert expected <= names, table
        if table != "latin1":
            assert {"O'Brien, Pat", 'Renée "René" Noël', "Ścibor Łukasz"} <= names, table
    nulls = spark.read.parquet(str(out / "staging" / "exports" / "nulls")).where("ward IS NULL").count()
    assert nulls == 5, "NULL, NA and empty are missing where the format says so (one ward is B)"


def test_the_landing_name_survives_as_lineage(spark, pipeline_run) -> None:
    _, out = pipeline_run
    key = "diabetes/patients/a+b=c 100% Übersicht.csv"
    staged = spark.read.parquet(str(out / "staging" / "diabetes" / "patients"))
    rows = staged.where(F.col("landing_key") == key).collect()
    assert len(rows) == 12 and all(safe_file_name("a+b=c 100% Übersicht.csv") in r.source_file for r in rows)


def python_records(path: Path, contract: Contract) -> tuple[list[str], list[Any]]:
    with path.open("rb") as handle:
        header, rows = header_and_records(
            decoded_chunks(handle, path.name, contract.format), contract.format, contract.column_names
        )
        return header, [row if len(row) == len(header) else MALFORMED for row in rows]


def spark_records(spark, path: Path, contract: Contract, width: int, multiline: bool | None) -> list[Any]:
    frame = read_raw_csv(spark, str(path), contract.format, width, multiline=multiline)
    ordered = frame.withColumn("_i", F.monotonically_increasing_id()).orderBy("_i").collect()
    return [
        MALFORMED if row[CORRUPT] is not None else [row[field_name(i)] or "" for i in range(width)] for row in ordered
    ]


@pytest.mark.parametrize("key", READABLE)
def test_the_python_and_spark_readers_give_the_same_records(spark, tmp_path: Path, key: str) -> None:
    """Both Spark modes: multiLine (one task) and, where validate and the scan allow it, by lines (one task per
    block). A wrong "false" from validate would split a quoted field's lines into records of their own."""
    contract = CONTRACTS["/".join(key.split("/")[:2])]
    path = tmp_path / safe_file_name(key.rsplit("/", 1)[1])  # Hadoop's local file system rejects ':'
    shutil.copyfile(CORPUS / "files" / key, path)
    header, expected = python_records(path, contract)
    with path.open("rb") as handle:  # what validate tells the job (--read_whole), as the job's own scan decides
        read_whole = inspect(handle, path.name, contract).read_whole
    assert read_whole is must_read_whole(spark, str(path), contract.format)
    assert spark_records(spark, path, contract, len(header), multiline=True) == expected
    assert spark_records(spark, path, contract, len(header), multiline=read_whole) == expected


def test_a_line_of_blanks_is_read_whole_and_stays_a_record_to_quarantine(spark, tmp_path: Path) -> None:
    """Spark's line reader drops a line Java's trim empties; the whole-file reader and Python keep it, a record
    with the wrong number of fields: validate and the scan both have such a file read whole."""
    contract = CONTRACTS["diabetes/patients"]
    path = tmp_path / "blank-lines.csv"
    row = "P00001,40,1,25,80,,,,,,,100"
    path.write_text(",".join(contract.column_names) + f"\n{row}\n \n\t\n{row}\n", encoding="utf-8")
    with path.open("rb") as handle:
        assert inspect(handle, path.name, contract).read_whole
    assert must_read_whole(spark, str(path), contract.format)
    header, expected = python_records(path, contract)
    assert expected.count(MALFORMED) == 2
    assert spark_records(spark, path, contract, len(header), multiline=None) == expected
    assert spark_records(spark, path, contract, len(header), multiline=False) != expected, "by lines, both vanish"


def test_only_a_file_with_a_line_break_in_quotes_is_read_whole(spark) -> None:
    contract = CONTRACTS["diabetes/patients"]
    files = CORPUS / "files" / "diabetes" / "patients"
    assert must_read_whole(spark, str(files / "rfc4180-quoted-fields.csv"), contract.format)
    assert not must_read_whole(spark, str(files / "thousands-separator.csv"), contract.format), (
        "quotes in pairs on each line: read by lines"
    )


def test_a_name_with_glob_characters_reads_that_file_only(spark, tmp_path: Path) -> None:
    contract = CONTRACTS["diabetes/patients"]
    source = CORPUS / "files" / "diabetes" / "patients"
    named = tmp_path / "visits [2026] {a,b} *.csv"
    shutil.copyfile(source / "visits [2026] {a,b} *.csv", named)
    for other in ("visits 2.csv", "visits a.csv", "a.csv"):  # what the pattern would match
        shutil.copyfile(source / "crlf-line-endings.csv", tmp_path / other)
    assert read_raw_csv(spark, str(named), contract.format, 12).count() == 12
    assert exact_path("s3://b/a[1]*?{x}.csv") == r"s3://b/a\[1\]\*\?\{x\}.csv"
