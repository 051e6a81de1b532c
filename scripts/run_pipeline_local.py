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
from collections.abc import Callable
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

from pipeline.layout import LOCAL_RUN  # noqa: E402 (the path above first)

BUCKETS = ("landing", "raw", "quarantine", "staging", "curated")
CATALOG_DATABASE = "catalog"
"""The workspace's Glue database, in moto: its tables and their partitions are written to <out>/catalog.json."""
CATALOG = "catalog.json"
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
        help="a folder laid out as landing is: <dataset>/<table>/<file> (default: the two example datasets' samples)",
    )
    parser.add_argument(
        "--contracts",
        type=Path,
        action="append",
        default=[],
        help="a folder of more data contracts, beside the repository's contracts/ (repeatable)",
    )
    parser.add_argument(
        "--source",
        metavar="URL",
        default=os.environ.get("PIPELINE_SOURCE") or None,
        help="a database to extract from first (postgresql://user:password@host:5432/database; default: "
        "$PIPELINE_SOURCE, which keeps the password off the command line): every table of sources/ (a source file "
        "per table, beside its contract), each read whole, as a first run in AWS does",
    )
    parser.add_argument(
        "--sources",
        type=Path,
        default=ROOT / "sources",
        help="the folder of source files --source reads (default: the repository's sources/)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / LOCAL_RUN,
        help="work folder; the curated tables end in <out>/curated, the report in <out>/report.json",
    )
    args = parser.parse_args(argv)
    if args.data is not None and not args.data.is_dir():
        parser.error(f"--data {args.data} is not a folder (expected <dataset>/<table>/<file> inside it)")
    extraction = None
    if args.source is not None:
        from pipeline.sources import Connection, SourceError

        try:
            extraction = Extraction(Connection.from_url(args.source), args.sources)
        except SourceError as error:
            parser.error(str(error))
    from pipeline.extract import ExtractError
    from pipeline.sources import SourceError

    try:
        reports, stages = run(args.data, args.contracts, args.out, extraction=extraction)
    except (ExtractError, SourceError) as error:  # a database or source file to fix: said, not a traceback
        print(error, file=sys.stderr)
        return 2
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
    catalog = json.loads((args.out / CATALOG).read_text(encoding="utf-8"))
    print(f"catalog (in AWS: the workspace's Glue database, queried in Athena): {args.out / CATALOG}")
    for name, table in sorted(catalog.items()):
        print(f"  {name}: {len(table['columns'])} columns, {len(table['partitions'])} partitions")
    return 0


class LocalPipeline:
    """The pipeline's steps on this machine, each as AWS runs it (the functions' logic against moto's S3 and
    DynamoDB, the jobs' functions on a local Spark writing a folder per bucket), for a caller to drive: `run`
    drives them once over a folder; tests drive them in rounds (bursts, repeats, crashes between steps). Use it
    inside moto's `mock_aws()`."""

    def __init__(self, out: Path, contracts: dict[str, Any], spark: Any = None) -> None:
        import boto3

        from pipeline.catalog import catalogued, table_input
        from pipeline.ledger import create_table

        self.out, self.contracts, self.spark = out, contracts, spark
        self.mirror = {name: out / name for name in BUCKETS}
        self.s3 = boto3.client("s3", region_name="eu-west-1")
        for name in BUCKETS:  # versioned, as in AWS
            self.s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
            self.s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        self.ledger = create_table(boto3.client("dynamodb", region_name="eu-west-1"), "ledger")
        self.landing_of: dict[str, str] = {}
        self.glue = boto3.client("glue", region_name="eu-west-1")
        self.glue.create_database(DatabaseInput={"Name": CATALOG_DATABASE})
        for contract in catalogued(contracts).values():  # as the ETL stack defines them
            self.glue.create_table(DatabaseName=CATALOG_DATABASE, TableInput=table_input(contract, "curated"))

    def ingest(self, limit: int) -> dict[str, Any]:
        """Landing -> raw (or quarantine), each file recorded in the ledger."""
        from lambdas.ingest.handler import run as ingest
        from lambdas.keys import landing_key_of
        from pipeline.ledger import record_all

        moved = ingest(
            self.s3,
            "landing",
            "raw",
            "quarantine",
            set(self.contracts),
            limit=limit,
            record=lambda entry: record_all(self.ledger, [entry]),
        )
        for raw_key in moved["moved"]:
            self.landing_of[raw_key] = landing_key_of(self.s3, "raw", raw_key) or raw_key
        return moved

    def validate(self, raw_keys: list[str]) -> list[dict[str, Any]]:
        from lambdas.validate.handler import ledger_entry, validate_object
        from pipeline.ledger import record_all

        verdicts = [validate_object(self.s3, "raw", key, "quarantine", self.contracts) for key in raw_keys]
        record_all(self.ledger, [ledger_entry(key, v) for key, v in zip(raw_keys, verdicts, strict=True)])
        return verdicts

    def _staging_key(self, location: str) -> str:
        return Path(location).relative_to(self.mirror["staging"]).as_posix()

    def write_staging_text(self, location: str, text: str) -> None:
        self.s3.put_object(Bucket="staging", Key=self._staging_key(location), Body=text.encode())

    def delete_staging_texts(self, location: str) -> None:
        from pipeline.s3_objects import delete_under

        delete_under(self.s3, "staging", self._staging_key(location) + "/")

    def stage(self, raw_key: str, read_whole: bool | None = None) -> dict[str, Any]:
        """raw_to_staging for one raw file: a Glue run of its own in AWS (a new run id each time).
        `read_whole` as validate found it (None: the job scans the file, as a run not told does)."""
        from etl_spark.jobs import run_raw_to_staging

        from pipeline.csv_format import read_header
        from pipeline.layout import parse_raw_key, timestamp

        raw = parse_raw_key(raw_key)
        contract = self.contracts[raw.contract_name]
        local = self.mirror["raw"] / raw.key
        local.parent.mkdir(parents=True, exist_ok=True)
        self.s3.download_file("raw", raw.key, str(local))
        with local.open("rb") as handle:
            header = read_header(handle, raw.file, contract.format, contract.column_names)
        return run_raw_to_staging(
            self.spark,
            contract,
            raw,
            raw_root=str(self.mirror["raw"]),
            staging_root=str(self.mirror["staging"]),
            quarantine_root=str(self.mirror["quarantine"]),
            header=header,
            updated_at=timestamp(datetime.now(UTC)),
            write_text=self.write_staging_text,
            delete_texts=self.delete_staging_texts,
            run_id=uuid.uuid4().hex,  # Glue's job run id in AWS
            landing_key=self.landing_of.get(raw_key),
            size=local.stat().st_size,
            multiline=read_whole,
        )

    def gate(self, raw_key: str) -> dict[str, Any]:
        from lambdas.gate.handler import gate_batch
        from lambdas.gate.handler import ledger_entry as gate_entry
        from pipeline.ledger import record_all

        result = gate_batch(self.s3, "staging", raw_key, self.contracts)
        record_all(self.ledger, [gate_entry(raw_key, result)])
        return result

    def run_keys(self, contract: Any) -> list[str]:
        from pipeline.layout import table_runs_prefix
        from pipeline.s3_objects import keys_under

        return keys_under(self.s3, "staging", table_runs_prefix(contract.dataset, contract.table))

    def promote(self, contract: Any, *, from_scratch: bool = False) -> tuple[Any, list[str]] | None:
        """One table's next curated build (in AWS: the scheduled promotion's Glue run), the ledger recording
        each file it took in."""
        from etl_spark.jobs import promote
        from etl_spark.local import local_curated

        from pipeline.builds import promoted_entries
        from pipeline.ledger import record_all

        outcome = promote(
            self.spark,
            contract,
            marker_keys=self.run_keys(contract),
            staging_root=str(self.mirror["staging"]),
            curated=local_curated(self.mirror["curated"]),
            from_scratch=from_scratch,
        )
        if outcome is not None:
            record_all(self.ledger, promoted_entries(*outcome))
        self.sync_catalog(contract)
        return outcome

    def sync_catalog(self, contract: Any) -> Any:
        """The table's catalog partitions brought to its current build's, as the promotion's Glue run does."""
        from etl_spark.local import local_curated

        from pipeline.builds import current_build
        from pipeline.catalog import sync_partitions

        current = current_build(local_curated(self.mirror["curated"]).read_text, contract.dataset, contract.table)
        return sync_partitions(self.glue, CATALOG_DATABASE, contract, current, "curated")

    def catalog(self) -> dict[str, Any]:
        """Each catalogued table: its columns, partition keys, and each partition's values and location."""
        from pipeline.catalog import catalogued, listed_partitions, table_name

        tables = {}
        for contract in catalogued(self.contracts).values():
            name = table_name(contract)
            table = self.glue.get_table(DatabaseName=CATALOG_DATABASE, Name=name)["Table"]
            partitions = listed_partitions(self.glue, CATALOG_DATABASE, name)
            tables[name] = {
                "contract": contract.name,
                "columns": [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]],
                "partition_keys": [k["Name"] for k in table["PartitionKeys"]],
                "partitions": {part["Values"][0]: part["StorageDescriptor"]["Location"] for part in partitions},
            }
        return tables


@dataclass(frozen=True)
class Extraction:
    """What `--source` asks of a run: every table of `sources` (source files) read from the database at
    `connection` into the run's landing folder first."""

    connection: Any
    sources: Path


def extract_sources(extraction: Extraction, contracts: dict[str, Any], folder: Path) -> list[tuple[str, int, float]]:
    """Each source's rows into `folder` (laid out as landing is), as the extractor writes them in AWS; each read
    whole (the run's folder starts empty, and with it the committed positions). (table, rows, seconds) each."""
    from pipeline.extract import connect, extract, memory_store
    from pipeline.sources import load_sources

    sources = load_sources(contracts, extraction.sources)
    if not sources:
        raise SystemExit(f"--source: no source file under {extraction.sources} (add <dataset>/<table>.yaml)")
    positions: dict[str, str] = {}
    done = []
    connection = connect(extraction.connection)
    try:
        for name, source in sorted(sources.items()):
            target = folder / name
            target.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            report = extract(
                connection,
                source,
                contracts[name],
                store=memory_store(f"sources/{name}.json", positions),
                write_file=lambda file, data, target=target: (target / file).write_bytes(data),
                started=datetime.now(UTC),
            )
            done.append((name, report.rows, time.perf_counter() - started))
    finally:
        connection.close()
    return done


def _active_spark() -> Any:
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


def run(
    data: Path | None,
    contracts_dirs: list[Path],
    out: Path,
    spark: Any = None,
    extraction: Extraction | None = None,
) -> tuple[list[FileReport], list[tuple[str, int, int, int, float]]]:
    """Every file of `data` (or the sample; only the extracted files where `extraction` is given without
    `data`) through the pipeline; (per-file reports, per-stage rows). A `spark` session given (the tests') is
    used and left running; else one is started and stopped."""
    from etl_spark.local import local_spark
    from moto import mock_aws

    from pipeline.contract import load_contracts
    from pipeline.job_arguments import read_whole_of
    from pipeline.layout import parse_raw_key, quarantined_file_key, quarantined_rows_prefix
    from pipeline.sample_data import write_appointments_sample, write_sample
    from pipeline.steps import PIPELINE, PipelineStep

    shutil.rmtree(out, ignore_errors=True)
    contracts = load_contracts()
    for directory in contracts_dirs:
        contracts |= load_contracts(directory)
    if extraction is not None:
        extracted = out / "extracted"
        for name, rows, seconds in extract_sources(extraction, contracts, extracted):
            print(f"extracted {name}: {rows} rows in {seconds:.2f} s ({rows / max(seconds, 1e-9):,.0f} rows/s)")
        if data is not None:
            shutil.copytree(data, extracted, dirs_exist_ok=True)
        data = extracted
    if data is None:
        # the two example datasets: diabetes/patients (real data, with every kind of defect) and
        # clinic/appointments (generated daily exports: a two-part key, partitioned by day, revisions)
        data = out / "sample"
        write_sample(data / "diabetes" / "patients")
        write_appointments_sample(data / "clinic" / "appointments")
    files = landing_files(data)
    reports = {key: FileReport(key, *(key.split("/")[:2] if key.count("/") == 2 else (None, None))) for key, _ in files}
    stages: list[tuple[str, int, int, int, float]] = []

    with mock_aws():
        pipeline = LocalPipeline(out, contracts, spark)
        s3 = pipeline.s3
        for key, path in files:
            s3.upload_file(str(path), "landing", key)

        valid: list[dict[str, Any]] = []
        totals = [0, 0, 0]
        # a session this run starts is stopped at its end; one the process already runs (a test's, which getOrCreate
        # would hand back) is left running for its owner
        own_session = spark is None and _active_spark() is None

        def ingest() -> tuple[int, int, int]:
            moved = pipeline.ingest(limit=max(len(files), 1))
            for key in moved["quarantined"]:
                reason_key = quarantined_file_key(f"landing/{key}") + ".reason.json"
                reason = json.loads(s3.get_object(Bucket="quarantine", Key=reason_key)["Body"].read())["reason"]
                reports[key].file_quarantined, reports[key].reasons = True, [reason]
            valid.extend({"key": key} for key in moved["moved"])  # what validate reads next
            return len(files), len(moved["moved"]), len(moved["quarantined"])

        def validate() -> tuple[int, int, int]:
            verdicts = pipeline.validate([v["key"] for v in valid])
            valid[:] = [v for v in verdicts if v["valid"]]
            for verdict in verdicts:
                if not verdict["valid"]:
                    report = reports[pipeline.landing_of[verdict["source"].removeprefix("s3://raw/")]]
                    report.file_quarantined, report.reasons = True, [verdict["reason"]]
            return len(verdicts), len(valid), len(verdicts) - len(valid)

        def raw_to_staging() -> tuple[int, int, int]:
            nonlocal spark
            if valid and spark is None:
                started = time.perf_counter()
                pipeline.spark = spark = local_spark("pipeline-local")
                print(f"local Spark started in {time.perf_counter() - started:.1f} s")
            # One Glue run per file in AWS; here files share one session, two at a time (Spark runs the jobs
            # of several threads at once, and a small file's run is mostly waiting on the driver)
            with ThreadPoolExecutor(max_workers=PARALLEL_FILES) as pool:
                read_whole = [read_whole_of(v["read_whole"]) for v in valid]  # as validate found them
                profiles = list(pool.map(pipeline.stage, [v["key"] for v in valid], read_whole))
            for verdict, profile in zip(valid, profiles, strict=True):
                report = reports[pipeline.landing_of[verdict["key"]]]
                report.rows_in, report.rows_written = profile["rows_in"], profile["rows_written"]
                report.rows_quarantined = profile["rows_rejected"]
                report.reasons = row_reasons(
                    pipeline.mirror["quarantine"] / quarantined_rows_prefix(parse_raw_key(verdict["key"]))
                )
                rows = (report.rows_in, report.rows_written, report.rows_quarantined)
                totals[:] = [a + b for a, b in zip(totals, rows, strict=True)]
            return totals[0], totals[1], totals[2]

        def gate() -> tuple[int, int, int]:
            gates = [(v, pipeline.gate(v["key"])) for v in valid]
            for verdict, result in gates:
                report = reports[pipeline.landing_of[verdict["key"]]]
                report.gate = "passed" if result["passed"] else "failed"
                report.reasons += [f"gate: {failure}" for failure in result["failures"]]
            passed = sum(result["passed"] for _, result in gates)
            return len(gates), passed, len(gates) - passed

        def staging_to_curated() -> tuple[int, int, int]:
            curated_rows = 0
            for contract in contracts.values():
                if contract.check_only or spark is None:
                    continue
                # one build per table over every batch that passed (in AWS: on a schedule, while any waits)
                outcome = pipeline.promote(contract)
                if outcome is not None:
                    curated_rows += outcome[0].rows
            return totals[1], curated_rows, 0

        run_step: dict[PipelineStep, Callable[[], tuple[int, int, int]]] = {
            PipelineStep.INGEST: ingest,
            PipelineStep.VALIDATE: validate,
            PipelineStep.RAW_TO_STAGING: raw_to_staging,
            PipelineStep.GATE: gate,
            PipelineStep.STAGING_TO_CURATED: staging_to_curated,
        }
        for step in PIPELINE:  # the state machine's order (pipeline/steps.py), between the schedules' steps
            started = time.perf_counter()
            counts = run_step[step]()
            stages.append((step.value, *counts, time.perf_counter() - started))
        if spark is not None and own_session:
            spark.stop()
        (out / LEDGER).write_text(
            json.dumps(pipeline.ledger.items(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (out / CATALOG).write_text(json.dumps(pipeline.catalog(), indent=2) + "\n", encoding="utf-8")
    (out / REPORT).write_text(
        json.dumps([asdict(r) for r in reports.values()], indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return list(reports.values()), stages


if __name__ == "__main__":
    sys.exit(main())
