"""The database extractor (pipeline/extract.py) against a real PostgreSQL: a first run reads the whole table in
pages, each later run exactly the rows changed since (or, with an overlap, those and the overlap), a run that
dies between writing a file and committing its position loses nothing and repeats only that page, and a source
that does not fit its contract, or cannot be reached, says what and how to fix it."""

from __future__ import annotations

import csv
import io
import re
import socket
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.contract import Contract
from pipeline.extract import ExtractError, ExtractReport, Position, PositionStore, connect, extract, file_name
from pipeline.sample_data import prices_contract
from pipeline.sources import Connection, SourceError, parse_source

CONTRACT = prices_contract()  # shop/prices: sku (key), seq, price, op ('D' deletes the key)
T0 = datetime(2026, 12, 1, tzinfo=UTC)
STARTED = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


class Conflict(RuntimeError):
    pass


class MemoryStore:
    """The committed position, swapped only from what was read (as S3's conditional PUT does)."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def read(self, key: str) -> str | None:
        return self.texts.get(key)

    def swap(self, key: str, text: str, expected: str | None) -> None:
        if self.texts.get(key) != expected:
            raise Conflict(key)
        self.texts[key] = text

    def store(self) -> PositionStore:
        return PositionStore("sources/shop/prices.json", self.read, self.swap)


class Files:
    def __init__(self) -> None:
        self.written: dict[str, bytes] = {}

    def write(self, name: str, data: bytes) -> None:
        assert name not in self.written, "a run never writes a name twice"
        self.written[name] = data

    def rows(self, names: list[str] | None = None) -> list[dict[str, str]]:
        rows = []
        for name in names if names is not None else list(self.written):
            rows += list(csv.DictReader(io.StringIO(self.written[name].decode("utf-8"), newline="")))
        return rows


@pytest.fixture
def database(postgres) -> Any:
    """A fresh shop_prices table (and connection) per test."""
    connection = connect(postgres.target())
    cursor = connection.cursor()
    cursor.execute("DROP TABLE IF EXISTS shop_prices")
    cursor.execute(
        "CREATE TABLE shop_prices (sku text PRIMARY KEY, seq bigint NOT NULL, price double precision NOT NULL, "
        "op text, updated_at timestamptz NOT NULL, notes jsonb)"
    )
    cursor.execute("CREATE INDEX ON shop_prices (updated_at, sku)")
    yield connection
    connection.close()


def insert(connection: Any, rows: list[tuple[str, int, float, str | None, datetime]]) -> None:
    connection.cursor().executemany(
        "INSERT INTO shop_prices (sku, seq, price, op, updated_at) VALUES (%s, %s, %s, %s, %s)", rows
    )


def source(contract: Contract = CONTRACT, **changes: Any):
    described = {
        "engine": "postgresql",
        "table": "shop_prices",
        "watermark": {"column": "updated_at", "type": "timestamp"},
        "chunk_rows": 1000,
    } | changes
    present = {k: v for k, v in described.items() if v is not None}  # table=None: a query source
    return parse_source(present, contract, "sources/shop/prices.yaml")


def run(connection: Any, store: MemoryStore, files: Files, **changes: Any) -> ExtractReport:
    return extract(
        connection, source(**changes), CONTRACT, store=store.store(), write_file=files.write, started=STARTED, run="r1"
    )


def test_the_first_run_reads_the_whole_table_in_pages_of_chunk_rows(database) -> None:
    insert(database, [(f"s{i:05d}", 1, i / 10, None, T0 + timedelta(seconds=i)) for i in range(2500)])
    store, files = MemoryStore(), Files()
    report = run(database, store, files)
    assert report.snapshot and report.rows == 2500
    assert report.files == [file_name(STARTED, "r1", page) for page in range(3)] == list(files.written)
    assert [len(files.rows([name])) for name in report.files] == [1000, 1000, 500]
    rows = files.rows()
    assert [r["sku"] for r in rows] == [f"s{i:05d}" for i in range(2500)], "each row once, in watermark order"
    assert rows[7] == {"sku": "s00007", "seq": "1", "price": "0.7", "op": ""}
    last = (T0 + timedelta(seconds=2499)).isoformat()
    assert report.position == Position(last, ("s02499", 1), ("updated_at", "sku", "seq"))
    assert Position.parse(store.texts["sources/shop/prices.json"]) == report.position


def test_a_later_run_reads_exactly_the_rows_changed_since(database) -> None:
    insert(database, [(f"s{i:03d}", 1, 1.0, None, T0 + timedelta(seconds=i)) for i in range(300)])
    store, files = MemoryStore(), Files()
    run(database, store, files)
    later = T0 + timedelta(hours=1)
    cursor = database.cursor()
    cursor.execute("UPDATE shop_prices SET seq = 2, price = 9.5, updated_at = %s WHERE sku < 's010'", [later])
    cursor.execute("UPDATE shop_prices SET op = 'D', seq = 3, updated_at = %s WHERE sku IN ('s100', 's200')", [later])
    insert(database, [(f"n{i}", 1, 2.0, None, later + timedelta(seconds=i)) for i in range(5)])
    second, changed = Files(), MemoryStore()
    changed.texts = dict(store.texts)
    report = extract(
        database, source(), CONTRACT, store=changed.store(), write_file=second.write, started=STARTED + timedelta(1)
    )
    got = {r["sku"]: r for r in second.rows()}
    assert sorted(got) == sorted([f"s{i:03d}" for i in range(10)] + ["s100", "s200"] + [f"n{i}" for i in range(5)])
    assert got["s003"] == {"sku": "s003", "seq": "2", "price": "9.5", "op": ""}
    assert got["s200"]["op"] == "D", "a soft delete travels as the contract's delete_when row"
    assert not report.snapshot and report.rows == 17
    third = Files()
    assert extract(
        database, source(), CONTRACT, store=changed.store(), write_file=third.write, started=STARTED + timedelta(2)
    ) == ExtractReport([], 0, False, report.position), "nothing changed: no file"


def test_rows_sharing_a_watermark_are_paged_by_their_key_none_lost_none_twice(database) -> None:
    insert(database, [(f"s{i:04d}", 1, 1.0, None, T0) for i in range(2500)])
    files = Files()
    run(database, MemoryStore(), files, chunk_rows=700)
    assert Counter(r["sku"] for r in files.rows()) == Counter(f"s{i:04d}" for i in range(2500))


def test_an_overlap_reads_again_the_rows_just_below_the_committed_watermark(database) -> None:
    insert(database, [(f"s{i:03d}", 1, 1.0, None, T0 + timedelta(seconds=i)) for i in range(100)])
    store = MemoryStore()
    run(database, store, Files(), watermark={"column": "updated_at", "type": "timestamp", "overlap": 10})
    again = Files()
    run(database, store, again, watermark={"column": "updated_at", "type": "timestamp", "overlap": 10})
    assert [r["sku"] for r in again.rows()] == [f"s{i:03d}" for i in range(89, 100)], "the last 10 s, bounds included"


class DiesAfterWriting(MemoryStore):
    """Commits the first page, then dies between writing the second page's file and committing it."""

    def __init__(self) -> None:
        super().__init__()
        self.commits = 0

    def swap(self, key: str, text: str, expected: str | None) -> None:
        self.commits += 1
        if self.commits == 2:
            raise ConnectionError("the run died")
        super().swap(key, text, expected)


def test_a_run_that_dies_between_a_file_and_its_commit_repeats_that_page_and_loses_nothing(database) -> None:
    insert(database, [(f"s{i:04d}", 1, 1.0, None, T0 + timedelta(seconds=i)) for i in range(2500)])
    store, files = DiesAfterWriting(), Files()
    with pytest.raises(ConnectionError):
        run(database, store, files)
    assert len(files.written) == 2, "the second page's file was written, its position not committed"
    retry = Files()
    report = extract(
        database, source(), CONTRACT, store=store.store(), write_file=retry.write, started=STARTED + timedelta(1)
    )
    seen = Counter(r["sku"] for r in files.rows() + retry.rows())
    assert set(seen) == {f"s{i:04d}" for i in range(2500)}, "nothing lost"
    assert {sku for sku, n in seen.items() if n > 1} == {f"s{i:04d}" for i in range(1000, 2000)}, "the page again"
    assert report.rows == 1500


def test_an_integer_watermark_of_a_query_source(database) -> None:
    cursor = database.cursor()
    cursor.execute("DROP TABLE IF EXISTS events")
    cursor.execute("CREATE TABLE events (id bigserial PRIMARY KEY, code text NOT NULL, amount numeric(10, 2))")
    cursor.executemany("INSERT INTO events (code, amount) VALUES (%s, %s)", [(f"c{i}", i * 1.25) for i in range(50)])
    contract = prices_contract(
        columns=[
            {"name": "sku", "type": "string", "nullable": False},
            {"name": "seq", "type": "integer", "nullable": False},
            {"name": "price", "type": "double", "nullable": False},
        ],
        deletes=False,
    )
    query = "SELECT code AS sku, id AS seq, amount AS price, id FROM events"
    store, files = MemoryStore(), Files()
    described = source(contract, table=None, query=query, watermark={"column": "id", "type": "integer"}, chunk_rows=20)
    extract(database, described, contract, store=store.store(), write_file=files.write, started=STARTED)
    rows = files.rows()
    assert len(files.written) == 3 and len(rows) == 50
    assert rows[3] == {"sku": "c3", "seq": "4", "price": "3.75"}, "numeric as written, not a binary float"
    cursor.executemany("INSERT INTO events (code, amount) VALUES (%s, %s)", [("late", 1), ("later", 2)])
    more = Files()
    extract(database, described, contract, store=store.store(), write_file=more.write, started=STARTED)
    assert [r["sku"] for r in more.rows()] == ["late", "later"]


def test_a_source_that_does_not_fit_its_contract_names_every_problem(database) -> None:
    contract = prices_contract(
        columns=[
            {"name": "sku", "type": "string", "nullable": False},
            {"name": "seq", "type": "integer", "nullable": False},
            {"name": "price", "type": "integer", "nullable": False},
            {"name": "notes", "type": "string", "nullable": True},
            {"name": "colour", "type": "string", "nullable": True},
        ],
        deletes=False,
    )
    wrong = source(contract, watermark={"column": "changed_at", "type": "timestamp"})
    with pytest.raises(ExtractError) as refused:
        extract(database, wrong, contract, store=MemoryStore().store(), write_file=Files().write, started=STARTED)
    assert str(refused.value) == (
        "source shop/prices: source column 'price' is double precision, which contract column 'price' (integer) "
        "cannot hold: cast it in the source's query, or change the contract; source column 'notes' is type oid "
        "3802, which contract column 'notes' (string) cannot hold: cast it in the source's query, or change the "
        "contract; contract column 'colour' is not a column of the source; the watermark column 'changed_at' is "
        "not a column of the source"
    )
    with pytest.raises(ExtractError, match="the watermark column 'sku' is text, not one of"):
        run(database, MemoryStore(), Files(), watermark={"column": "sku", "type": "timestamp"})


def test_rows_without_a_watermark_fail_the_run_rather_than_never_being_read(database) -> None:
    cursor = database.cursor()
    cursor.execute("ALTER TABLE shop_prices ALTER COLUMN updated_at DROP NOT NULL")
    insert(database, [("a", 1, 1.0, None, T0), ("b", 1, 1.0, None, None)])  # type: ignore[list-item]
    files = Files()
    with pytest.raises(ExtractError) as refused:
        run(database, MemoryStore(), files)
    assert str(refused.value) == (
        "source shop/prices: some rows have no updated_at or no key ['sku'] (NULL): they would never be extracted; "
        "fill the columns and make them NOT NULL"
    )
    assert files.written == {}


def test_an_empty_table_writes_nothing_and_commits_nothing(database) -> None:
    store, files = MemoryStore(), Files()
    assert run(database, store, files) == ExtractReport([], 0, True, None)
    assert store.texts == {} and files.written == {}


UNREACHABLE = r"\): check the host, the port and the network path \(the extractor's subnets and security group\)$"


def test_a_source_that_cannot_be_reached_or_refuses_says_what_to_check(postgres) -> None:
    connect(postgres.target()).close()
    closed = Connection("postgresql", "127.0.0.1", 1, "source", "extractor", "x")
    with pytest.raises(ExtractError, match=r"^cannot reach postgresql at 127\.0\.0\.1:1 \(.*" + UNREACHABLE):
        connect(closed, timeout=2)
    elsewhere = Connection("postgresql", "127.0.0.2", postgres.port, "source", "extractor", postgres.password)
    with pytest.raises(ExtractError, match=rf"^cannot reach postgresql at 127\.0\.0\.2:{postgres.port} "):
        connect(elsewhere, timeout=2)  # the server listens on 127.0.0.1 only: the host is the one asked for
    wrong = replace(postgres.target(), password="not-it")
    with pytest.raises(ExtractError) as refused:
        connect(wrong)
    assert str(refused.value) == (
        f"127.0.0.1:{postgres.port} refused user 'extractor' (password authentication failed for user "
        '"extractor"): check the user and password in the source\'s secret'
    )
    with pytest.raises(ExtractError, match="has no database 'nowhere'"):
        connect(replace(postgres.target(), database="nowhere"))
    assert "not-it" not in repr(wrong), "the password never reaches a log"


def test_a_host_that_takes_the_connection_and_says_nothing_is_given_up_on() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        with pytest.raises(ExtractError, match=r"^cannot reach postgresql at 127\.0\.0\.1:\d+ \(.*" + UNREACHABLE):
            connect(Connection("postgresql", "127.0.0.1", port, "d", "u", "p"), timeout=0.5)


def test_a_table_emptied_since_the_last_run_keeps_the_committed_position(database) -> None:
    insert(database, [("a", 1, 1.0, None, T0)])
    store = MemoryStore()
    first = run(database, store, Files())
    database.cursor().execute("DELETE FROM shop_prices")
    assert run(database, store, Files()) == ExtractReport([], 0, False, first.position)


def test_a_connection_comes_from_a_url_or_an_rds_shaped_secret() -> None:
    assert Connection.from_url("postgresql://etl%40x:p%2Fw@db.internal/sales") == Connection(
        "postgresql", "db.internal", 5432, "sales", "etl@x", "p/w"
    )
    secret = '{"engine": "postgres", "host": "h", "port": 6432, "dbname": "d", "username": "u", "password": "p"}'
    assert Connection.from_secret(secret) == Connection("postgresql", "h", 6432, "d", "u", "p")
    with pytest.raises(SourceError, match="secret s: missing \\['password'\\]"):
        Connection.from_secret('{"host": "h", "dbname": "d", "username": "u"}', "s")
    with pytest.raises(SourceError, match="scheme must be one of"):
        Connection.from_url("mysql://u:p@h/d")


def test_a_source_file_with_mistakes_names_each() -> None:
    with pytest.raises(SourceError) as refused:
        parse_source(
            {"engine": "oracle", "table": "t", "query": "q", "watermark": {"column": "", "type": "date"}, "chunk": 1},
            CONTRACT,
            "sources/shop/prices.yaml",
        )
    assert str(refused.value) == (
        "sources/shop/prices.yaml: unknown key 'chunk' (known: ['chunk_rows', 'engine', 'query', 'schema', "
        "'table', 'watermark']); engine 'oracle' is not one of ['postgresql']; name the rows with exactly one of "
        "`table` and `query`; watermark.column: the column whose value grows with each write is required; "
        "watermark.type 'date' is not one of ['timestamp', 'integer']"
    )


def test_an_overlap_catches_a_late_commit_that_none_misses_and_never_moves_the_position_back(database) -> None:
    insert(database, [(f"s{i:03d}", 1, 1.0, None, T0 + timedelta(seconds=i)) for i in range(100)])
    overlap = {"column": "updated_at", "type": "timestamp", "overlap": 60}
    plain, late = MemoryStore(), MemoryStore()
    run(database, plain, Files())
    run(database, late, Files(), watermark=overlap)
    committed = dict(late.texts)
    insert(database, [("late", 2, 2.0, None, T0 + timedelta(seconds=50))])  # committed after the runs, stamped before
    missed, caught = Files(), Files()
    run(database, plain, missed)
    report = run(database, late, caught, watermark=overlap)
    assert missed.rows() == []
    assert "late" in [r["sku"] for r in caught.rows()]
    assert late.texts == committed and report.position == Position.parse(committed["sources/shop/prices.json"])


def test_a_keys_versions_written_at_once_are_paged_by_version_and_a_true_tie_is_refused(database) -> None:
    cursor = database.cursor()
    cursor.execute("ALTER TABLE shop_prices DROP CONSTRAINT shop_prices_pkey")
    insert(database, [(f"s{i}", seq, float(seq), None, T0) for i in range(3) for seq in (1, 2, 3)])
    files = Files()
    run(database, MemoryStore(), files, chunk_rows=2)
    assert sorted((r["sku"], r["seq"]) for r in files.rows()) == [
        (f"s{i}", str(q)) for i in range(3) for q in (1, 2, 3)
    ]
    insert(database, [("s0", 1, 9.0, None, T0)])  # the same (updated_at, sku, seq) twice: a page could split them
    with pytest.raises(ExtractError) as refused:
        run(database, MemoryStore(), Files(), chunk_rows=1)
    assert str(refused.value) == (
        "source shop/prices: rows share updated_at and ['sku', 'seq'] "
        '({"columns": ["updated_at", "sku", "seq"], "key": ["s0", 1], "watermark": "2026-12-01T00:00:00+00:00"}): '
        "a page could end between them; the source "
        "must hold one row per key (and version) and watermark"
    )


def test_a_percent_sign_in_a_query_source_is_sql_not_a_parameter(database) -> None:
    insert(database, [(f"s{i}", i, 1.0, None, T0 + timedelta(seconds=i)) for i in range(10)])
    files = Files()
    query = "SELECT sku, seq, price, op, updated_at FROM shop_prices WHERE seq % 2 = 0"
    run(database, MemoryStore(), files, table=None, query=query, chunk_rows=2)
    assert [r["sku"] for r in files.rows()] == ["s0", "s2", "s4", "s6", "s8"]


def test_a_watermark_far_ahead_of_the_clock_fails_the_run(database) -> None:
    insert(database, [("a", 1, 1.0, None, T0), ("b", 1, 1.0, None, datetime(2099, 1, 1, tzinfo=UTC))])
    with pytest.raises(ExtractError) as refused:
        run(database, MemoryStore(), Files())
    assert str(refused.value) == (
        "source shop/prices: the highest updated_at, 2099-01-01 00:00:00+00:00, is more than 1 hour ahead of the "
        "database's clock: no row changed later would be read until then; correct that row"
    )


def test_a_value_the_contracts_encoding_cannot_hold_is_named(database) -> None:
    latin = prices_contract(format={"encoding": "latin-1"})
    insert(database, [("price in €", 1, 1.0, None, T0)])
    with pytest.raises(ExtractError, match=r"'€' cannot be written in latin-1 \(the contract's format.encoding\)"):
        extract(database, source(latin), latin, store=MemoryStore().store(), write_file=Files().write, started=STARTED)


def test_a_page_slower_than_the_connect_timeout_is_no_lost_connection(postgres) -> None:
    connection = connect(postgres.target(), timeout=1)
    cursor = connection.cursor()
    cursor.execute("SELECT pg_sleep(1.5), 1")
    assert cursor.fetchall()[0][1] == 1
    connection.close()


class Counting:
    """A connection whose cursors count the pages they are asked for."""

    def __init__(self, connection: Any) -> None:
        self.connection, self.pages = connection, 0

    def cursor(self) -> Any:
        cursor, outer = self.connection.cursor(), self

        class Counted:
            description = property(lambda _: cursor.description)

            def execute(self, sql: str, parameters: Any = ()) -> None:
                outer.pages += "ORDER BY" in sql
                cursor.execute(sql, parameters)

            def fetchall(self) -> Any:
                return cursor.fetchall()

        return Counted()


def test_a_table_of_whole_pages_takes_no_page_more_and_a_run_is_named_at_random(database) -> None:
    insert(database, [(f"s{i:04d}", 1, 1.0, None, T0 + timedelta(seconds=i)) for i in range(2000)])
    counting, files = Counting(database), Files()
    report = extract(counting, source(), CONTRACT, store=MemoryStore().store(), write_file=files.write, started=T0)
    assert counting.pages == 2 and report.rows == 2000
    names = [re.fullmatch(r"extract-20261201T000000Z-([0-9a-f]{8})-0000[01]\.csv", name) for name in report.files]
    assert all(names) and len({match.group(1) for match in names if match}) == 1, "one run, one random name"


def test_a_run_leaves_no_transaction_open_on_the_source(postgres, database) -> None:
    insert(database, [("a", 1, 1.0, None, T0)])
    connection = connect(postgres.target())
    extract(connection, source(), CONTRACT, store=MemoryStore().store(), write_file=Files().write, started=T0)
    cursor = database.cursor()
    cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%%'")
    assert cursor.fetchall()[0][0] == 0, "no snapshot held open between runs (vacuum, locks)"
    connection.close()


def test_a_position_of_other_columns_is_refused_rather_than_compared_wrongly(database) -> None:
    insert(database, [("a", 1, 1.0, None, T0)])
    store = MemoryStore()
    run(database, store, Files())
    before = dict(store.texts)
    with pytest.raises(ExtractError) as refused:
        run(database, store, Files(), watermark={"column": "seq", "type": "integer"})
    assert str(refused.value) == (
        "source shop/prices: the committed position is of ['updated_at', 'sku', 'seq'], the source file and the "
        "contract now order the rows by ['seq', 'sku']: delete sources/shop/prices.json to read the table "
        "whole again"
    )
    assert store.texts == before


def test_make_pipeline_with_a_source_nothing_answers_on_says_so_without_a_traceback(tmp_path, capsys) -> None:
    from scripts.run_pipeline_local import main

    assert main(["--source", "postgresql://u:secret@127.0.0.1:1/d", "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("cannot reach postgresql at 127.0.0.1:1 (") and "Traceback" not in error
    assert "secret" not in error, "the URL's password is not repeated"


def _ssl_of(connection: Any) -> bool:
    cursor = connection.cursor()
    cursor.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    ((encrypted,),) = cursor.fetchall()
    connection.close()
    return bool(encrypted)


def test_tls_is_as_the_connection_asks_and_an_untrusted_certificate_is_refused_with_the_fix(postgres, tmp_path) -> None:
    """The local server offers TLS with a certificate of a throwaway authority (as RDS's is of Amazon's, which no
    system trusts): require encrypts without verifying; verify-full verifies against sources/ca-bundle.pem."""
    missing = tmp_path / "none.pem"
    assert _ssl_of(connect(postgres.target("disable"), ca_bundle=missing)) is False
    assert _ssl_of(connect(postgres.target("require"), ca_bundle=missing)) is True
    assert _ssl_of(connect(postgres.target("verify-full"), ca_bundle=postgres.ca_file)) is True
    with pytest.raises(ExtractError) as untrusted:
        connect(postgres.target("verify-full"), ca_bundle=missing)
    assert str(untrusted.value) == (
        f"Connection(postgresql://extractor@127.0.0.1:{postgres.port}/source), sslmode verify-full: the server's "
        "certificate is not trusted (unable to get local issuer certificate): put its authority's certificate in "
        "sources/ca-bundle.pem (RDS: its global bundle), or set sslmode require in the secret to encrypt without "
        "verifying"
    )
    elsewhere = replace(postgres.target("verify-full"), host="localhost")  # the certificate names 127.0.0.1
    with pytest.raises(ExtractError, match="sslmode verify-full: the server's certificate is not trusted"):
        connect(elsewhere, ca_bundle=postgres.ca_file)


def test_a_server_that_refuses_tls_says_so_and_what_to_do() -> None:
    """A server without TLS answers the TLS request with N: require and verify-full stop there."""
    import threading

    with socket.socket() as plain:
        plain.bind(("127.0.0.1", 0))
        plain.listen()
        port = plain.getsockname()[1]

        def answer_no() -> None:
            client, _ = plain.accept()
            with client:
                client.recv(8)  # the TLS request
                client.sendall(b"N")

        threading.Thread(target=answer_no, daemon=True).start()
        with pytest.raises(ExtractError) as refused:
            connect(Connection("postgresql", "127.0.0.1", port, "d", "u", "p", "require"), timeout=5)
    assert str(refused.value) == (
        f"Connection(postgresql://u@127.0.0.1:{port}/d), sslmode require: Server refuses SSL: enable TLS on the "
        "server, or set sslmode disable (a server on this machine)"
    )


def test_a_run_short_of_time_stops_between_pages_with_each_read_page_committed(database) -> None:
    insert(database, [(f"s{i:04d}", 1, 1.0, None, T0 + timedelta(seconds=i)) for i in range(2500)])
    store, files = MemoryStore(), Files()
    asked = []

    def time_left() -> bool:
        asked.append(len(files.written))
        return len(files.written) < 2

    report = extract(
        database, source(), CONTRACT, store=store.store(), write_file=files.write, started=STARTED, time_left=time_left
    )
    assert asked == [1, 2], "asked before each page after the first, never before the first"
    assert report.complete is False and report.snapshot is True and report.rows == 2000 and len(report.files) == 2
    assert Position.parse(store.texts["sources/shop/prices.json"]) == report.position
    assert report.position.key == ("s1999", 1)
    rest = Files()
    again = extract(database, source(), CONTRACT, store=store.store(), write_file=rest.write, started=STARTED)
    assert again.complete and again.rows == 500 and next(r["sku"] for r in rest.rows()) == "s2000"
