"""Writes the landing corpus: files of the kinds real exports are, laid out as landing is
(`files/<dataset>/<table>/<file>`), each with its expected outcome in `expected.yaml`. The files are committed;
this script says how each was made (run it to rebuild them: `.venv/bin/python tests/data/landing/make_corpus.py`).

Most land at diabetes/patients (the repository's contract) with 12 real rows each, enough for its gate; the
`exports/*` tables have contracts of their own here (`contracts/`), each declaring a format.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from pipeline.sample_data import COLUMNS, diabetes_rows  # noqa: E402

FILES = HERE / "files"
NOTES = [
    "plain",
    "with, a comma",
    'says "hi", twice ""ok""',
    "two\nlines",
    "three\r\nlines\rhere",
    "Müller",
    "",
    " padded ",
    "semi;colon",
    "tab\there",
    'quote at end"',
    "last",
]


def patients(start: int, count: int = 12) -> list[list[str]]:
    rows = diabetes_rows()[start : start + count]
    return [[row[c] for c in COLUMNS] for row in rows]


def csv_text(header: list[str] | None, rows: list[list[str]], delimiter: str = ",", newline: str = "\n") -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=newline, quoting=csv.QUOTE_MINIMAL)
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write(path: str, data: bytes | str, encoding: str = "utf-8") -> None:
    target = FILES / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))


def visits(count: int = 6) -> list[list[str]]:
    names = ["Zoë Ångström", "Jürgen Müller", "O'Brien, Pat", 'Renée "René" Noël', "Ana Peña", "Ścibor Łukasz"]
    return [
        [f"V{i:04d}", names[i % len(names)], str(20 + i), f"{60 + i * 1.5:.1f}", ["A", "", "B"][i % 3]]
        for i in range(count)
    ]


VISIT_COLUMNS = ["visit_id", "patient_name", "age", "weight_kg", "ward"]


def main() -> None:
    shutil.rmtree(FILES, ignore_errors=True)
    header = [*COLUMNS, "notes"]
    with_notes = [[*row, NOTES[i]] for i, row in enumerate(patients(0))]
    p = "diabetes/patients/"
    write(p + "rfc4180-quoted-fields.csv", csv_text(header, with_notes))
    write(p + "crlf-line-endings.csv", csv_text(header, with_notes, newline="\r\n"))
    write(p + "cr-only-line-endings.csv", csv_text(COLUMNS, patients(12), newline="\r"))
    write(p + "utf8-with-bom.csv", "\ufeff" + csv_text(header, with_notes))
    write(p + "compressed.csv.gz", gzip.compress(csv_text(header, with_notes).encode(), mtime=0))
    write(p + "compressed.csv.bz2", bz2.compress(csv_text(COLUMNS, patients(24)).encode()))
    write(p + "visits [2026] {a,b} *.csv", csv_text(COLUMNS, patients(36)))
    write(p + "export 10:47:07.csv", csv_text(COLUMNS, patients(48)))
    write(p + "a+b=c 100% Übersicht.csv", csv_text(COLUMNS, patients(60)))
    long_header = [*COLUMNS, "remarks_" + "x" * 40_000, "comments_" + "y" * 40_000]  # 80 KB: two long names
    write(p + "header-over-64-kb.csv", csv_text(long_header, [[*row, "", ""] for row in patients(72)]))
    write(
        p + "unquoted-null-and-na.csv",
        csv_text(
            COLUMNS,
            [
                [*row[:5], "NULL" if i == 0 else "NA" if i == 1 else row[5], *row[6:]]
                for i, row in enumerate(patients(84))
            ],
        ),
    )
    write(
        p + "thousands-separator.csv",
        csv_text(COLUMNS, [[*row[:-1], "1,234.5" if i == 0 else row[-1]] for i, row in enumerate(patients(96))]),
    )
    write(p + "extra-fields-on-a-line.csv", csv_text(COLUMNS, patients(240)) + "P99999,50,1,25,80,1,2,3,4,5,6,100,x\n")
    write(p + "blank-lines.csv", csv_text(COLUMNS, patients(120)).replace("\n", "\n\n", 3))
    write(p + "header-only.csv", csv_text(COLUMNS, []))
    write(p + "empty.csv", b"")
    write(p + "duplicate-column.csv", csv_text([*COLUMNS, "age"], [[*row, row[1]] for row in patients(132)]))
    write(
        p + "empty-column-name.csv",
        csv_text([*COLUMNS[:3], "", *COLUMNS[3:]], [[*row[:3], "", *row[3:]] for row in patients(144)]),
    )
    write(p + "trailing-delimiter.csv", csv_text([*COLUMNS, ""], [[*row, ""] for row in patients(156)]))
    write(p + "missing-column.csv", csv_text(COLUMNS[:-1], [row[:-1] for row in patients(168)]))
    write(p + "latin-1-declared-utf-8.csv", csv_text(header, with_notes), encoding="latin-1")
    write(p + "semicolon-declared-comma.csv", csv_text(COLUMNS, patients(180), delimiter=";"))
    write(p + "no-header-declared-header.csv", csv_text(None, patients(192)))
    write(p + "truncated.csv.gz", gzip.compress(csv_text(COLUMNS, patients(204)).encode(), mtime=0)[:-20])
    write(p + "picture.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    write("diabetes/unknown_table/patients.csv", csv_text(COLUMNS, patients(216)))
    e = "exports/"
    write(e + "semicolon/export.csv", csv_text(VISIT_COLUMNS, visits(), delimiter=";"))
    write(e + "latin1/export.csv", csv_text(VISIT_COLUMNS, visits()[:2] + visits()[4:5]), encoding="latin-1")
    write(
        e + "excel_utf16/export.txt",
        csv_text(VISIT_COLUMNS, visits(), delimiter="\t", newline="\r\n"),
        encoding="utf-16",
    )
    write(e + "no_header/export.csv", csv_text(None, visits()))
    write(
        e + "nulls/export.csv",
        csv_text(VISIT_COLUMNS, [[*row[:4], ["NULL", "NA", "", "B"][i % 4]] for i, row in enumerate(visits())]),
    )


if __name__ == "__main__":
    main()
