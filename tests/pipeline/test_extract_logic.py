"""The extractor's pure parts (pipeline/extract.py, pipeline/sources.py) without a database: the SQL of a page,
how a value is written, the committed position's text, a source file's and a connection's problems. The runs
against a real PostgreSQL are tests/extract/test_extract.py."""

from __future__ import annotations

import json
import re
import ssl
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.extract import (
    Position,
    column_problems,
    file_name,
    lowered,
    page_query,
    quoted,
    relation,
    text_of,
    tls_context,
)
from pipeline.sample_data import prices_contract
from pipeline.sources import PLACEHOLDER_HOST, Connection, SourceError, load_sources, parse_source

CONTRACT = prices_contract()  # sku (key), seq, price, op
DAILY = prices_contract(daily=True)  # day, sku (key), seq, price, op
TYPES = {"day": 23, "sku": 25, "seq": 20, "price": 701, "op": 1043, "updated_at": 1184, "id": 20}


def source(contract=CONTRACT, **changes):
    described = {"engine": "postgresql", "table": "prices", "watermark": {"column": "updated_at", "type": "timestamp"}}
    return parse_source({**described, **changes}, contract)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (datetime(2026, 12, 4, 10, 30, 0, 5, tzinfo=UTC), "2026-12-04T10:30:00.000005+00:00"),
        (datetime(2026, 12, 4, 10, 30), "2026-12-04T10:30:00"),
        (date(2026, 12, 4), "2026-12-04"),
        (0.1, "0.1"),
        (1e22, "1e+22"),
        (Decimal("1E+2"), "100"),
        (Decimal("3.750"), "3.750"),
        (Decimal("NaN"), "NaN"),
        (42, "42"),
        ("a,b", "a,b"),
    ],
)
def test_a_value_is_written_as_the_contracts_file_holds_it(value: object, text: str) -> None:
    assert text_of(value) == text


def test_a_position_is_committed_as_sorted_json_and_read_back() -> None:
    position = Position("2026-12-04T10:30:00+00:00", ("s1", 3), ("updated_at", "sku", "seq"))
    assert position.text() == (
        '{"columns": ["updated_at", "sku", "seq"], "key": ["s1", 3], "watermark": "2026-12-04T10:30:00+00:00"}'
    )
    assert Position.parse(position.text()) == position


def test_identifiers_are_quoted_whatever_they_hold_and_a_query_is_a_subquery() -> None:
    assert quoted('we"ird') == '"we""ird"'
    assert relation(source(schema="sales")) == '"sales"."prices" AS source'
    query = parse_source(
        {"engine": "postgresql", "query": "SELECT 1", "watermark": {"column": "id", "type": "integer"}}, CONTRACT
    )
    assert relation(query) == "(SELECT 1) AS source"


def test_the_first_page_of_a_snapshot_reads_from_the_start_up_to_the_runs_bound() -> None:
    sql, parameters = page_query(
        source(chunk_rows=500), CONTRACT, TYPES, after=None, from_watermark=None, until="2026-12-04T00:00:00"
    )
    assert sql == (
        'SELECT "sku", "seq", "price", "op", "updated_at" AS __watermark FROM "public"."prices" AS source '
        'WHERE "updated_at" <= CAST(%s AS timestamptz) ORDER BY "updated_at", "sku", "seq" LIMIT 501'
    ), "the key, then the version: a key's versions written at once; one row past the page"
    assert parameters == ["2026-12-04T00:00:00"]


def test_a_later_page_starts_after_the_last_row_by_watermark_then_key() -> None:
    after = Position("2026-12-03T00:00:00+00:00", (20261201, "s9", 4))
    sql, parameters = page_query(source(DAILY), DAILY, TYPES, after=after, from_watermark=None, until="u")
    assert sql.endswith(
        'WHERE "updated_at" <= CAST(%s AS timestamptz) AND ("updated_at", "day", "sku", "seq") > '
        "(CAST(%s AS timestamptz), CAST(%s AS integer), CAST(%s AS text), CAST(%s AS bigint)) "
        'ORDER BY "updated_at", "day", "sku", "seq" LIMIT 50001'
    )
    assert parameters == ["u", "2026-12-03T00:00:00+00:00", 20261201, "s9", 4]


def test_a_first_page_with_an_overlap_starts_at_the_lowered_watermark_inclusive() -> None:
    after = Position(100, ("s1", 1))
    integer = source(watermark={"column": "id", "type": "integer", "overlap": 7})
    sql, parameters = page_query(
        integer, CONTRACT, TYPES, after=after, from_watermark=lowered(after, integer), until=150
    )
    assert 'WHERE "id" <= CAST(%s AS bigint) AND "id" >= CAST(%s AS bigint) ORDER BY "id", "sku", "seq"' in sql
    assert parameters == [150, 93]


def test_an_overlap_lowers_a_timestamp_by_seconds_and_an_id_by_ids() -> None:
    stamped = source(watermark={"column": "updated_at", "type": "timestamp", "overlap": 90})
    at = datetime(2026, 12, 4, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    assert lowered(Position(at.isoformat(), ()), stamped) == "2026-12-04T09:58:30+01:00"
    counted = source(watermark={"column": "id", "type": "integer", "overlap": 5})
    assert lowered(Position(12, ()), counted) == 7


def test_a_file_is_named_after_its_runs_start_and_its_page() -> None:
    assert (
        file_name(datetime(2026, 12, 4, 9, 5, 7, tzinfo=UTC), "ab12", 12) == "extract-20261204T090507Z-ab12-00012.csv"
    )


def test_every_column_problem_is_named_with_its_fix() -> None:
    contract = prices_contract(
        columns=[
            {"name": "sku", "type": "string", "nullable": False},
            {"name": "seq", "type": "integer", "nullable": False},
            {"name": "price", "type": "double", "nullable": False},
            {"name": "colour", "type": "string", "nullable": True},
        ],
        deletes=False,
    )
    types = {"sku": 17, "seq": 701, "price": 20, "updated_at": 25}
    assert column_problems(types, source(contract), contract) == [
        "source column 'sku' is type oid 17, which contract column 'sku' (string) cannot hold: cast it in the "
        "source's query, or change the contract",
        "source column 'seq' is double precision, which contract column 'seq' (integer) cannot hold: cast it in "
        "the source's query, or change the contract",
        "contract column 'colour' is not a column of the source",
        "the watermark column 'updated_at' is text, not one of ['date', 'timestamp', 'timestamptz'] "
        "(watermark.type: timestamp)",
    ]
    fitting = {"sku": 1042, "seq": 21, "price": 1700, "colour": 1082, "updated_at": 1114}
    assert column_problems(fitting, source(contract), contract) == []
    assert column_problems(
        fitting | {"id": 701}, source(contract, watermark={"column": "id", "type": "integer"}), contract
    ) == [
        "the watermark column 'id' is double precision, not one of ['bigint', 'integer', 'smallint'] "
        "(watermark.type: integer)"
    ]
    assert (
        column_problems({"sku": 25}, source(contract, watermark={"column": "x", "type": "integer"}), contract)[-1]
        == "the watermark column 'x' is not a column of the source"
    )


def test_a_source_file_gets_its_defaults_and_the_contracts_table() -> None:
    parsed = parse_source(
        {"engine": "postgresql", "table": "t", "watermark": {"column": "c", "type": "integer"}}, CONTRACT
    )
    assert (parsed.dataset, parsed.table, parsed.name, parsed.engine) == ("shop", "prices", "shop/prices", "postgresql")
    assert (parsed.schema, parsed.relation, parsed.query, parsed.chunk_rows) == ("public", "t", None, 50_000)
    assert (parsed.watermark.column, parsed.watermark.type, parsed.watermark.overlap) == ("c", "integer", 0)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"watermark": "updated_at"}, "watermark: a mapping {column, type, overlap} is required"),
        ({"watermark": {"column": "c", "type": "integer", "every": 1}}, "watermark: unknown key 'every'"),
        (
            {"watermark": {"column": 3, "type": "integer"}},
            "watermark.column: the column whose value grows with each write is required",
        ),
        ({"watermark": {"column": "c", "type": None}}, "watermark.type None is not one of ['timestamp', 'integer']"),
        (
            {"watermark": {"column": "c", "type": "date"}},
            "watermark.type 'date' is not one of ['timestamp', 'integer']",
        ),
        (
            {"watermark": {"column": "c", "type": "integer", "overlap": -1}},
            "watermark.overlap -1 must be a whole number, 0 or more",
        ),
        (
            {"watermark": {"column": "c", "type": "integer", "overlap": True}},
            "watermark.overlap True must be a whole number, 0 or more",
        ),
        (
            {"watermark": {"column": "c", "type": "integer", "overlap": 1.5}},
            "watermark.overlap 1.5 must be a whole number, 0 or more",
        ),
        ({"chunk_rows": 0}, "chunk_rows 0 must be a whole number from 1 to 1,000,000"),
        ({"chunk_rows": 1_000_001}, "chunk_rows 1000001 must be a whole number from 1 to 1,000,000"),
        ({"chunk_rows": True}, "chunk_rows True must be a whole number from 1 to 1,000,000"),
        ({"chunk_rows": "9"}, "chunk_rows '9' must be a whole number from 1 to 1,000,000"),
        ({"engine": None}, "engine None is not one of ['postgresql']"),
        ({"table": None}, "name the rows with exactly one of `table` and `query`"),
        (
            {"schema": "s", "every": "5m"},
            "unknown key 'every' (known: ['chunk_rows', 'engine', 'query', 'schema', 'table', 'watermark'])",
        ),
    ],
)
def test_a_source_files_problem_is_named(changes: dict, problem: str) -> None:
    described = {"engine": "postgresql", "table": "t", "watermark": {"column": "c", "type": "integer"}} | changes
    present = {k: v for k, v in described.items() if not (k == "table" and v is None)}
    with pytest.raises(SourceError, match=r"^where\.yaml: " + re.escape(problem) + "$"):
        parse_source(present, CONTRACT, "where.yaml")


def test_every_problem_of_a_source_file_is_named_at_once_without_a_file_its_source() -> None:
    with pytest.raises(SourceError) as refused:
        parse_source({"engine": "oracle", "table": "t", "query": "q", "watermark": {"column": ""}}, CONTRACT)
    assert str(refused.value) == (
        "<source>: engine 'oracle' is not one of ['postgresql']; name the rows with exactly one of `table` and "
        "`query`; watermark.column: the column whose value grows with each write is required; watermark.type None "
        "is not one of ['timestamp', 'integer']"
    )


def test_the_limits_of_a_source_file_are_accepted() -> None:
    watermark = {"column": "c", "type": "integer", "overlap": 0}
    for chunk in (1, 1_000_000):
        assert parse_source(
            {"engine": "postgresql", "table": "t", "watermark": watermark, "chunk_rows": chunk}, CONTRACT
        )


def test_sources_are_read_beside_their_contracts_and_one_without_a_contract_refused(tmp_path: Path) -> None:
    assert load_sources({"shop/prices": CONTRACT}, tmp_path / "absent") == {}
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "prices.yaml").write_text(
        "engine: postgresql\ntable: p\nwatermark: {column: c, type: integer}\n"
    )
    (tmp_path / "shop" / "notes.txt").write_text("not a source")
    assert load_sources({"shop/prices": CONTRACT}, tmp_path)["shop/prices"].relation == "p"
    (tmp_path / "shop" / "orders.yml").write_text("engine: postgresql\n")
    with pytest.raises(SourceError, match=r"orders\.yml: no contract for shop/orders: add contracts/shop/orders\.yaml"):
        load_sources({"shop/prices": CONTRACT}, tmp_path)
    (tmp_path / "shop" / "orders.yml").write_text("")
    with pytest.raises(SourceError, match=r"orders\.yml: .*engine None"):
        load_sources({"shop/prices": CONTRACT, "shop/orders": CONTRACT}, tmp_path)


def test_the_shipped_sources_parse() -> None:
    from pipeline.contract import load_contracts

    sources = load_sources(load_contracts())
    assert sources["clinic/appointments"].watermark.overlap == 300


_NAMED = "source URL: name the user, the host and the database: postgresql://user:pw@host:5432/db"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://host/db", _NAMED),
        ("postgresql://u@host/", _NAMED),
        ("postgresql://u@/db", _NAMED),
        ("http://u@h/db", "source URL: the scheme must be one of ['postgresql'], as in postgresql://user:pw@host/db"),
    ],
)
def test_a_url_without_what_a_connection_needs_says_what(url: str, problem: str) -> None:
    with pytest.raises(SourceError, match="^" + re.escape(problem) + "$"):
        Connection.from_url(url)


def test_a_url_and_a_secret_fill_every_field_with_the_engines_port_by_default() -> None:
    assert Connection.from_url("postgresql://u@h:6000/d") == Connection("postgresql", "h", 6000, "d", "u", "")
    assert Connection.from_url("postgresql://u@h/Xdb").database == "Xdb"
    secret = '{"engine": "postgres", "host": "h", "port": "6432", "dbname": "d", "username": "u", "password": "p"}'
    assert Connection.from_secret(secret) == Connection("postgresql", "h", 6432, "d", "u", "p"), "RDS's engine name"
    assert Connection.from_secret('{"host": "h", "dbname": "d", "username": "u", "password": "p"}') == Connection(
        "postgresql", "h", 5432, "d", "u", "p"
    )
    assert repr(Connection("postgresql", "h", 1, "d", "u", "secret")) == "Connection(postgresql://u@h:1/d)"
    with pytest.raises(SourceError, match=r"^secret db/prd: not JSON \(Expecting value\): store it as RDS does$"):
        Connection.from_secret("nope", "db/prd")
    with pytest.raises(SourceError, match=r"^secret s: engine 'mysql' is not supported$"):
        Connection.from_secret('{"engine": "mysql", "host": "h", "dbname": "d", "username": "u", "password": "p"}', "s")
    with pytest.raises(SourceError, match=r"^<secret>: |^secret <secret>: missing \['host', 'dbname'\]$"):
        Connection.from_secret('{"username": "u", "password": "p"}')


def test_a_watermark_of_a_type_the_extractor_does_not_know_is_named_by_its_oid() -> None:
    assert column_problems({"sku": 25, "seq": 20, "price": 701, "op": 25, "updated_at": 114}, source(), CONTRACT) == [
        "the watermark column 'updated_at' is type oid 114, not one of ['date', 'timestamp', 'timestamptz'] "
        "(watermark.type: timestamp)"
    ]


@pytest.mark.parametrize(
    ("detail", "message"),
    [
        (
            {"C": "28P01", "M": "password authentication failed"},
            "h:5 refused user 'u' (password authentication failed): check the user and password in the source's secret",
        ),
        (
            {"C": "28000", "M": "no pg_hba.conf entry"},
            "h:5 refused user 'u' (no pg_hba.conf entry): check the user, and that the server accepts this client "
            "(pg_hba.conf, SSL)",
        ),
        ({"C": "3D000", "M": 'database "d" does not exist'}, "h:5 has no database 'd' (database \"d\" does not exist)"),
        ({"C": "53300", "M": "too many connections"}, "Connection(postgresql://u@h:5/d): too many connections"),
        ({"C": "53300"}, "Connection(postgresql://u@h:5/d): {'C': '53300'}"),
        ("the server's words", "Connection(postgresql://u@h:5/d): the server's words"),
    ],
)
def test_a_refusal_says_what_to_check(detail: dict | str, message: str) -> None:
    from pipeline.extract import refusal

    assert str(refusal(Connection("postgresql", "h", 5, "d", "u", "p"), RuntimeError(detail))) == message


def test_a_bad_port_or_a_secret_that_is_no_object_is_named() -> None:
    with pytest.raises(SourceError, match=r"^source URL: the port must be a number, as in postgresql://"):
        Connection.from_url("postgresql://u@h:port/d")
    with pytest.raises(SourceError, match=r"^secret s: not a JSON object: store it as RDS does$"):
        Connection.from_secret('["h"]', "s")
    with pytest.raises(SourceError, match=r"^secret s: port 'x' is not a number$"):
        Connection.from_secret('{"host": "h", "port": "x", "dbname": "d", "username": "u", "password": "p"}', "s")


def test_the_order_after_the_watermark_is_the_key_then_a_version_not_in_it() -> None:
    from pipeline.extract import order_columns

    assert order_columns(prices_contract(), "updated_at") == ["sku", "seq"]
    assert order_columns(prices_contract(version=None), "updated_at") == ["sku"]
    assert order_columns(prices_contract(version="seq", key=["sku", "seq"]), "updated_at") == ["sku", "seq"]
    assert order_columns(prices_contract(), "seq") == ["sku"], "the watermark is not ordered by twice"


def test_a_watermark_that_is_also_the_version_is_ordered_by_once() -> None:
    by_version = source(watermark={"column": "seq", "type": "integer"})
    sql, parameters = page_query(by_version, CONTRACT, TYPES, after=Position(3, ("s1",)), from_watermark=None, until=9)
    assert sql.endswith(
        'WHERE "seq" <= CAST(%s AS bigint) AND ("seq", "sku") > (CAST(%s AS bigint), CAST(%s AS text)) '
        'ORDER BY "seq", "sku" LIMIT 50001'
    )
    assert parameters == [9, 3, "s1"]


def test_a_store_in_memory_swaps_only_from_what_was_read() -> None:
    from pipeline.extract import ExtractError, memory_store

    texts: dict[str, str] = {}
    store = memory_store("sources/shop/prices.json", texts)
    assert store.key == "sources/shop/prices.json" and store.read_text(store.key) is None
    store.swap(store.key, "one", None)
    store.swap(store.key, "two", "one")
    assert texts == {"sources/shop/prices.json": "two"} and store.read_text(store.key) == "two"
    with pytest.raises(ExtractError, match=r"^sources/shop/prices\.json moved while this run read it: another run "):
        store.swap(store.key, "three", "one")
    assert texts["sources/shop/prices.json"] == "two"


@pytest.mark.parametrize(
    ("url", "tls"),
    [
        ("postgresql://u@127.0.0.1/d", "disable"),
        ("postgresql://u@localhost:5433/d", "disable"),
        ("postgresql://u@[::1]/d", "disable"),
        ("postgresql://u@db.internal/d", "require"),
        ("postgresql://u@localhost/d?sslmode=verify-full", "verify-full"),
        ("postgresql://u@db.internal/d?sslmode=disable", "disable"),
        ("postgresql://u@db.internal/d?application_name=x&sslmode=require", "require"),
    ],
)
def test_a_urls_tls_is_off_on_this_machine_and_required_elsewhere_unless_it_says(url: str, tls: str) -> None:
    assert Connection.from_url(url).tls == tls


def test_a_secrets_tls_is_required_unless_it_says_and_a_mode_not_known_is_refused() -> None:
    fields = {"host": "h", "dbname": "d", "username": "u", "password": "p"}
    assert Connection.from_secret(json.dumps(fields)).tls == "require"
    assert Connection.from_secret(json.dumps(fields | {"sslmode": "verify-full"})).tls == "verify-full"
    with pytest.raises(
        SourceError, match=r"^secret db/x: sslmode 'prefer' is not one of \['verify-full', 'require', 'disable'\]$"
    ):
        Connection.from_secret(json.dumps(fields | {"sslmode": "prefer"}), "db/x")
    with pytest.raises(SourceError, match=r"^source URL: sslmode 'allow' is not one of "):
        Connection.from_url("postgresql://u@h/d?sslmode=allow")


def test_the_templates_placeholder_secret_is_refused_by_name() -> None:
    placeholder = {"engine": "postgres", "host": PLACEHOLDER_HOST, "port": 5432, "dbname": "", "username": ""}
    with pytest.raises(SourceError) as refused:
        Connection.from_secret(json.dumps(placeholder | {"password": "generated"}), "arn:secret:x")
    assert str(refused.value) == (
        "secret arn:secret:x still holds the template's placeholder: put the database's host, port, dbname, "
        "username and password in it (RDS's shape; README: Tables from a database)"
    )


def test_each_tls_mode_gives_pg8000_what_it_means(tmp_path: Path) -> None:
    assert tls_context("disable") is False, "False: no TLS request (pg8000's None would fall back to plain)"
    required = tls_context("require")
    assert isinstance(required, ssl.SSLContext)
    assert required.verify_mode == ssl.CERT_NONE and not required.check_hostname
    missing = tls_context("verify-full", tmp_path / "none.pem")
    assert isinstance(missing, ssl.SSLContext)
    assert missing.verify_mode == ssl.CERT_REQUIRED and missing.check_hostname
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from local_postgres import _certificates

    authority, _, _ = _certificates(tmp_path, "127.0.0.1")
    trusted = tls_context("verify-full", authority)
    assert isinstance(trusted, ssl.SSLContext)
    subjects = [dict(item[0] for item in c["subject"]) for c in trusted.get_ca_certs()]
    assert {"commonName": "local test authority"} in subjects, "the bundle's authority is trusted"
    assert {"commonName": "local test authority"} not in [
        dict(item[0] for item in c["subject"]) for c in missing.get_ca_certs()
    ]
