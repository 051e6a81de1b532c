"""Erasing one data subject's rows (GDPR art. 17, HIPAA amendment requests) from a dataset's stores.

A subject is a value of the contract's key. Its rows are wherever the pipeline carried them: the landed and
raw files (CSV as the contract reads it, possibly compressed), whole files in quarantine, rejected rows in
quarantine (JSON lines: `raw_<column>` and the unparsed `_corrupt_record` text), and Parquet in staging and
curated. This module decides, for one object's bytes, what is left once the subject's rows are gone; the
stores (infra/erasure.py) read, rewrite and delete, and remove every older version.

A file whose rows cannot be told apart (not decodable, not CSV) but that holds the subject's key is erased
whole: the obligation to erase outweighs keeping a file nobody could read. Anything else that holds the
key and is of no format known here is reported, never silently kept.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pipeline.contract import Contract
from pipeline.csv_format import UnreadableFile, compression_of, decoded_chunks, decompressed, header_and_records

CORRUPT_RECORD = "_corrupt_record"
"""Spark's column holding a row it could not split into fields (a quarantined, malformed row)."""


class ErasureError(ValueError):
    """A request that cannot be carried out as given (e.g. the wrong number of key values)."""


class Kind(StrEnum):
    """How an object holds rows."""

    CSV = "csv"  # landed, raw and quarantined files: the contract's CSV format
    REJECTED_ROWS = "rejected-rows"  # quarantine rows/: JSON lines written by the Glue job
    PARQUET = "parquet"  # staging and curated
    OTHER = "other"  # reasons, profiles, markers: no rows, but checked for the key


@dataclass(frozen=True)
class Subject:
    """One subject of one table: a value per column of the contract's key."""

    contract: Contract
    key: tuple[str, ...]

    @classmethod
    def of(cls, contract: Contract, values: Sequence[str]) -> Subject:
        key = tuple(v.strip() for v in values)
        if len(key) != len(contract.key) or not all(key):
            raise ErasureError(
                f"{contract.name}'s key is {', '.join(contract.key)}: give one non-empty value for "
                f"each ({len(key)} given)"
            )
        return cls(contract, key)

    def matches(self, row: dict[str, str | None], prefix: str = "") -> bool:
        return all(
            (row.get(prefix + column) or "").strip() == value
            for column, value in zip(self.contract.key, self.key, strict=True)
        )

    def mentioned_in(self, text: str) -> bool:
        """Whether every key value appears in `text` as a whole field (the test for unparsed rows)."""
        return all(value in _fields(text, self.contract) for value in self.key)

    def named_in(self, text: str) -> bool:
        """Whether every key value appears in `text` as a whole token, not inside a longer one (P00308 is not
        in P003081): the test for text of no known layout."""
        return all(re.search(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])", text) for value in self.key)


@dataclass(frozen=True)
class Erased:
    """What to do with an object that held the subject: write `data` in its place, or delete it (None)."""

    data: bytes | None
    rows: int


def erase(kind: Kind, name: str, data: bytes, subject: Subject) -> Erased | None:
    """The object without the subject's rows; None when it holds none of them (leave it as it is).
    Raises ErasureError for an object of no known format that still holds the key."""
    if kind is Kind.CSV:
        return _erase_csv(name, data, subject)
    if kind is Kind.REJECTED_ROWS:
        return _erase_rejected_rows(data, subject)
    if kind is Kind.PARQUET:
        return _erase_parquet(data, subject)
    if subject.named_in(data.decode("utf-8", "replace")):
        raise ErasureError(f"{name} holds the subject's key and is not a file of rows: erase it by hand")
    return None


def _fields(text: str, contract: Contract) -> set[str]:
    fmt = contract.format
    return {
        f.strip() for line in csv.reader(io.StringIO(text), delimiter=fmt.delimiter, quotechar=fmt.quote) for f in line
    }


def _compress(name: str, data: bytes) -> bytes:
    compression = compression_of(name)
    if compression == ".gz":
        return gzip.compress(data, mtime=0)
    if compression == ".bz2":
        return bz2.compress(data)
    return data


def _erase_csv(name: str, data: bytes, subject: Subject) -> Erased | None:
    fmt = subject.contract.format
    try:
        header, records = header_and_records(
            decoded_chunks(io.BytesIO(data), name, fmt), fmt, subject.contract.column_names
        )
        kept, removed = [], 0
        for record in records:
            if subject.matches(dict(zip(header, record, strict=False))):
                removed += 1
            else:
                kept.append(record)
    except UnreadableFile:
        plain = _plain_bytes(name, data).decode(fmt.python_codec, "replace")
        return Erased(None, 0) if subject.named_in(plain) else None
    if not removed:
        return None
    out = io.StringIO()
    writer = csv.writer(out, delimiter=fmt.delimiter, quotechar=fmt.quote, lineterminator="\n")
    if fmt.header:
        writer.writerow(header)
    writer.writerows(kept)
    return Erased(_compress(name, out.getvalue().encode(fmt.python_codec)), removed)


def _plain_bytes(name: str, data: bytes) -> bytes:
    """The bytes before compression, as far as they can be had (a broken archive: the bytes as stored)."""
    try:
        return decompressed(io.BytesIO(data), name).read()
    except (OSError, EOFError, ValueError):
        return data


def _erase_rejected_rows(data: bytes, subject: Subject) -> Erased | None:
    kept, removed = [], 0
    for line in data.decode("utf-8").split("\n"):  # JSON lines: U+2028 and the like may sit inside a value
        if not line.strip():
            continue
        row = json.loads(line)
        corrupt = row.get(CORRUPT_RECORD)
        if subject.matches(row, prefix="raw_") or (corrupt and subject.mentioned_in(corrupt)):
            removed += 1
        else:
            kept.append(line)
    if not removed:
        return None
    return Erased("".join(f"{line}\n" for line in kept).encode("utf-8"), removed)


def _erase_parquet(data: bytes, subject: Subject) -> Erased | None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    source = pq.ParquetFile(io.BytesIO(data))
    int96 = any(column.physical_type == "INT96" for column in source.schema)
    table = source.read()
    match = None
    for column, value in zip(subject.contract.key, subject.key, strict=True):
        values = pc.utf8_trim_whitespace(pc.cast(table[column], pa.string()))
        equal = pc.fill_null(pc.equal(values, value), False)
        match = equal if match is None else pc.and_(match, equal)
    removed = pc.sum(pc.cast(match, pa.int64())).as_py() or 0
    if not removed:
        return None
    out = io.BytesIO()
    # Spark's timestamps as Spark wrote them: INT96 (its default), else microseconds; pyarrow would write
    # nanoseconds, which Spark 3.5 refuses to read
    pq.write_table(
        table.filter(pc.invert(match)),
        out,
        use_deprecated_int96_timestamps=int96,
        coerce_timestamps=None if int96 else "us",
        allow_truncated_timestamps=False,
    )
    return Erased(out.getvalue(), removed)
