"""Benchmark (not a test): the database extractor (pipeline/extract.py) on a local PostgreSQL, a table of N rows:
a first run (the whole table, page by page) and a run after 1 % of the rows changed; rows per second and the
extractor's peak Python memory (tracemalloc: what a page costs, whatever the table holds).

    .venv/bin/python scripts/benchmark_extract.py --rows 1000000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    args = parser.parse_args(argv)

    from local_postgres import local_postgres

    from pipeline.extract import connect, extract, memory_store
    from pipeline.sample_data import prices_contract
    from pipeline.sources import parse_source

    contract = prices_contract()
    source = parse_source(
        {
            "engine": "postgresql",
            "table": "prices",
            "watermark": {"column": "updated_at", "type": "timestamp"},
            "chunk_rows": args.chunk_rows,
        },
        contract,
    )
    with local_postgres() as server, tempfile.TemporaryDirectory() as folder:
        connection = connect(server.target())
        cursor = connection.cursor()
        cursor.execute(
            "CREATE TABLE prices (sku text PRIMARY KEY, seq bigint NOT NULL, price double precision NOT NULL, "
            "op text, updated_at timestamptz NOT NULL)"
        )
        started = time.perf_counter()
        cursor.execute(
            "INSERT INTO prices SELECT 'sku-' || lpad(i::text, 8, '0'), 1, round((random() * 1000)::numeric, 2), "
            "NULL, timestamptz '2026-12-01' + i * interval '1 millisecond' FROM generate_series(1, %s) AS i",
            [args.rows],
        )
        cursor.execute("CREATE INDEX ON prices (updated_at, sku, seq)")  # the pages' order: watermark, key, version
        cursor.execute("ANALYZE prices")
        print(f"loaded {args.rows:,} rows in {time.perf_counter() - started:.1f} s")

        positions: dict[str, str] = {}
        store = memory_store("sources/shop/prices.json", positions)
        written = Path(folder)

        def timed(label: str) -> None:
            """Timed alone, then run again from the same position under tracemalloc (which slows Python several
            times over) for the peak memory."""
            before = dict(positions)
            began = time.perf_counter()
            report = extract(
                connection,
                source,
                contract,
                store=store,
                write_file=lambda name, data: (written / name).write_bytes(data),
                started=datetime.now(UTC),
            )
            seconds = time.perf_counter() - began
            after = dict(positions)
            positions.clear()
            positions.update(before)
            tracemalloc.start()
            extract(connection, source, contract, store=store, write_file=lambda *_: None, started=datetime.now(UTC))
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            positions.clear()
            positions.update(after)
            print(
                f"{label:<32}{report.rows:>10,} rows {len(report.files):>4} files {seconds:>7.2f} s "
                f"{report.rows / seconds:>10,.0f} rows/s   peak {peak / 1e6:>6.1f} MB"
            )

        timed("first run (the whole table)")
        cursor.execute(
            "UPDATE prices SET seq = 2, updated_at = now() WHERE sku IN (SELECT sku FROM prices TABLESAMPLE "
            "BERNOULLI (1) REPEATABLE (7))"
        )
        timed("next run (1 % changed)")
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
