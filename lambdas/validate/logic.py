"""Can this raw file be read against its contract? Decided from its first bytes."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from pipeline.contract import Contract

SAMPLE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Verdict:
    readable: bool
    reason: str = ""
    unknown_columns: list[str] = field(default_factory=list)


def inspect(sample: bytes, contract: Contract, complete: bool) -> Verdict:
    """`sample` is the start of the file; `complete` says whether it is the whole file."""
    if not sample.strip():
        return Verdict(False, "the file is empty")
    if b"\x00" in sample:
        return Verdict(False, "the file is binary (it contains NUL bytes), not CSV text")
    text_part = sample if complete else sample[: sample.rfind(b"\n") + 1] or sample
    try:
        text = text_part.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Verdict(False, f"the file is not UTF-8 text (byte {exc.start}: {exc.reason})")
    try:
        header = next(csv.reader(io.StringIO(text)), [])
    except csv.Error as exc:
        return Verdict(False, f"the header is not CSV ({exc})")
    missing, unknown = contract.header_problems(header)
    if len(header) < 2 or len(missing) == len(contract.columns):
        first_line = text.splitlines()[0][:80]
        return Verdict(False, f"the first line is not a CSV header of {contract.name} (got {first_line!r})")
    if missing:
        return Verdict(False, f"the header lacks the contract's columns {missing} (contract {contract.name})")
    return Verdict(True, unknown_columns=unknown)
