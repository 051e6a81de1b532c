"""Benchmark (not a test): raw_to_staging on N generated rows with local[2], against a plain
read-CSV/write-Parquet copy of the same file in the same run.

    .venv/bin/python scripts/benchmark_raw_to_staging.py --rows 1000000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "glue" / "lib")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each (the best is reported)")
    args = parser.parse_args(argv)

    from etl_spark.jobs import run_raw_to_staging
    from etl_spark.local import local_spark

    from lambdas.validate.logic import inspect
    from pipeline.contract import load_contracts
    from pipeline.csv_format import read_header
    from pipeline.layout import parse_raw_key
    from pipeline.sample_data import COLUMNS, write_large

    contract = load_contracts()["diabetes/patients"]
    work = Path(tempfile.mkdtemp(prefix="bench-etl-"))
    raw = parse_raw_key(f"diabetes/patients/created_at=20261122T000000Z/bench-{args.rows}.csv")
    source = work / "raw" / raw.key
    source.parent.mkdir(parents=True)
    started = time.perf_counter()
    write_large(source, args.rows)
    size_mb = source.stat().st_size / 1e6
    print(f"generated {args.rows:,} rows ({size_mb:.0f} MB) in {time.perf_counter() - started:.1f} s")

    # the validate step reads the file before the job, and tells it whether to read it whole or by lines
    started = time.perf_counter()
    with source.open("rb") as handle:
        verdict = inspect(handle, source.name, contract)
    if not verdict.readable:
        raise SystemExit(f"the generated file does not validate: {verdict.reason}")
    print(f"validated in {time.perf_counter() - started:.1f} s (read whole: {verdict.read_whole})")

    spark = local_spark("bench", **{"spark.driver.memory": "4g", "spark.sql.shuffle.partitions": "200"})

    def transform() -> dict:
        shutil.rmtree(work / "staging", ignore_errors=True)
        shutil.rmtree(work / "quarantine", ignore_errors=True)
        return run_raw_to_staging(
            spark,
            contract,
            raw,
            raw_root=str(work / "raw"),
            staging_root=str(work / "staging"),
            quarantine_root=str(work / "quarantine"),
            header=COLUMNS,
            updated_at=raw.created_at,
            write_text=lambda location, text: None,
            delete_texts=lambda location: None,
            run_id="jr_benchmark",
            size=source.stat().st_size,  # as Glue's entry passes it (the raw object's ContentLength)
            multiline=verdict.read_whole,  # as the state machine passes validate's finding
        )

    def plain_copy() -> None:
        spark.read.option("header", True).csv(str(source)).write.mode("overwrite").parquet(str(work / "copy"))

    with source.open("rb") as handle:
        header = read_header(handle, source.name, contract.format, contract.column_names)
    if header != COLUMNS:
        raise SystemExit("the generated file's header is not the contract's columns")
    transform(), plain_copy()  # warm-up: JIT, class loading
    best_transform = best_copy = float("inf")
    report = {}
    for _ in range(args.repeat):
        started = time.perf_counter()
        report = transform()
        best_transform = min(best_transform, time.perf_counter() - started)
        started = time.perf_counter()
        plain_copy()
        best_copy = min(best_copy, time.perf_counter() - started)
    spark.stop()
    shutil.rmtree(work)

    print(
        f"raw_to_staging: {best_transform:.2f} s, {args.rows / best_transform:,.0f} rows/s "
        f"(in {report['rows_in']:,}, written {report['rows_written']:,}, rejected {report['rows_rejected']:,})"
    )
    print(f"plain CSV->Parquet copy: {best_copy:.2f} s, {args.rows / best_copy:,.0f} rows/s")
    print(f"ratio raw_to_staging / copy: {best_transform / best_copy:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
