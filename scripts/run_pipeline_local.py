"""The whole pipeline on this machine: sample data -> ingest -> validate -> raw_to_staging -> gate ->
staging_to_curated, printing per-stage counts and timings.

The code paths are those that run in AWS: the Lambda logic with boto3 against moto's in-process S3,
the Glue jobs' functions on a local Spark. Only the edges differ: Spark reads and writes a local
mirror of the buckets instead of s3://.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "glue" / "lib")]
for key, value in {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "eu-west-1",
                   "POWERTOOLS_METRICS_NAMESPACE": "Local"}.items():
    os.environ.setdefault(key, value)

BUCKETS = ("landing", "raw", "quarantine", "staging", "curated")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "pipeline-run",
                        help="work folder; the curated table ends in <out>/curated")
    args = parser.parse_args(argv)

    import boto3
    from etl_spark.io import header_of
    from etl_spark.jobs import passed_partitions, run_raw_to_staging, run_staging_to_curated
    from moto import mock_aws

    from lambdas.gate.handler import gate_batch
    from lambdas.ingest.handler import run as ingest
    from lambdas.validate.handler import validate_object
    from pipeline.contract import load_contracts
    from pipeline.layout import parse_raw_key, timestamp
    from pipeline.sample_data import write_sample

    shutil.rmtree(args.out, ignore_errors=True)
    mirror = {name: args.out / name for name in BUCKETS}
    sample = write_sample(args.out / "sample")
    contracts = load_contracts()
    rows: list[tuple[str, int, int, int, float]] = []

    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        for name in BUCKETS:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        files = [sample.clean, sample.defects, sample.not_csv]
        for path in files:
            s3.upload_file(str(path), "landing", f"diabetes/patients/{path.name}")

        started = time.perf_counter()
        moved = ingest(s3, "landing", "raw", "quarantine", set(contracts))
        rows.append(("ingest", len(files), len(moved["moved"]), len(moved["quarantined"]),
                     time.perf_counter() - started))

        started = time.perf_counter()
        verdicts = [validate_object(s3, "raw", key, "quarantine", contracts) for key in moved["moved"]]
        valid = [v for v in verdicts if v["valid"]]
        rows.append(("validate", len(verdicts), len(valid), len(verdicts) - len(valid), time.perf_counter() - started))
        for verdict in verdicts:
            if not verdict["valid"]:
                print(f"quarantined {verdict['source']}: {verdict['reason']}")

        from etl_spark.local import local_spark

        started = time.perf_counter()
        spark = local_spark("pipeline-local")
        print(f"local Spark started in {time.perf_counter() - started:.1f} s")

        def write_text(location: str, text: str) -> None:
            key = Path(location).relative_to(mirror["staging"]).as_posix()
            s3.put_object(Bucket="staging", Key=key, Body=text.encode())

        started = time.perf_counter()
        totals = [0, 0, 0]
        for verdict in valid:
            raw = parse_raw_key(verdict["key"])
            local = mirror["raw"] / raw.key
            local.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file("raw", raw.key, str(local))
            header = header_of(local.read_text(encoding="utf-8-sig").splitlines()[0])
            report = run_raw_to_staging(
                spark, contracts[raw.contract_name], raw, raw_root=str(mirror["raw"]),
                staging_root=str(mirror["staging"]), quarantine_root=str(mirror["quarantine"]), header=header,
                updated_at=timestamp(datetime.now(UTC)),
                write_text=write_text)
            totals = [totals[0] + report["rows_in"], totals[1] + report["rows_written"],
                      totals[2] + report["rows_rejected"]]
        rows.append(("raw_to_staging", *totals, time.perf_counter() - started))

        started = time.perf_counter()
        gates = [gate_batch(s3, "staging", v["key"], contracts) for v in valid]
        passed = [g for g in gates if g["passed"]]
        rows.append(("gate", len(gates), len(passed), len(gates) - len(passed), time.perf_counter() - started))
        for gate in gates:
            if not gate["passed"]:
                print(f"gate failed ({gate['verdict']}): {'; '.join(gate['failures'])}")

        started = time.perf_counter()
        contract = contracts["diabetes/patients"]  # by name: check-only datasets are never promoted
        markers = [o["Key"] for o in s3.list_objects_v2(
            Bucket="staging", Prefix=f"_runs/{contract.dataset}/{contract.table}/").get("Contents", [])]
        curated_rows = run_staging_to_curated(spark, contract, staging_root=str(mirror["staging"]),
                                              passed_partitions=passed_partitions(markers),
                                              curated_root=str(mirror["curated"]))
        rows.append(("staging_to_curated", totals[1], curated_rows, 0, time.perf_counter() - started))
        spark.stop()

    print(f"\n{'stage':<20}{'in':>8}{'written':>9}{'quarantined':>13}{'seconds':>9}")
    for stage, count_in, written, quarantined, seconds in rows:
        print(f"{stage:<20}{count_in:>8}{written:>9}{quarantined:>13}{seconds:>9.2f}")
    print(f"\ncurated feature table: {mirror['curated'] / 'diabetes' / 'patients'} ({curated_rows} rows)")
    print(f"quarantined rows, each with its reason: {mirror['quarantine'] / 'rows'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
