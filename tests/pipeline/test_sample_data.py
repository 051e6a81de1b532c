"""The sample data (pipeline/sample_data.py) is what the README promises of it: the diabetes data set in its own
units, a clean batch, a batch with one row per kind of defect (each rejected for the reason the sample says, the
rest accepted), a file that is not CSV, a benchmark file with ~1 % defects, and a clinic's two daily exports whose
second revises three rows of the first. The Spark and Lambda tests run these files; these tests read them."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from pipeline.contract import load_contracts
from pipeline.sample_data import (
    APPOINTMENT_COLUMNS,
    COLUMNS,
    appointment_rows,
    diabetes_rows,
    prices_contract,
    write_appointments_sample,
    write_large,
    write_sample,
)

CONTRACTS = load_contracts()
DIABETES = CONTRACTS["diabetes/patients"]
APPOINTMENTS = CONTRACTS["clinic/appointments"]


def read(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))


def test_the_diabetes_rows_are_the_data_sets_442_patients_in_their_own_units() -> None:
    rows = diabetes_rows()
    assert len(rows) == 442 and list(rows[0]) == COLUMNS
    assert [r["patient_id"] for r in rows] == [f"P{i:05d}" for i in range(1, 443)]
    assert rows[0] == {
        "patient_id": "P00001",
        "age": "59",
        "sex": "2",
        "bmi": "32.1",
        "bp": "101",
        "s1": "157",
        "s2": "93.2",
        "s3": "38",
        "s4": "4",
        "s5": "4.8598",
        "s6": "87",
        "target": "151",
    }
    assert all(DIABETES.check_row(row)[1] == [] for row in rows)


@pytest.fixture
def sample(tmp_path: Path):
    """Written for each test (not once per module): mutation testing counts only what a test itself runs."""
    return write_sample(tmp_path / "nested" / "folder")


def test_the_clean_batch_is_the_first_300_patients(sample) -> None:
    rows = read(sample.clean)
    assert sample.clean.name == "patients-clean.csv"
    assert rows[0] == COLUMNS
    assert rows[1:] == [[row[c] for c in COLUMNS] for row in diabetes_rows()[:300]]


def test_each_defect_is_rejected_for_the_reason_the_sample_names_and_every_other_row_accepted(sample) -> None:
    header, *rows = read(sample.defects)
    assert sample.defects.name == "patients-defects.csv" and header == [*COLUMNS, "notes"]
    *records, malformed = rows
    assert malformed == [
        "P99999",
        "50",
        "1",
        "25",
        "80",
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
        "100",
        "extra",
        "fields",
        "here",
    ]
    assert len(records) == 442 - 300 + 1, "the last 142 patients and one repeated key"
    rejected = {}
    for record in records:
        assert len(record) == len(header) and record[-1] == "ok"
        reasons = DIABETES.check_row(dict(zip(header, record, strict=True)))[1]
        if reasons:
            (rejected[record[0]],) = reasons
    expected = dict(sample.expected_rejections)
    assert expected.pop("P99999") == "malformed CSV line"
    assert {key: reason[: len(expected[key])] for key, reason in rejected.items()} == expected
    assert sample.expected_rejections == {
        "P00301": "bmi is missing (required)",
        "P00302": "age: not an integer",
        "P00303": "bmi: above the maximum 80",
        "P00304": "sex: not one of [1, 2]",
        "patient-5": "patient_id: does not match",
        "P99999": "malformed CSV line",
    }


def test_the_accepted_oddities_are_there(sample) -> None:
    header, *rows = read(sample.defects)
    by_id = {}
    for record in rows[:-1]:
        by_id.setdefault(record[0], []).append(dict(zip(header, record, strict=True)))
    assert by_id["P00306"][0]["s1"] == "", "a nullable column left empty"
    assert by_id["P00307"][0]["bp"] == " 88.5 ", "whitespace around a number"
    first, repeated = by_id["P00308"]
    assert repeated == dict(first, target="123"), "the same key again, later in the file, with another target"
    assert [r[0] for r in rows[:-1]][-1] == "P00308"


def test_the_export_that_is_not_csv_is_binary(sample) -> None:
    data = sample.not_csv.read_bytes()
    assert sample.not_csv.name == "patients-export.csv" and data.startswith(b"\x89PNG\r\n\x1a\n")
    assert set(data[16:]) == set(range(256))
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")


def test_the_benchmark_file_has_the_rows_asked_for_about_one_in_a_hundred_broken(tmp_path: Path) -> None:
    path = write_large(tmp_path / "large.csv", 20_000)
    header, *rows = read(path)
    assert header == COLUMNS and len(rows) == 20_000
    assert [r[0] for r in rows[:3]] == ["P0000000", "P0000001", "P0000002"] and rows[-1][0] == "P0019999"
    broken = [r for r in rows if r[3] == "not-a-number"]
    assert 0.007 < len(broken) / len(rows) < 0.013
    bmis = [float(r[3]) for r in rows if r[3] != "not-a-number"]
    assert all(f"{b:.2f}" == r[3] for b, r in zip(bmis, [r for r in rows if r[3] != "not-a-number"], strict=True))
    assert 17 < min(bmis) < 18 and 42.2 < max(bmis) < 44, "the data set's 18.0-42.2, jittered by about 1 %"
    assert len({*bmis}) > 2_000, "jittered, not copied"
    assert path.read_bytes().decode().splitlines()[1:4] == [
        "P0000000,34,1,33.13,73,178,114.6,51,3.49,4.1271,92,55",
        "P0000001,52,1,28.86,113,280,174,67,4,5.273,86,283",
        "P0000002,52,1,29.30,104.33,211,132.8,49,4.31,4.9836,98,198",
    ], "the same file on every machine: the benchmark's figures compare"
    unchanged = [c for c in COLUMNS if c not in ("patient_id", "bmi")]
    every = {tuple(r[c] for c in unchanged) for r in diabetes_rows()}
    assert {tuple(r[COLUMNS.index(c)] for c in unchanged) for r in rows} == every, "every patient resampled"
    again = write_large(tmp_path / "again.csv", 20_000)
    assert again.read_bytes() == path.read_bytes(), "seeded: the same file again"
    assert write_large(tmp_path / "other.csv", 20_000, seed=8).read_bytes() != path.read_bytes()


def test_the_prices_contract_is_a_change_extract_with_each_option() -> None:
    default = prices_contract()
    assert (default.name, default.key, default.label, default.features) == ("shop/prices", ("sku",), "price", ("seq",))
    assert default.column_names == ["sku", "seq", "price", "op"]
    assert default.delete_when is not None and default.delete_when.column == "op"
    assert default.delete_when.values == ("D",) and default.version == "seq"
    assert default.partition.column is None and default.quality.min_rows == 1
    assert [c.nullable for c in default.columns] == [False, False, False, True]
    assert [c.type for c in default.columns] == ["string", "integer", "double", "string"]
    daily = prices_contract(daily=True)
    assert daily.column_names[0] == "day" and daily.key == ("day", "sku") and daily.partition.column == "day"
    assert daily.column("day").type == "integer" and not daily.column("day").nullable
    plain = prices_contract(deletes=False, version=None, quality={"min_rows": 3})
    assert plain.column_names == ["sku", "seq", "price"] and plain.delete_when is None and plain.version is None
    assert plain.quality.min_rows == 3


def test_the_appointments_are_a_week_of_bookings_seeded() -> None:
    rows = appointment_rows(70)
    assert len(rows) == 70 and all(list(r) == APPOINTMENT_COLUMNS for r in rows)
    assert [r["day"] for r in rows[:8]] == [f"2026-11-0{d}" for d in (1, 2, 3, 4, 5, 6, 7, 1)]
    assert [r["appointment_id"] for r in rows[:2]] == ["A019000", "A019001"] and rows[-1]["appointment_id"] == "A019069"
    assert {r["revision"] for r in rows} == {"1"}
    assert all(APPOINTMENTS.check_row(r)[1] == [] for r in rows)
    assert {r["department"] for r in rows} == {"cardiology", "dermatology", "endocrinology", "general", ""}
    assert any("\n" in r["notes"] for r in rows) and any('"' in r["notes"] for r in rows)
    assert any("," in r["notes"] for r in rows) and any(r["notes"] == "" for r in rows)
    assert 0.65 < sum(r["attended"] == "1" for r in rows) / 70 < 0.95
    assert appointment_rows(70) == rows and appointment_rows(70, seed=20) != rows
    later = appointment_rows(3, seed=20, first_day=8)
    assert [r["day"] for r in later] == ["2026-11-08", "2026-11-09", "2026-11-10"]
    assert later[0]["appointment_id"] == "A020000"


def test_appointments_are_of_every_patient_booked_up_to_59_days_ahead_for_the_usual_lengths() -> None:
    rows = appointment_rows(20_000)
    assert {r["patient_id"] for r in rows} == {f"P{i:05d}" for i in range(1, 443)}
    assert {int(r["booked_days_ahead"]) for r in rows} == set(range(60))
    assert {int(r["duration_minutes"]) for r in rows} == {10, 15, 20, 30, 45, 60}


def test_the_samples_are_written_again_into_the_same_folder(tmp_path: Path) -> None:
    assert write_sample(tmp_path).clean == write_sample(tmp_path).clean
    assert write_appointments_sample(tmp_path) == write_appointments_sample(tmp_path)


def test_the_second_export_revises_three_appointments_of_the_first(tmp_path: Path) -> None:
    first, second = write_appointments_sample(tmp_path / "a" / "b")
    assert (first.name, second.name) == ("appointments-2026-11-08.csv", "appointments-2026-11-09.csv")
    head, *day_one = read(first)
    head_two, *day_two = read(second)
    assert head == head_two == APPOINTMENT_COLUMNS
    as_rows = [dict(zip(head, r, strict=True)) for r in day_one]
    assert as_rows == appointment_rows(60), "quotes, commas and line breaks survive the file"
    new, revised = day_two[:40], [dict(zip(head, r, strict=True)) for r in day_two[40:]]
    assert [dict(zip(head, r, strict=True)) for r in new] == appointment_rows(40, seed=20, first_day=8)
    assert revised == [
        dict(as_rows[0], revision="2", attended="0"),
        dict(as_rows[1], revision="2", department="general"),
        dict(as_rows[2], revision="3", notes='Moved to room 4, "east wing"'),
    ]
    assert all(APPOINTMENTS.check_row(r)[1] == [] for r in revised)
