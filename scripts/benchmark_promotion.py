"""The time to promote the Nth batch of a table against the 1st (not a test): incremental builds should take
about as long whatever the table's history, where a rebuild from every batch (what each promotion did before
builds) grows with it.

    .venv/bin/python scripts/benchmark_promotion.py [--batches 1000] [--rows 200] [--keys 5000] \
        [--partition buckets:64 | --partition day]

Writes `--batches` staged batches (Parquet, as raw_to_staging stages them) of `--rows` rows over `--keys`
keys (by day and key with `--partition day`, `--per-day` batches a day: an event table), then times, on one
local Spark session: the first build (batch 1 alone); a build of batches 2..N-1 onto it (setup, not timed as
a figure); the build that merges batch 2 onto the first (the fixed cost of a build onto another: reading its
pointer, the touched partitions' rows, removing what no kept build reads); the build that merges batch N onto
the build of 2..N-1; and one build from scratch over all N. Each timed build runs `--repeat` times on a copy
of the same starting point and the median is reported.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "glue" / "lib")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--keys", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--partition",
        default="buckets:1",
        help="the table's partitioning: buckets:<n> (by key hash; buckets:1, the default, is one partition) or day",
    )
    parser.add_argument("--per-day", type=int, default=10, help="with --partition day: batches landing a day")
    args = parser.parse_args(argv)
    daily = args.partition == "day"
    if not daily and not args.partition.startswith("buckets:"):
        parser.error(f"--partition must be buckets:<n> or day, not {args.partition!r}")
    if args.batches < 3:
        parser.error("--batches must be at least 3 (the 1st, those between, the Nth)")

    import pyarrow as pa
    import pyarrow.parquet as pq
    from etl_spark.jobs import build_onto_current
    from etl_spark.local import local_curated, local_spark

    from pipeline.sample_data import prices_contract

    contract = (
        prices_contract(deletes=False, daily=True)
        if daily
        else prices_contract(deletes=False, partition={"buckets": int(args.partition.split(":", 1)[1])})
    )
    work = Path(tempfile.mkdtemp(prefix="benchmark-promotion-"))
    staging = work / "staging"
    rng = random.Random(1000)  # noqa: S311 (benchmark data, reproducible)
    started = time.perf_counter()
    runs = []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for index in range(args.batches):
        landed = start + timedelta(minutes=index)
        stamp = landed.strftime("%Y%m%dT%H%M%SZ")
        run = f"shop/prices/created_at={stamp}/file=b{index:05d}.csv/run=jr_{index}"
        source = f"s3://raw/shop/prices/created_at={stamp}/b{index:05d}.csv"
        day = {"day": pa.array([20260101 + index // args.per_day] * args.rows, pa.int64())} if daily else {}
        table = pa.table(
            day
            | {
                "sku": [f"S{rng.randrange(args.keys):05d}" for _ in range(args.rows)],
                "seq": pa.array([index * args.rows + i for i in range(args.rows)], pa.int64()),
                "price": [float(rng.randrange(1, 1000)) for _ in range(args.rows)],
                "created_at": pa.array([landed] * args.rows, pa.timestamp("us", tz="UTC")),
                "updated_at": pa.array([landed] * args.rows, pa.timestamp("us", tz="UTC")),
                "source_file": [source] * args.rows,
                "landing_key": pa.array([None] * args.rows, pa.string()),
                "source_row": pa.array(range(args.rows), pa.int64()),
            }
        )
        (staging / run).mkdir(parents=True)
        pq.write_table(table, staging / run / "part-0.parquet")
        runs.append(run)
    print(f"staged {args.batches} batches of {args.rows} rows in {time.perf_counter() - started:.1f} s")

    spark = local_spark("benchmark-promotion")

    def build(root: Path, batches: list[str], from_scratch: bool = False) -> float:
        store = local_curated(root)
        began = time.perf_counter()
        build_onto_current(
            spark, contract, staging_root=str(staging), runs=batches, curated=store, from_scratch=from_scratch
        )
        return time.perf_counter() - began

    def timed(name: str, prepare, batches: list[str], from_scratch: bool = False) -> float:
        times = []
        for attempt in range(args.repeat + 1):  # the first warms the session up
            root = work / f"{name}-{attempt}"
            prepare(root)
            elapsed = build(root, batches, from_scratch)
            if attempt:
                times.append(elapsed)
        return statistics.median(times)

    base_of_one, base = work / "base-1", work / "base"
    build(base_of_one, runs[:1])
    shutil.copytree(base_of_one, base)
    build(base, runs[1:-1])

    first = timed("first", lambda root: None, runs[:1])
    second = timed("second", lambda root: shutil.copytree(base_of_one, root), runs[1:2])
    last = timed("last", lambda root: shutil.copytree(base, root), runs[-1:])
    scratch = timed("scratch", lambda root: None, runs, from_scratch=True)
    spark.stop()
    shutil.rmtree(work, ignore_errors=True)
    print(f"\npartitioning: {contract.partition.as_dict()}")
    print(f"{'build':<46}{'seconds':>9}{'x the 1st':>11}{'x the 2nd':>11}")
    for label, seconds in (
        ("the 1st batch (a first build)", first),
        ("the 2nd batch, onto a build of 1", second),
        (f"the {args.batches}th batch, onto a build of {args.batches - 1}", last),
        (f"all {args.batches} batches from scratch (before builds)", scratch),
    ):
        print(f"{label:<46}{seconds:>9.2f}{seconds / first:>11.2f}{seconds / second:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
