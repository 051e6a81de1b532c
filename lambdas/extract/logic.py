"""What the extractor decides, apart from its I/O: where a page goes in raw and what the raw object and the
ledger say of it, and when a run must stop to finish inside Lambda's limit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pipeline.layout import landing_metadata, raw_object_for_landing
from pipeline.ledger import Entry, Step

SOURCE_ENV = "SOURCE_FILE"
"""The source file (sources/<dataset>/<table>.yaml) as JSON: the Lambda runtime has no YAML."""
TABLE_ENV = "SOURCE_TABLE"
"""`<dataset>/<table>`: the contract the rows are written for."""
SECRET_ENV = "SOURCE_SECRET_ARN"  # noqa: S105 (the name of a variable holding an ARN)
RAW_BUCKET_ENV = "RAW_BUCKET"
EXTRACTED_FROM_METADATA = "extracted-from"
"""The raw object's user metadata naming where its rows came from (`database:<dataset>/<table>`)."""
STOP_MARGIN_MS = 60_000
"""A run reads no new page with less than this left: a page (50,000 rows: ~1 s locally) and its write fit in
it many times over, so Lambda never ends a run between writing a file and committing its position."""


@dataclass(frozen=True)
class Placed:
    """A page's place in raw and what goes with it."""

    key: str
    metadata: dict[str, str]
    entry: Entry


def place(table: str, name: str, started: datetime, data: bytes) -> Placed:
    """A page `name` of a run started at `started`: in raw where a file landed for `table` at that time would be
    (pipeline/layout.py), so that validation, the gate, quarantine and promotion take it as they take any file.
    Its metadata and ledger entry say which table of which database it came from; `landing-key` names the
    file as if landed (dataset/table/name), which validate and quarantine report."""
    landing_key = f"{table}/{name}"
    raw = raw_object_for_landing(landing_key, started)
    origin = f"database:{table}"
    metadata = landing_metadata(landing_key) | {EXTRACTED_FROM_METADATA: origin}
    entry = Entry(raw.key, Step.INGESTED, {"landing_key": landing_key, "size": len(data), "source": origin})
    return Placed(raw.key, metadata, entry)


def time_left(remaining_ms: Callable[[], int], margin_ms: int = STOP_MARGIN_MS) -> Callable[[], bool]:
    """Whether another page may start (pipeline.extract.extract's `time_left`): more than the margin left."""
    return lambda: remaining_ms() > margin_ms
