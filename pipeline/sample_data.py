"""Sample data for the example pipeline: scikit-learn's diabetes data set (bundled, no download) in
its original units, written as CSV files with the defects real feeds have."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.contract import Contract

COLUMNS = ["patient_id", "age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6", "target"]


def diabetes_rows() -> list[dict[str, str]]:
    """The 442 patients as text rows, with a stable patient_id."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    rows = []
    for index, (_, record) in enumerate(frame.iterrows(), start=1):
        row = {"patient_id": f"P{index:05d}", "age": str(int(record["age"])), "sex": str(int(record["sex"]))}
        row |= {c: f"{record[c]:g}" for c in COLUMNS[3:]}
        rows.append(row)
    return rows


@dataclass(frozen=True)
class SampleFiles:
    clean: Path
    defects: Path
    not_csv: Path
    expected_rejections: dict[str, str]  # patient_id (or label) -> the start of its reason


ROW_DEFECTS: list[tuple[str, str, str | None]] = [
    ("bmi", "", "bmi is missing (required)"),
    ("age", "forty", "age: not an integer"),
    ("bmi", "500", "bmi: above the maximum 80"),
    ("sex", "3", "sex: not one of [1, 2]"),
    ("patient_id", "patient-5", "patient_id: does not match"),
    ("s1", "", None),  # a nullable column may be empty: accepted
    ("bp", " 88.5 ", None),  # whitespace is trimmed: accepted
]
"""The defects batch's first rows, one change each: (column, text, the start of the reason it is rejected for, or
None where it is accepted)."""
MALFORMED_LINE = "P99999,50,1,25,80,1,2,3,4,5,6,100,extra,fields,here\n"
"""The defects batch's last line: more fields than its header."""


def write_sample(directory: Path) -> SampleFiles:
    """Three files: a clean batch, a batch with every kind of row defect, and a file that is not CSV."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = diabetes_rows()
    clean = directory / "patients-clean.csv"
    _write(clean, COLUMNS, _records(rows[:300], COLUMNS))

    defects = directory / "patients-defects.csv"
    batch = [dict(r, notes="ok") for r in rows[300:]]  # an unknown column: ignored, reported
    rejections = {}
    for index, (column, text, reason) in enumerate(ROW_DEFECTS):
        row = batch[index]
        row[column] = text
        if reason:
            rejections[row["patient_id"]] = reason
    duplicate = dict(batch[len(ROW_DEFECTS)], target="123")  # the same key later in the file: curated keeps it
    _write(defects, [*COLUMNS, "notes"], _records([*batch, duplicate], [*COLUMNS, "notes"]), MALFORMED_LINE)
    not_csv = directory / "patients-export.csv"
    not_csv.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    return SampleFiles(clean, defects, not_csv, rejections | {"P99999": "malformed CSV line"})


def write_large(path: Path, rows: int, seed: int = 7) -> Path:
    """`rows` rows resampled from the data set with jitter and ~1% defects, for benchmarks."""
    import numpy as np

    base = diabetes_rows()
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(base), rows)
    jitter = rng.normal(1.0, 0.01, rows)
    broken = rng.random(rows) < 0.01

    def record(i: int) -> list[str]:
        src = base[picks[i]]
        bmi = "not-a-number" if broken[i] else f"{float(src['bmi']) * jitter[i]:.2f}"
        return [f"P{i:07d}", src["age"], src["sex"], bmi, *(src[c] for c in COLUMNS[4:])]

    _write(path, COLUMNS, map(record, range(rows)))
    return path


def _write(path: Path, header: list[str], records: Iterable[list[str]], last_line: str = "") -> None:
    """A CSV file of `records` under `header`, then `last_line` as it is."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(records)
        handle.write(last_line)


def _records(rows: list[dict[str, str]], header: list[str]) -> list[list[str]]:
    return [[row[c] for c in header] for row in rows]


def prices_contract(
    *, deletes: bool = True, version: str | None = "seq", daily: bool = False, **extra: object
) -> Contract:
    """A change extract's contract, unlike the diabetes one: prices by `sku`, each row at a version (`seq`),
    an operation column whose `D` deletes the key (`deletes`); `daily`: by `day` (an integer, yyyymmdd) and
    `sku`, partitioned by day (an event table: new rows fall on recent days). For the builds' tests, the load
    test and the promotion benchmark; `extra` adds or replaces top-level entries (`quality`, say)."""
    from pipeline.contract import parse_contract

    columns: list[dict[str, object]] = [
        {"name": "sku", "type": "string", "nullable": False},
        {"name": "seq", "type": "integer", "nullable": False},
        {"name": "price", "type": "double", "nullable": False},
    ]
    described: dict[str, object] = {"dataset": "shop", "table": "prices", "key": ["sku"], "features": ["seq"]}
    if daily:
        columns.insert(0, {"name": "day", "type": "integer", "nullable": False})
        described |= {"key": ["day", "sku"], "partition": {"column": "day"}}
    described |= {"label": "price", "columns": columns, "quality": {"min_rows": 1}}
    if deletes:
        columns.append({"name": "op", "type": "string", "nullable": True})
        described["delete_when"] = {"column": "op", "values": ["D"]}
    if version:
        described["version"] = version
    return parse_contract(described | extra)


APPOINTMENT_COLUMNS = [
    "day",
    "appointment_id",
    "revision",
    "patient_id",
    "department",
    "booked_days_ahead",
    "duration_minutes",
    "notes",
    "attended",
]
_NOTES = (
    "",
    "Follow-up, bring results",
    'Patient asked for "Dr. Okafor"',
    "Wheelchair access; arrives by taxi, 10 min late",
    'Said "yes, Tuesday, after 3"',
    "Interpreter needed\n(Portuguese)",
)
_DEPARTMENTS = ("cardiology", "dermatology", "endocrinology", "general", "")
PATIENTS = 442
"""The data set's patients: an appointment is one of theirs (P00001-P00442)."""
MAX_DAYS_AHEAD = 59
DURATIONS = (10, 15, 20, 30, 45, 60)


def appointment_rows(count: int, *, seed: int = 19, first_day: int = 1) -> list[dict[str, str]]:
    """`count` generated appointments over the days of November 2026 from `first_day`, as the booking system
    exports them: quoted notes with commas, quotes and line breaks, a department left empty now and then."""
    import random

    rng = random.Random(seed)  # noqa: S311 (sample data, reproducible)
    rows = []
    for index in range(count):
        rows.append(
            {
                "day": f"2026-11-{first_day + index % 7:02d}",
                "appointment_id": f"A{seed * 1000 + index:06d}",
                "revision": "1",
                "patient_id": f"P{rng.randint(1, PATIENTS):05d}",
                "department": rng.choice(_DEPARTMENTS),
                "booked_days_ahead": str(rng.randint(0, MAX_DAYS_AHEAD)),
                "duration_minutes": str(rng.choice(DURATIONS)),
                "notes": rng.choice(_NOTES),
                "attended": "1" if rng.random() < 0.8 else "0",
            }
        )
    return rows


def write_appointments_sample(directory: Path) -> list[Path]:
    """Two daily exports of clinic/appointments: the first day's bookings, then the next day's, which also
    revises three of the first (a no-show recorded, a department added, a note changed) at a higher revision."""
    directory.mkdir(parents=True, exist_ok=True)
    first = appointment_rows(60)
    revised = [
        dict(first[0], revision="2", attended="0"),
        dict(first[1], revision="2", department="general"),
        dict(first[2], revision="3", notes='Moved to room 4, "east wing"'),
    ]
    files = [directory / "appointments-2026-11-08.csv", directory / "appointments-2026-11-09.csv"]
    _write(files[0], APPOINTMENT_COLUMNS, _records(first, APPOINTMENT_COLUMNS))
    second = [*appointment_rows(40, seed=20, first_day=8), *revised]
    _write(files[1], APPOINTMENT_COLUMNS, _records(second, APPOINTMENT_COLUMNS))
    return files
