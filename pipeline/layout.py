"""Where objects live: one place for every key the pipeline writes or parses.

landing     <dataset>/<table>/<file>                       uploads, moved away by ingest
raw         <dataset>/<table>/created_at=<ts>/<file>         write-once
quarantine  files/<raw key> + files/<raw key>.reason.json    whole files that cannot be read
            rows/<batch>/                                    rejected rows, each with its reason
staging     <batch>/                                         Parquet of one raw file's accepted rows
            _runs/<batch>/profile.json, _GATE_PASSED.json / _GATE_FAILED.json
(<batch> = <dataset>/<table>/created_at=<ts>/file=<file>: one raw file)
curated     <dataset>/<table>/                               the feature table training reads
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_NAME = r"[a-z][a-z0-9_]*"
_LANDING = re.compile(rf"^(?P<dataset>{_NAME})/(?P<table>{_NAME})/(?P<file>[^/]+)$")
_RAW = re.compile(rf"^(?P<dataset>{_NAME})/(?P<table>{_NAME})/"
                  r"created_at=(?P<created_at>\d{8}T\d{6}Z)/(?P<file>[^/]+)$")


class LayoutError(ValueError):
    """A key that does not follow the layout."""


@dataclass(frozen=True)
class RawObject:
    dataset: str
    table: str
    created_at: str
    file: str

    @property
    def key(self) -> str:
        return f"{self.partition}/{self.file}"

    @property
    def partition(self) -> str:
        return f"{self.dataset}/{self.table}/created_at={self.created_at}"

    @property
    def batch(self) -> str:
        """One raw file's batch: files that land in the same second share a partition, not a batch."""
        return f"{self.partition}/file={self.file}"

    @property
    def contract_name(self) -> str:
        return f"{self.dataset}/{self.table}"


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def raw_object_for_landing(landing_key: str, landed_at: datetime) -> RawObject:
    """The raw location of a landed file. The time is when it landed (not when it is moved), so that
    a retried move computes the same key and never duplicates the file."""
    match = _LANDING.match(landing_key)
    if not match:
        raise LayoutError(f"landing key {landing_key!r} is not <dataset>/<table>/<file> "
                          "(lowercase names, e.g. diabetes/patients/visits-2026-11.csv)")
    return RawObject(match["dataset"], match["table"], timestamp(landed_at), match["file"])


def parse_raw_key(key: str) -> RawObject:
    match = _RAW.match(key)
    if not match:
        raise LayoutError(f"raw key {key!r} is not <dataset>/<table>/created_at=<YYYYMMDDTHHMMSSZ>/<file>")
    return RawObject(match["dataset"], match["table"], match["created_at"], match["file"])


def quarantined_file_key(raw_key: str) -> str:
    return f"files/{raw_key}"


def quarantined_rows_prefix(raw: RawObject) -> str:
    return f"rows/{raw.batch}/"


def staging_prefix(raw: RawObject) -> str:
    return f"{raw.batch}/"


def run_prefix(raw: RawObject) -> str:
    return f"_runs/{raw.batch}/"


PROFILE_FILE = "profile.json"
GATE_PASSED = "_GATE_PASSED.json"
GATE_FAILED = "_GATE_FAILED.json"
