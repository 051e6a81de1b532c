"""The whole pipeline on this machine: landing -> ingest -> validate -> raw_to_staging -> gate ->
staging_to_curated, printing per-stage counts and timings and writing a per-file report (JSON).

    .venv/bin/python scripts/run_pipeline_local.py                      # the generated sample
    .venv/bin/python scripts/run_pipeline_local.py --data my-exports/   # your files: <dataset>/<table>/<file>

The code paths are those that run in AWS: the Lambda logic with boto3 against moto's in-process S3,
the Glue jobs' functions on a local Spark. Only the edges differ: Spark reads and writes a local
mirror of the buckets instead of s3://.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "glue" / "lib")]
for key, value in {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "POWERTOOLS_METRICS_NAMESPACE": "Local",
}.items():
    os.environ.setdefault(key, value)

BUCKETS = ("landing", "raw", "quarantine", "staging", "curated")
MAX_REASONS = 20
REPORT = "report.json"
LEDGER = "ledger.json"
PARALLEL_FILES = 2


@dataclass
class FileReport:
    """One landed file's fate: what the report (JSON) holds per file."""

    file: str
    dataset: str | None
    table: str | None
    rows_in: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    file_quarantined: bool = False
    reasons: list[str] = field(default_factory=list)
    gate: str = "not run"


def landing_files(data: Path) -> list[tuple[str, Path]]:
    """(landing key, local file) for every file under `data`, keyed as it would land: its path in the folder."""
    return [(path.relative_to(data).as_posix(), path) for path in sorted(data.rglob("*")) if path.is_file()]


def row_reasons(rows_dir: Path) -> list[str]:
    """The most common reasons of a batch's quarantined rows, with their counts."""
    counts: Counter[str] = Counter()
    for part in sorted(rows_dir.glob("*.json")):
        counts.update(json.loads(line)["reject_reason"] for line in part.read_text(encoding="utf-8").splitlines())
    return [f"{reason} ({count} row{'s' if count > 1 else ''})" for reason, count in counts.most_common(MAX_REASONS)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        help="a folder laid out as landing is: <dataset>/<table>/<file> (default: the generated diabetes sample)",
    )
    parser.add_argument(
        "--contracts",
        type=Path,
        action="append",
        default=[],
        help="a folder of more data contracts, beside the repository's contracts/ (repeatable)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "build" / "pipeline-run",
        help="work folder; the curated tables end in <out>/curated, the report in <out>/report.json",
    )
    args = parser.parse_args(argv)
    if args.data is not None and not args.data.is_dir():
        parser.error(f"--data {args.data} is not a folder (expected <dataset>/<table>/<file> inside it)")
    reports, stages = run(args.data, args.contracts, args.out)
    print(f"\n{'stage':<20}{'in':>8}{'written':>9}{'quarantined':>13}{'seconds':>9}")
    for stage, count_in, written, quarantined, seconds in stages:
        print(f"{stage:<20}{count_in:>8}{written:>9}{quarantined:>13}{seconds:>9.2f}")
    print(f"\n{'file':<48}{'in':>8}{'written':>9}{'rejected':>10}  gate / file quarantined")
    for report in reports:
        fate = "quarantined: " + report.reasons[0] if report.file_quarantined else report.gate
        print(f"{report.file[:47]:<48}{report.rows_in:>8}{report.rows_written:>9}{report.rows_quarantined:>10}  {fate}")
    print(f"\nreport, per file: {args.out / REPORT}")
    states = Counter(record["state"] for record in json.loads((args.out / LEDGER).read_text(encoding="utf-8")))
    print(f"run ledger, a record per landed file (in AWS: the ledger table): {args.out / LEDGER}")
    print("  " + ", ".join(f"{state} {count}" for state, count in sorted(states.items())))
    print(
        f"curated tables: {args.out / 'curated'}; quarantined rows, each with its reason: "
        f"{args.out / 'quarantine' / 'rows'}"
    )
    return 0


def run(
    data: Path | None, contracts_dirs: list[Path], out: Path, spark: Any = None
) -> tuple[list[FileReport], list[tuple[str, int, int, int, float]]]:
    """Every file of `data` (or the sample) through the pipeline; (per-file reports, per-stage rows).
    A `spark` session given (the tests') is used and left running; else one is started and stopped."""
    import boto3
    from etl_spark.jobs import promote, run_raw_to_staging
    from etl_spark.local import local_curated, local_spark
    from moto import mock_aws

    from lambdas.gate.handler import gate_batch
    from lambdas.gate.handler import ledger_entry as gate_entry
    from lambdas.ingest.handler import run as ingest
    from lambdas.keys import landing_key_of
    from lambdas.validate.handler import ledger_entry as validate_entry
    from lambdas.validate.handler import validate_object
    from pipeline.builds import promoted_entries
    from pipeline.contract import load_contracts
    from pipeline.csv_format import read_header
    from pipeline.layout import parse_raw_key, quarantined_file_key, quarantined_rows_prefix, table_prefix, timestamp
    from pipeline.ledger import create_table, record_all
    from pipeline.s3_objects import delete_under, keys_under
    from pipeline.sample_data import write_sample

    shutil.rmtree(out, ignore_errors=True)
    mirror = {name: out / name for name in BUCKETS}
    if data is None:
        sample = write_sample(out / "sample" / "diabetes" / "patients")
        data = sample.clean.parent.parent.parent
    contracts = load_contracts()
    for directory in contracts_dirs:
        contracts |= load_contracts(directory)
    files = landing_files(data)
    reports = {key: FileReport(key, *(key.split("/")[:2] if key.count("/") == 2 else (None, None))) for key, _ in files}
    stages: list[tuple[str, int, int, int, float]] = []

    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        for name in BUCKETS:  # versioned, as in AWS
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        for key, path in files:
            s3.upload_file(str(path), "landing", key)
        ledger = create_table(boto3.client("dynamodb", region_name="eu-west-1"), "ledger")

        started = time.perf_counter()
        moved = ingest(
            s3,
            "landing",
            "raw",
            "quarantine",
            set(contracts),
            limit=max(len(files), 1),
            record=lambda entry: record_all(ledger, [entry]),
        )
        for key in moved["quarantined"]:
            reason = json.loads(
                s3.get_object(Bucket="quarantine", Key=quarantined_file_key(f"landing/{key}") + ".reason.json")[
                    "Body"
                ].read()
            )["reason"]
            reports[key].file_quarantined, reports[key].reasons = True, [reason]
        stages.append(
            ("ingest", len(files), len(moved["moved"]), len(moved["quarantined"]), time.perf_counter() - started)
        )
        landing_of = {raw_key: landing_key_of(s3, "raw", raw_key) or raw_key for raw_key in moved["moved"]}

        started = time.perf_counter()
        verdicts = [validate_object(s3, "raw", key, "quarantine", contracts) for key in moved["moved"]]
        record_all(ledger, [validate_entry(key, v) for key, v in zip(moved["moved"], verdicts, strict=True)])
        valid = [v for v in verdicts if v["valid"]]
        for verdict in verdicts:
            if not verdict["valid"]:
                report = reports[landing_of[verdict["source"].removeprefix("s3://raw/")]]
                report.file_quarantined, report.reasons = True, [verdict["reason"]]
        stages.append(
            ("validate", len(verdicts), len(valid), len(verdicts) - len(valid), time.perf_counter() - started)
        )

        own_session = spark is None
        if valid and own_session:
            started = time.perf_counter()
            spark = local_spark("pipeline-local")
            print(f"local Spark started in {time.perf_counter() - started:.1f} s")

        def write_text(location: str, text: str) -> None:
            s3.put_object(
                Bucket="staging", Key=Path(location).relative_to(mirror["staging"]).as_posix(), Body=text.encode()
            )

        def delete_texts(location: str) -> None:
            delete_under(s3, "staging", Path(location).relative_to(mirror["staging"]).as_posix() + "/")

        def stage(verdict: dict[str, Any]) -> dict[str, Any]:
            raw = parse_raw_key(verdict["key"])
            contract = contracts[raw.contract_name]
            local = mirror["raw"] / raw.key
            local.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file("raw", raw.key, str(local))
            with local.open("rb") as handle:
                header = read_header(handle, raw.file, contract.format, contract.column_names)
            return run_raw_to_staging(
                spark,
                contract,
                raw,
                raw_root=str(mirror["raw"]),
                staging_root=str(mirror["staging"]),
                quarantine_root=str(mirror["quarantine"]),
                header=header,
                updated_at=timestamp(datetime.now(UTC)),
                write_text=write_text,
                delete_texts=delete_texts,
                run_id=uuid.uuid4().hex,  # Glue's job run id in AWS
                landing_key=landing_of[verdict["key"]],
                size=local.stat().st_size,
            )

        started = time.perf_counter()
        totals = [0, 0, 0]
        # One Glue run per file in AWS; here files share one session, two at a time (Spark runs the jobs of
        # several threads at once, and a small file's run is mostly waiting on the driver)
        with ThreadPoolExecutor(max_workers=PARALLEL_FILES) as pool:
            profiles = list(pool.map(stage, valid))
        for verdict, profile in zip(valid, profiles, strict=True):
            report = reports[landing_of[verdict["key"]]]
            report.rows_in, report.rows_written = profile["rows_in"], profile["rows_written"]
            report.rows_quarantined = profile["rows_rejected"]
            report.reasons = row_reasons(mirror["quarantine"] / quarantined_rows_prefix(parse_raw_key(verdict["key"])))
            totals = [totals[0] + report.rows_in, totals[1] + report.rows_written, totals[2] + report.rows_quarantined]
        stages.append(("raw_to_staging", *totals, time.perf_counter() - started))

        started = time.perf_counter()
        gates = [(v, gate_batch(s3, "staging", v["key"], contracts)) for v in valid]
        record_all(ledger, [gate_entry(v["key"], gate) for v, gate in gates])
        for verdict, gate in gates:
            report = reports[landing_of[verdict["key"]]]
            report.gate = "passed" if gate["passed"] else "failed"
            report.reasons += [f"gate: {failure}" for failure in gate["failures"]]
        passed = sum(gate["passed"] for _, gate in gates)
        stages.append(("gate", len(gates), passed, len(gates) - passed, time.perf_counter() - started))

        started = time.perf_counter()
        curated_rows = 0
        curated = local_curated(mirror["curated"])
        for contract in contracts.values():
            if contract.check_only or spark is None:
                continue
            # one promotion per table over every batch that passed (in AWS: on a schedule, while any waits)
            outcome = promote(
                spark,
                contract,
                marker_keys=keys_under(s3, "staging", f"_runs/{table_prefix(contract.dataset, contract.table)}"),
                staging_root=str(mirror["staging"]),
                curated=curated,
                write_staging_text=write_text,
                delete_staging_text=lambda location: delete_under(
                    s3, "staging", Path(location).relative_to(mirror["staging"]).as_posix()
                ),
            )
            if outcome is not None:
                build, runs = outcome
                curated_rows += build.rows
                record_all(ledger, promoted_entries(build, runs))
        stages.append(("staging_to_curated", totals[1], curated_rows, 0, time.perf_counter() - started))
        if spark is not None and own_session:
            spark.stop()
        (out / LEDGER).write_text(json.dumps(ledger.items(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / REPORT).write_text(
        json.dumps([asdict(r) for r in reports.values()], indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return list(reports.values()), stages


if __name__ == "__main__":
    sys.exit(main())
