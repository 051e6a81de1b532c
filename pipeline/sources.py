"""A table whose data comes from an operational database rather than from landed files: its source file.

`sources/<dataset>/<table>.yaml` sits beside the table's contract (`contracts/<dataset>/<table>.yaml`, the same
dataset and table) and says where the rows are and how to tell the changed ones:

    engine: postgresql            # the only engine today; the rest of the file is engine-neutral
    schema: public
    table: appointments           # or `query: SELECT ... FROM ...` (a subquery: no ORDER BY, no LIMIT)
    watermark: {column: updated_at, type: timestamp, overlap: 300}   # or type: integer (an increasing id)
    chunk_rows: 50000             # rows per extracted file: what bounds the extractor's memory

Where the database is and who may read it (host, port, database, user, password) is never in the repository:
locally a URL (`make pipeline SOURCE=postgresql://...`), in AWS a Secrets Manager secret in the shape RDS writes
(`Connection.from_secret`). The extractor (pipeline/extract.py) writes each chunk of rows as a file of the
contract's format, so that validation, the gate, quarantine and promotion apply unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pipeline.contract import Contract

ENGINES = {"postgresql": 5432}
"""Engine -> its default port. MySQL would be another entry, with its own driver and quoting (extract.py)."""
WATERMARK_TYPES = ("timestamp", "integer")
SOURCES_DIR = Path(__file__).resolve().parents[1] / "sources"
MAX_CHUNK_ROWS = 1_000_000
DEFAULT_CHUNK_ROWS = 50_000
DEFAULT_OVERLAP = 0
_KEYS = {"engine", "schema", "table", "query", "watermark", "chunk_rows"}
_WATERMARK_KEYS = {"column", "type", "overlap"}
TLS_MODES = ("verify-full", "require", "disable")
"""libpq's sslmode names for what pg8000 can do: verify the server's certificate and name (against the system's
authorities and `sources/ca-bundle.pem` where the repository holds one: RDS's are not public), encrypt without
verifying, or not encrypt (a local server)."""
DEFAULT_TLS = "require"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class SourceError(ValueError):
    """A source file or connection that cannot be used: names the file or the setting, and the fix."""


@dataclass(frozen=True)
class Watermark:
    """How a changed row is told: `column` only grows when a row is written (an update timestamp, or an id a
    new row takes); `overlap` (seconds of a timestamp, or ids) is read again on each run, for rows committed
    late with a watermark below one already read."""

    column: str
    type: str
    overlap: int = 0


@dataclass(frozen=True)
class Source:
    dataset: str
    table: str
    engine: str
    watermark: Watermark
    schema: str = "public"
    relation: str | None = None
    """The source table's name (or None where `query` says what to read)."""
    query: str | None = None
    chunk_rows: int = 50_000

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.table}"


def _problems(data: Mapping[str, Any]) -> list[str]:
    problems = [f"unknown key {k!r} (known: {sorted(_KEYS)})" for k in data if k not in _KEYS]
    if data.get("engine") not in ENGINES:
        problems.append(f"engine {data.get('engine')!r} is not one of {sorted(ENGINES)}")
    if ("table" in data) == ("query" in data):
        problems.append("name the rows with exactly one of `table` and `query`")
    watermark = data.get("watermark")
    if not isinstance(watermark, Mapping):
        problems.append("watermark: a mapping {column, type, overlap} is required")
    else:
        problems += [f"watermark: unknown key {k!r}" for k in watermark if k not in _WATERMARK_KEYS]
        if not isinstance(watermark.get("column"), str) or not watermark.get("column"):
            problems.append("watermark.column: the column whose value grows with each write is required")
        if watermark.get("type") not in WATERMARK_TYPES:
            problems.append(f"watermark.type {watermark.get('type')!r} is not one of {list(WATERMARK_TYPES)}")
        overlap = watermark.get("overlap", DEFAULT_OVERLAP)
        if not isinstance(overlap, int) or isinstance(overlap, bool) or overlap < 0:
            problems.append(f"watermark.overlap {overlap!r} must be a whole number, 0 or more")
    chunk = data.get("chunk_rows", DEFAULT_CHUNK_ROWS)
    if not isinstance(chunk, int) or isinstance(chunk, bool) or not 1 <= chunk <= MAX_CHUNK_ROWS:
        problems.append(f"chunk_rows {chunk!r} must be a whole number from 1 to {MAX_CHUNK_ROWS:,}")
    return problems


def parse_source(data: Mapping[str, Any], contract: Contract, where: str = "<source>") -> Source:
    """A source from its parsed file, for `contract`'s table. Raises SourceError naming `where` and every
    problem: an unknown key (a misspelling), a missing or mistyped field, an engine there is no driver for."""
    problems = _problems(data)
    if problems:
        raise SourceError(f"{where}: " + "; ".join(problems))
    watermark = data["watermark"]
    return Source(
        dataset=contract.dataset,
        table=contract.table,
        engine=data["engine"],
        schema=str(data.get("schema", "public")),
        relation=data.get("table"),
        query=data.get("query"),
        watermark=Watermark(watermark["column"], watermark["type"], watermark.get("overlap", DEFAULT_OVERLAP)),
        chunk_rows=data.get("chunk_rows", DEFAULT_CHUNK_ROWS),
    )


def load_sources(contracts: Mapping[str, Contract], directory: Path = SOURCES_DIR) -> dict[str, Source]:
    """Every source file under `directory` (`<dataset>/<table>.yaml`), by "dataset/table". A source whose
    table has no contract is refused: its rows would have nothing to be checked against."""
    return {
        name: parse_source(data, contracts[name], where)
        for name, (data, where) in source_files(contracts, directory).items()
    }


def source_files(contracts: Mapping[str, Contract], directory: Path = SOURCES_DIR) -> dict[str, tuple[Any, str]]:
    """Each source file's parsed YAML and its path, by "dataset/table" (the stack passes it to the extractor as
    JSON: the Lambda runtime has no YAML)."""
    import yaml  # here, not at the top: the extractor's Lambda imports this module and has no YAML

    sources: dict[str, tuple[Any, str]] = {}
    for path in sorted(directory.glob("*/*.y*ml")):  # none where the folder is absent
        name = path.relative_to(directory).with_suffix("").as_posix()
        if name not in contracts:
            raise SourceError(f"{path}: no contract for {name}: add contracts/{name}.yaml, or move the source")
        sources[name] = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}, str(path))
    return sources


@dataclass(frozen=True)
class Connection:
    """Where the database is and who reads it. Its `repr` leaves the password out (it reaches logs)."""

    engine: str
    host: str
    port: int
    database: str
    user: str
    password: str
    tls: str = DEFAULT_TLS
    """One of TLS_MODES."""

    def __repr__(self) -> str:
        return f"Connection({self.engine}://{self.user}@{self.host}:{self.port}/{self.database})"

    @classmethod
    def from_url(cls, url: str) -> Connection:
        """`postgresql://user:password@host[:port]/database[?sslmode=...]` (user and password URL-encoded);
        sslmode (TLS_MODES) is `disable` for a server on this machine, `require` elsewhere, unless given."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise SourceError(
                "source URL: the port must be a number, as in postgresql://user:pw@host:5432/db"
            ) from None
        if parts.scheme not in ENGINES:
            raise SourceError(
                f"source URL: the scheme must be one of {sorted(ENGINES)}, as in postgresql://user:pw@host/db"
            )
        database = parts.path.lstrip("/")
        if not (parts.hostname and parts.username and database):
            raise SourceError("source URL: name the user, the host and the database: postgresql://user:pw@host:5432/db")
        here = "disable" if parts.hostname in LOOPBACK_HOSTS else DEFAULT_TLS
        tls = parse_qs(parts.query).get("sslmode", [here])[-1]
        return cls(
            engine=parts.scheme,
            host=parts.hostname,
            port=port or ENGINES[parts.scheme],
            database=unquote(database),
            user=unquote(parts.username),
            password=unquote(parts.password or ""),
            tls=_tls_mode(tls, "source URL: sslmode"),
        )

    @classmethod
    def from_secret(cls, text: str, name: str = "<secret>") -> Connection:
        """A Secrets Manager secret as RDS writes one: {"engine", "host", "port", "dbname", "username",
        "password"} (a rotation keeps the shape), and optionally "sslmode" (TLS_MODES; `require` where absent).
        The placeholder the template creates (PLACEHOLDER_HOST) is refused with what to put there."""
        try:
            secret = json.loads(text)
        except json.JSONDecodeError as error:
            raise SourceError(f"secret {name}: not JSON ({error.msg}): store it as RDS does") from None
        if not isinstance(secret, dict):
            raise SourceError(f"secret {name}: not a JSON object: store it as RDS does")
        if secret.get("host") == PLACEHOLDER_HOST:
            raise SourceError(
                f"secret {name} still holds the template's placeholder: put the database's host, port, dbname, "
                "username and password in it (RDS's shape; README: Tables from a database)"
            )
        missing = [k for k in ("host", "dbname", "username", "password") if not secret.get(k)]
        engine = secret.get("engine", "postgresql")
        engine = "postgresql" if engine == "postgres" else engine
        if missing or engine not in ENGINES:
            raise SourceError(
                f"secret {name}: " + (f"missing {missing}" if missing else f"engine {engine!r} is not supported")
            )
        port = secret.get("port", ENGINES[engine])
        if not str(port).isdigit():
            raise SourceError(f"secret {name}: port {port!r} is not a number")
        tls = _tls_mode(secret.get("sslmode", DEFAULT_TLS), f"secret {name}: sslmode")
        return cls(engine, secret["host"], int(port), secret["dbname"], secret["username"], secret["password"], tls)


PLACEHOLDER_HOST = "replace-with-the-database-host"
"""The host of the secret the template creates where config names none: the extractor refuses it by name."""


def _tls_mode(mode: object, where: str) -> str:
    if mode not in TLS_MODES:
        raise SourceError(f"{where} {mode!r} is not one of {list(TLS_MODES)}")
    return str(mode)
