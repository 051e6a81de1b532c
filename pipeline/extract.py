"""Incremental extraction from an operational database (a `Source`, pipeline/sources.py) into files of the
table's contract format, exactly once.

A run reads the rows whose watermark is past the last committed position, in pages ordered by (watermark, key)
(keyset pagination: no OFFSET, so a page costs the same however deep it is, and with an index on the watermark
and the key a page is an index range), each page at most `chunk_rows` rows, which is what bounds memory. The
run reads up to the highest watermark the table held when it started, so it ends however busy the table is.
Each page becomes one file (`write_file`), and only once the file exists is the page's last position
committed (`PositionStore.swap`, a conditional write: of two runs at once, the second to commit stops). A run
that dies between the two writes the same rows again next time: a duplicate the curated build resolves by
the key, never a loss. The first run (nothing committed) reads the whole table: a snapshot, page by page.
`overlap` reads again the rows up to that far below the committed watermark (late commits).

The driver is any DB-API 2.0 connection with `format` parameters (pg8000's); the SQL is PostgreSQL's.
"""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipeline.contract import Contract
from pipeline.csv_format import csv_text
from pipeline.sources import Connection, Source

INTEGER_TYPES = {20: "bigint", 21: "smallint", 23: "integer"}
DOUBLE_TYPES = {700: "real", 701: "double precision", 1700: "numeric"}
TIME_TYPES = {1082: "date", 1114: "timestamp", 1184: "timestamptz"}
TEXT_TYPES = {25: "text", 1043: "varchar", 1042: "bpchar", 2950: "uuid", 16: "boolean"}
TYPE_NAMES = INTEGER_TYPES | DOUBLE_TYPES | TIME_TYPES | TEXT_TYPES
"""PostgreSQL's type OIDs the extractor reads (a cursor's description names a column's type by its OID)."""
READABLE = {
    "integer": INTEGER_TYPES,
    "double": INTEGER_TYPES | DOUBLE_TYPES,
    "string": TYPE_NAMES,
}
"""Contract type -> the source types whose values it holds exactly (a string holds a date or a time as
ISO-8601 text)."""
WATERMARKS = {"timestamp": TIME_TYPES, "integer": INTEGER_TYPES}
WATERMARK_ALIAS = "__watermark"


class ExtractError(RuntimeError):
    """The source cannot be read as its file and the contract say: names the source, what is wrong and the fix."""


class PositionMoved(ExtractError):
    """Another run committed the source's position since this one read it: this run stops, and nothing is
    wrong (its files are duplicates of the other's, resolved by the key downstream)."""


@dataclass(frozen=True)
class Position:
    """The last row a committed page held: its watermark (an integer, or a timestamp as ISO-8601 text) and its
    key's (and version's) values, and the columns they are of (the watermark's first): the next page starts
    after it, in that order, and a position of other columns is refused rather than compared wrongly."""

    watermark: int | str
    key: tuple[Any, ...]
    columns: tuple[str, ...] = ()

    def text(self) -> str:
        data = {"watermark": self.watermark, "key": list(self.key), "columns": list(self.columns)}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def parse(cls, text: str) -> Position:
        data = json.loads(text)
        return cls(data["watermark"], tuple(data["key"]), tuple(data["columns"]))


@dataclass(frozen=True)
class PositionStore:
    """Where a source's committed position lives (`key`): read, then switched only if unchanged since
    (`swap(key, text, expected)` raises where another run moved it): S3's conditional PUT in AWS
    (pipeline/s3_objects.py: ConditionalTexts), a folder locally."""

    key: str
    read_text: Callable[[str], str | None]
    swap: Callable[[str, str, str | None], None]


def memory_store(key: str, texts: dict[str, str]) -> PositionStore:
    """A position store in `texts` (key -> text), for a run on this machine: the local pipeline's, the
    benchmark's. Its swap refuses as S3's conditional PUT does."""

    def swap(name: str, text: str, expected: str | None) -> None:
        if texts.get(name) != expected:
            raise PositionMoved(f"{name} moved while this run read it: another run extracts the same source")
        texts[name] = text

    return PositionStore(key, texts.get, swap)


@dataclass(frozen=True)
class ExtractReport:
    files: list[str] = field(default_factory=list)
    rows: int = 0
    snapshot: bool = False
    """No position was committed before: the run read the whole table."""
    position: Position | None = None
    complete: bool = True
    """False: the run stopped between pages for want of time (`extract`'s `time_left`); the next run goes on
    from its position."""


def quoted(identifier: str) -> str:
    """A PostgreSQL identifier, quoted whatever it holds."""
    return '"' + identifier.replace('"', '""') + '"'


def relation(source: Source) -> str:
    """What the run selects from: the table, or the query as a subquery."""
    if source.relation is None:  # every query runs with parameters: a literal % is written %%
        return f"({str(source.query).replace('%', '%%')}) AS source"
    return f"{quoted(source.schema)}.{quoted(source.relation)} AS source"


def text_of(value: Any) -> str:
    """A value as the contract's file holds it ("" for NULL: the format's null spelling)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def column_problems(types: dict[str, int], source: Source, contract: Contract) -> list[str]:
    """What keeps the source's columns (name -> type OID) from filling the contract's, and the watermark."""
    problems = []
    for column in contract.columns:
        if column.name not in types:
            problems.append(f"contract column {column.name!r} is not a column of the source")
        elif types[column.name] not in READABLE[column.type]:
            found = TYPE_NAMES.get(types[column.name], f"type oid {types[column.name]}")
            problems.append(
                f"source column {column.name!r} is {found}, which contract column {column.name!r} ({column.type}) "
                f"cannot hold: cast it in the source's query, or change the contract"
            )
    wanted = WATERMARKS[source.watermark.type]
    if source.watermark.column not in types:
        problems.append(f"the watermark column {source.watermark.column!r} is not a column of the source")
    elif types[source.watermark.column] not in wanted:
        found = TYPE_NAMES.get(types[source.watermark.column], f"type oid {types[source.watermark.column]}")
        problems.append(
            f"the watermark column {source.watermark.column!r} is {found}, not one of {sorted(wanted.values())} "
            f"(watermark.type: {source.watermark.type})"
        )
    return problems


def order_columns(contract: Contract, watermark: str) -> list[str]:
    """What orders the rows after the `watermark` column, and tells two of them apart: the key, then the
    version where the contract has one (a history of a key's versions written at once), each once."""
    version = [contract.version] if contract.version else []
    return [c for c in dict.fromkeys([*contract.key, *version]) if c != watermark]


def _rank(position: Position) -> tuple[Any, ...]:
    """A position's place in the pages' order (ISO-8601 texts of one column sort as their times do)."""
    return (position.watermark, *position.key)


def _cast(value: Any, oid: int) -> tuple[str, Any]:
    """A placeholder cast to the column's own type, and its parameter (text of a time, else as stored)."""
    return f"CAST(%s AS {TYPE_NAMES[oid]})", value


def lowered(position: Position, source: Source) -> int | str:
    """The watermark `overlap` below the position's: where a run's first page starts again."""
    overlap = source.watermark.overlap
    if isinstance(position.watermark, int):
        return position.watermark - overlap
    return (datetime.fromisoformat(position.watermark) - timedelta(seconds=overlap)).isoformat()


def page_query(
    source: Source,
    contract: Contract,
    types: dict[str, int],
    *,
    after: Position | None,
    from_watermark: int | str | None,
    until: int | str,
) -> tuple[str, list[Any]]:
    """One page's SQL and parameters: rows up to `until`, past `after` (the last row read) or, on a run's first
    page with an overlap, from `from_watermark` on; ordered by watermark then key, at most `chunk_rows`."""
    mark = quoted(source.watermark.column)
    after_mark = order_columns(contract, source.watermark.column)
    order = [mark, *(quoted(k) for k in after_mark)]
    selected = [*(quoted(c) for c in contract.column_names), f"{mark} AS {WATERMARK_ALIAS}"]
    mark_oid = types[source.watermark.column]
    bound, until_value = _cast(until, mark_oid)
    where, parameters = [f"{mark} <= {bound}"], [until_value]
    if from_watermark is not None:
        lower, value = _cast(from_watermark, mark_oid)
        where.append(f"{mark} >= {lower}")
        parameters.append(value)
    elif after is not None:
        casts = [_cast(after.watermark, mark_oid)]
        casts += [_cast(after.key[i], types[k]) for i, k in enumerate(after_mark)]
        where.append(f"({', '.join(order)}) > ({', '.join(c for c, _ in casts)})")
        parameters += [v for _, v in casts]
    # identifiers quoted, values as parameters; the query is the source file's own
    select = f"SELECT {', '.join(selected)} FROM {relation(source)}"  # noqa: S608 (quoted names, the file's query)
    # one row past the page: whether the next page would start inside a tie (`extract`)
    sql = f"{select} WHERE {' AND '.join(where)} ORDER BY {', '.join(order)} LIMIT {int(source.chunk_rows) + 1}"
    return sql, parameters


def _jsonable(value: Any) -> int | str:
    if isinstance(value, int):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return text_of(value)


def file_name(started: datetime, run: str, page: int) -> str:
    """`extract-<run start, UTC>-<run>-<page>.csv`: runs sort in their order and a run's pages in theirs; `run`
    (random) keeps two runs started in the same second from writing the same name."""
    return f"extract-{started.strftime('%Y%m%dT%H%M%SZ')}-{run}-{page:05d}.csv"


def source_types(cursor: Any, source: Source) -> dict[str, int]:
    """The source's columns and their type OIDs (a query with no rows: nothing is read)."""
    cursor.execute(f"SELECT * FROM {relation(source)} LIMIT %s", [0])  # noqa: S608 (quoted names, the file's query)
    return {column[0]: column[1] for column in cursor.description}


FUTURE = "1 hour"
"""How far past the database's clock the highest watermark may be: beyond, a row's clock is wrong (a year 2099,
`infinity`) and no later change would be read past it."""


def _bounds(cursor: Any, source: Source, contract: Contract) -> Any:
    """The highest watermark now (the run reads up to it), after checking that every row can be read: none
    without a watermark or a key value (NULL), no watermark in the future."""
    mark, rel = quoted(source.watermark.column), relation(source)
    nulls = " OR ".join(f"{quoted(c)} IS NULL" for c in [source.watermark.column, *contract.key])
    timed = source.watermark.type == "timestamp"
    ahead = f"max({mark}) > now() + CAST(%s AS interval)" if timed else "CAST(%s AS text) IS NULL"
    # names quoted, the query the source file's own
    sql = f"SELECT max({mark}), EXISTS (SELECT 1 FROM {rel} WHERE {nulls}), {ahead} FROM {rel}"  # noqa: S608 (above)
    cursor.execute(sql, [FUTURE])
    ((until, unreadable, future),) = cursor.fetchall()
    if unreadable:
        raise ExtractError(
            f"source {source.name}: some rows have no {source.watermark.column} or no key {list(contract.key)} "
            "(NULL): they would never be extracted; fill the columns and make them NOT NULL"
        )
    if future:
        raise ExtractError(
            f"source {source.name}: the highest {source.watermark.column}, {until}, is more than {FUTURE} ahead of "
            "the database's clock: no row changed later would be read until then; correct that row"
        )
    return until


def extract(
    connection: Any,
    source: Source,
    contract: Contract,
    *,
    store: PositionStore,
    write_file: Callable[[str, bytes], None],
    started: datetime,
    run: str | None = None,
    time_left: Callable[[], bool] = lambda: True,
) -> ExtractReport:
    """Every row changed since the committed position, as files of `contract`'s format (`write_file(name,
    data)`), each page's position committed once its file is written (never moved back: a page inside the
    overlap commits nothing). Raises ExtractError where the source does not fit its contract, where rows could
    never be read (`_bounds`), where (watermark, key) does not tell two rows apart, or where a value cannot be
    written in the contract's encoding. `time_left()` is asked before every page after the first: False stops
    the run there, each page read so far committed (a Lambda near its limit), and the report says so."""
    run = run or uuid.uuid4().hex[:8]
    committed = store.read_text(store.key)
    after = Position.parse(committed) if committed else None
    snapshot = after is None
    columns = (source.watermark.column, *order_columns(contract, source.watermark.column))
    if after is not None and after.columns != columns:
        raise ExtractError(
            f"source {source.name}: the committed position is of {list(after.columns)}, the source file and the "
            f"contract now order the rows by {list(columns)}: delete {store.key} to read the table whole again"
        )
    cursor = connection.cursor()
    types = source_types(cursor, source)
    problems = column_problems(types, source, contract)
    if problems:
        raise ExtractError(f"source {source.name}: " + "; ".join(problems))
    until = _bounds(cursor, source, contract)
    if until is None:
        return ExtractReport(snapshot=snapshot, position=after)
    from_watermark = lowered(after, source) if after is not None and source.watermark.overlap else None
    ordered = [contract.column_names.index(c) for c in columns[1:]]

    def position_of(row: Sequence[Any]) -> Position:  # a row: the contract's columns, then the watermark
        return Position(_jsonable(row[-1]), tuple(_jsonable(row[i]) for i in ordered), columns)

    files: list[str] = []
    rows, page, highest = 0, 0, after
    while True:
        if page and not time_left():
            return ExtractReport(files, rows, snapshot, highest, complete=False)
        sql, parameters = page_query(
            source, contract, types, after=after, from_watermark=from_watermark, until=_jsonable(until)
        )
        cursor.execute(sql, parameters)
        fetched: Sequence[Sequence[Any]] = cursor.fetchall()
        batch = fetched[: source.chunk_rows]
        if not batch:
            break
        position = position_of(batch[-1])
        if len(fetched) > len(batch) and position_of(fetched[-1]) == position:
            raise ExtractError(
                f"source {source.name}: rows share {source.watermark.column} and "
                f"{list(columns[1:])} ({position.text()}): a page could end between them; the source "
                "must hold one row per key (and version) and watermark"
            )
        texts = [{c: text_of(row[i]) for i, c in enumerate(contract.column_names)} for row in batch]
        name = file_name(started, run, page)
        try:
            data = csv_text(contract.format, contract.column_names, texts).encode(contract.format.encoding)
        except UnicodeEncodeError as error:
            raise ExtractError(
                f"source {source.name}: {error.object[error.start : error.end]!r} cannot be written in "
                f"{contract.format.encoding} (the contract's format.encoding): change the encoding, or the value"
            ) from None
        write_file(name, data)
        if highest is None or _rank(position) > _rank(highest):
            store.swap(store.key, position.text(), committed)
            committed, highest = position.text(), position
        after, from_watermark = position, None
        files.append(name)
        rows += len(batch)
        page += 1
        if len(fetched) <= source.chunk_rows:
            break
    return ExtractReport(files, rows, snapshot, highest)


CA_BUNDLE = Path(__file__).resolve().parents[1] / "sources" / "ca-bundle.pem"
"""Authorities trusted beside the system's for sslmode verify-full: where a team puts RDS's global bundle
(https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem); the extractor's asset ships `sources/`."""


def tls_context(mode: str, ca_bundle: Path = CA_BUNDLE) -> ssl.SSLContext | bool:
    """pg8000's ssl_context for a TLS mode (pipeline/sources.py: TLS_MODES): False sends no TLS request (pg8000's
    None would try TLS and go on without it where refused: no mode of ours)."""
    if mode == "disable":
        return False
    context = ssl.create_default_context()
    if mode == "require":  # encrypted, the server not verified (libpq's require)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_bundle.exists():
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the database to answer (a host that takes the connection and says nothing)."""


def refusal(target: Connection, error: Exception) -> ExtractError:
    """What a database's refusal (pg8000's error: its fields `C`, the SQLSTATE, and `M`, the message) tells
    whoever runs the extractor: the user and the secret where the password or the user is refused, the name
    where the database does not exist, else the server's own message."""
    detail = next((a for a in error.args if isinstance(a, dict)), {})
    code, message = detail.get("C"), detail.get("M") or str(error)
    where = f"{target.host}:{target.port}"
    if code == "28P01":
        return ExtractError(
            f"{where} refused user {target.user!r} ({message}): check the user and password in the source's secret"
        )
    if code == "28000":
        return ExtractError(
            f"{where} refused user {target.user!r} ({message}): check the user, and that the server accepts this "
            "client (pg_hba.conf, SSL)"
        )
    if code == "3D000":
        return ExtractError(f"{where} has no database {target.database!r} ({message})")
    return ExtractError(f"{target!r}: {message}")


def connect(target: Connection, timeout: float = CONNECT_TIMEOUT, ca_bundle: Path = CA_BUNDLE) -> Any:
    """A DB-API connection to `target` (PostgreSQL: pg8000), or ExtractError saying what refused and what to
    check: the host, port and network where nothing answers in `timeout` seconds; a certificate not trusted
    (verify-full: the system's authorities and `ca_bundle`'s); else `refusal`'s."""
    import pg8000.dbapi
    import pg8000.exceptions

    try:
        connection = pg8000.dbapi.connect(
            host=target.host,
            port=target.port,
            database=target.database,
            user=target.user,
            password=target.password,
            timeout=timeout,
            ssl_context=tls_context(target.tls, ca_bundle),
        )
    except ssl.SSLCertVerificationError as error:
        raise ExtractError(
            f"{target!r}, sslmode {target.tls}: the server's certificate is not trusted ({error.verify_message}): "
            "put its authority's certificate in sources/ca-bundle.pem (RDS: its global bundle), or set sslmode "
            "require in the secret to encrypt without verifying"
        ) from None
    except (pg8000.exceptions.InterfaceError, OSError) as error:  # OSError: a read that timed out
        if "SSL" in str(error):  # pg8000's "Server refuses SSL"
            raise ExtractError(
                f"{target!r}, sslmode {target.tls}: {error}: enable TLS on the server, or set sslmode disable "
                "(a server on this machine)"
            ) from None
        raise ExtractError(
            f"cannot reach {target.engine} at {target.host}:{target.port} ({error}): check the host, the port and "
            "the network path (the extractor's subnets and security group)"
        ) from None
    except pg8000.exceptions.DatabaseError as error:
        raise refusal(target, error) from None
    # pg8000 keeps the connect timeout on the socket for every later read: a page that takes longer is no
    # unreachable host. Each statement commits on its own (no transaction left open between pages).
    connection._usock.settimeout(None)
    connection.autocommit = True
    return connection
