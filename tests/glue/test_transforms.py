"""raw_to_staging and staging_to_curated on a local SparkSession: every defect kind, the invariant,
and agreement with the Python engine of the contract."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from etl_spark.io import read_raw_csv
from etl_spark.jobs import (
    HUGE_METHOD_LIMIT,
    build_onto_current,
    promote,
    run_raw_to_staging,
    run_staging_to_curated,
)
from etl_spark.local import local_curated
from etl_spark.transforms import REASON, raw_to_staging, staging_to_curated
from moto import mock_aws
from pyspark.sql import functions as F

from pipeline.builds import Build, current_build, held_runs
from pipeline.contract import load_contracts
from pipeline.csv_format import read_header
from pipeline.layout import parse_raw_key, passed_runs, promotion_plan
from pipeline.s3_objects import delete_under, keys_under
from pipeline.sample_data import write_sample

CONTRACT = load_contracts()["diabetes/patients"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("sample"))


def header_of(path: Path) -> list[str]:
    with path.open("rb") as handle:
        return read_header(handle, path.name, CONTRACT.format, CONTRACT.column_names)


def transform(spark, path: Path):
    header = header_of(path)
    df = read_raw_csv(spark, str(path), CONTRACT.format, len(header))
    return raw_to_staging(
        df, CONTRACT, header, created_at="20261122T000000Z", updated_at="20261122T000500Z", source_file=str(path)
    )


@pytest.fixture(scope="module")
def defects(spark, sample):
    result = transform(spark, sample.defects)
    rejected = {r["raw_patient_id"]: r[REASON] for r in result.rejected.collect()}
    return result, rejected


def test_every_defect_kind_is_rejected_with_its_reason(defects, sample) -> None:
    _, rejected = defects
    assert set(rejected) == set(sample.expected_rejections)
    for patient, reason in sample.expected_rejections.items():
        assert rejected[patient].startswith(reason), (patient, rejected[patient])


def test_rows_in_equal_rows_written_plus_rejected(defects, sample) -> None:
    result, rejected = defects
    lines = len(sample.defects.read_text().splitlines()) - 1
    assert result.rows_in == lines
    assert result.rows_in == result.staging.count() + len(rejected)


def test_a_repeated_key_is_staged_with_its_row_and_curated_keeps_the_later_one(defects) -> None:
    result, _ = defects
    staged = sorted(result.staging.where("patient_id = 'P00308'").collect(), key=lambda r: r["source_row"])
    assert [r["target"] for r in staged][-1] == 123.0 and len(staged) == 2, "both rows, the later last"
    row = staged[-1]
    assert row["source_file"].endswith("patients-defects.csv")
    assert str(row["created_at"]) == "2026-11-22 00:00:00" and str(row["updated_at"]) == "2026-11-22 00:05:00"
    (curated,) = staging_to_curated(result.staging, CONTRACT).where("patient_id = 'P00308'").collect()
    assert curated["target"] == 123.0, "the later duplicate"


def test_accepted_edge_values_and_unknown_columns(defects) -> None:
    result, _ = defects
    assert result.unknown_columns == ["notes"]
    assert "notes" not in result.staging.columns
    assert result.staging.where("patient_id = 'P00306'").first()["s1"] is None, "nullable column left empty"
    assert result.staging.where("patient_id = 'P00307'").first()["bp"] == 88.5, "whitespace trimmed"
    assert dict(result.staging.dtypes)["age"] == "bigint" and dict(result.staging.dtypes)["bmi"] == "double"


def test_clean_file_loses_nothing(spark, sample) -> None:
    result = transform(spark, sample.clean)
    assert result.rows_in == 300 == result.staging.count()
    assert result.rejected.count() == 0


VALUES = [
    "40",
    " 40 ",
    "\t40",
    "40\u00a0",
    "NA",
    "40.0",
    "40.5",
    "forty",
    "",
    "121",
    "-1",
    "1_000",
    "nan",
    "NaN",
    "inf",
    "1e999",
    "2.5e1",
    "+7",
    ".5",
    "5.",
    "1e",
    "0x10",
    "١٢",
    # what Java's parser (Spark's cast) reads and the contract's syntax does not: etl_spark.rules
    "1d",
    "2F",
    "0x1p3",
    "Infinity",
    "-Infinity",
    "+inf",
    "5\t",
    "1e+",
    "--1",
    "1.2.3",
    "+.5e-3",
    ".",
    "e5",
    "1E5",
    "-0",
    # a decimal comma: etl_spark.rules.ROW_NUMBER_CHARACTERS lets a comma through, Java's parser does not
    "40,5",
    "1,000",
    # a final line break: Java's `$` matches before it and its parser trims it; the rules end in `\z`
    "40\n",
    "P54321\n",
]


def bounds_of(column: str) -> list[str]:
    """A numeric column's bounds and the values just past them (an integer's neighbours), as text."""
    rules = CONTRACT.column(column)
    step = 1 if rules.type == "integer" else 0.01
    texts = []
    for bound, outside in ((rules.min, -step), (rules.max, step)):
        if bound is not None:
            texts += [f"{bound:g}", f"{bound + outside:g}"]
    return texts


def test_spark_and_python_engines_agree(spark, tmp_path: Path) -> None:
    """The contract's rules exist twice (Column.check and Spark expressions): they must not drift.
    One row per (column, value), every other column valid, the bounds of each column among the values; the
    verdicts (staged or rejected) and the reasons must be identical."""
    header = CONTRACT.column_names
    cases = [
        (column, value)
        for column in ("age", "bmi", "sex", "patient_id", "s1", "target")
        for value in (*VALUES, "P12345", "p1", *bounds_of(column))
    ]
    lines = [",".join(header)]
    for i, (column, value) in enumerate(cases):
        row = {"patient_id": f"P{i:05d}", "age": "40", "sex": "1", "bmi": "25", "bp": "80", "target": "100"}
        row |= {c: "" for c in header if c not in row}
        row[column] = '"' + (value if column != "patient_id" or value != "P12345" else f"P9{i:04d}") + '"'
        lines.append(",".join(row[c] for c in header))
    path = tmp_path / "values.csv"
    path.write_text("\n".join(lines) + "\n")
    result = transform(spark, path)
    spark_reasons = {r["source_row"]: r[REASON] for r in result.rejected.collect()}
    assert None not in spark_reasons.values(), "a row rejected with no reason"
    row_ids = sorted(
        r["source_row"]
        for r in result.rejected.select("source_row").union(result.staging.select("source_row")).collect()
    )
    assert len(row_ids) == len(cases)
    for row_id, (column, value) in zip(row_ids, cases, strict=True):
        if column == "patient_id" and value == "P12345":
            value = f"P9{row_ids.index(row_id):04d}"
        _, python_reason = CONTRACT.column(column).check(value)
        assert spark_reasons.get(row_id) == python_reason, (column, value)


class Staging:
    """The staging bucket as the jobs and the gate see it: Parquet on the local disk (Spark's file system),
    profiles and verdicts in an emulated S3 bucket (the gate Lambda's own code reads and writes them)."""

    BUCKET = "staging"

    def __init__(self, s3, root: Path) -> None:
        self.s3, self.root = s3, root
        s3.create_bucket(Bucket=self.BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})

    def _key(self, location: str) -> str:
        return Path(location).relative_to(self.root).as_posix()

    def write_text(self, location: str, text: str) -> None:
        self.s3.put_object(Bucket=self.BUCKET, Key=self._key(location), Body=text.encode())

    def delete_texts(self, location: str) -> None:
        delete_under(self.s3, self.BUCKET, self._key(location) + "/")

    def delete_text(self, location: str) -> None:
        self.s3.delete_object(Bucket=self.BUCKET, Key=self._key(location))

    def run_keys(self) -> list[str]:
        return keys_under(self.s3, self.BUCKET, "_runs/")

    def gate(self, raw) -> dict:
        # imported here: the Lambda modules read their Powertools settings on import, which tests/lambdas sets
        from lambdas.gate.handler import gate_batch

        return gate_batch(self.s3, self.BUCKET, raw.key, load_contracts())


@pytest.fixture
def staging(tmp_path: Path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        yield Staging(boto3.client("s3", region_name="eu-west-1"), tmp_path / "staging")


def stage(
    spark, staging: Staging, tmp_path: Path, raw, body: bytes, run_id: str, contract=CONTRACT, header=None
) -> dict:
    """raw_to_staging on `body` landed as `raw`, as run `run_id` (under `contract`; `header`, the file's names, as
    validate read them: by default as the diabetes contract reads them)."""
    target = tmp_path / "raw" / raw.key
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body)
    return run_raw_to_staging(
        spark,
        contract,
        raw,
        raw_root=str(tmp_path / "raw"),
        staging_root=str(staging.root),
        quarantine_root=str(tmp_path / "quarantine"),
        header=header or header_of(target),
        updated_at=raw.created_at,
        write_text=staging.write_text,
        delete_texts=staging.delete_texts,
        run_id=run_id,
        size=len(body),
    )


def build(spark, staging: Staging, root: Path, runs: list[str], contract=CONTRACT, from_scratch=False) -> Build:
    """A build of `runs` onto the table's current build in `root` (from them alone `from_scratch`)."""
    return build_onto_current(
        spark,
        contract,
        staging_root=str(staging.root),
        runs=runs,
        curated=local_curated(root),
        from_scratch=from_scratch,
    )


def promote_table(spark, contract, staging: Staging, store):
    """The table's next build as the scheduled promotion makes it, over what `staging` holds."""
    return promote(
        spark,
        contract,
        marker_keys=staging.run_keys(),
        staging_root=str(staging.root),
        curated=store,
    )


def current_rows(spark, root: Path, contract=CONTRACT):
    """What a reader of the table reads: its current build."""
    store = local_curated(root)
    current = current_build(store.read_text, contract.dataset, contract.table)
    assert current is not None, "no build is current"
    from etl_spark.jobs import read_build

    return read_build(spark, contract, store, current)


def test_jobs_write_staging_quarantine_profile_and_curated(spark, sample, staging, tmp_path: Path) -> None:
    batches = []
    # both files landed in the same second: one partition, two batches (neither may overwrite the other)
    for path in (sample.clean, sample.defects):
        raw = parse_raw_key(f"diabetes/patients/created_at=20261121T000000Z/{path.name}")
        report = stage(spark, staging, tmp_path, raw, path.read_bytes(), run_id=f"jr_{path.stem.replace('-', '_')}")
        assert report["rows_in"] == report["rows_written"] + report["rows_rejected"]
        assert staging.gate(raw)["passed"], "the gate on the profile the job wrote"
        batches.append(f"{raw.batch}/run={report['run_id']}")
    rows_dir = tmp_path / "quarantine/rows/diabetes/patients/created_at=20261121T000000Z/file=patients-defects.csv"
    lines = [json.loads(line) for p in rows_dir.glob("*.json") for line in p.read_text().splitlines()]
    reasons = {line["raw_patient_id"]: line[REASON] for line in lines}
    assert len(lines) == len(reasons) and set(reasons) == set(sample.expected_rejections)
    assert all(reasons[patient].startswith(reason) for patient, reason in sample.expected_rejections.items())
    assert passed_runs(staging.run_keys()) == sorted(batches)
    store = local_curated(tmp_path / "curated")
    built, runs = promote_table(spark, CONTRACT, staging, store)
    curated = current_rows(spark, tmp_path / "curated")
    assert built.rows == curated.count() == 300 + 137, "every accepted row, the repeated key's later one"
    assert (built.number, built.merged, built.from_scratch, runs) == (1, 2, True, sorted(batches))
    assert curated.columns == ["patient_id", *CONTRACT.features, "target", "created_at", "source_file", "source_row"]
    assert held_runs(store.read_text, built) == sorted(batches), "build 1's manifest: the runs it holds"
    assert promote_table(spark, CONTRACT, staging, store) is None, "nothing waits: no build"
    assert current_build(store.read_text, "diabetes", "patients") == built
    with pytest.raises(RuntimeError, match="nothing to promote"):
        build(spark, staging, tmp_path / "c", [])


def test_a_re_run_that_fails_the_gate_leaves_nothing_of_the_file_promoted(spark, sample, staging, tmp_path) -> None:
    """The verdict belongs to the run that wrote the data: a pass, then a re-run of the same raw key whose
    data fail the gate (a run that dies half-way likewise) leaves no pass standing and no earlier data."""
    raw = parse_raw_key("diabetes/patients/created_at=20261121T000000Z/visits.csv")
    stage(spark, staging, tmp_path, raw, sample.clean.read_bytes(), run_id="jr_first")
    assert staging.gate(raw)["passed"]
    assert passed_runs(staging.run_keys()) == [f"{raw.batch}/run=jr_first"]

    header, *rows = sample.clean.read_text().splitlines()
    broken = "\n".join([header, *rows[:5], *[r.replace(",", ",x", 1) for r in rows[5:]]]) + "\n"
    report = stage(spark, staging, tmp_path, raw, broken.encode(), run_id="jr_second")
    assert report["rows_rejected"] > report["rows_written"]
    verdict = staging.gate(raw)
    assert not verdict["passed"] and verdict["verdict"].endswith("/run=jr_second/_GATE_FAILED.json")
    assert passed_runs(staging.run_keys()) == [], "the earlier pass is gone with its run"
    assert [p.name for p in (staging.root / raw.batch).iterdir()] == ["run=jr_second"], "the earlier data too"

    with pytest.raises(ValueError, match="header"):  # a run that dies after clearing the batch
        stage(spark, staging, tmp_path, raw, b"patient_id\nP00001\n", run_id="jr_third")
    assert staging.run_keys() == [] and not (staging.root / raw.batch).exists()
    with pytest.raises(RuntimeError, match="0 staged runs"):
        staging.gate(raw)


def test_two_runs_of_one_file_at_once_are_never_promoted_together(spark, sample, staging, tmp_path) -> None:
    """Overlapping runs (a duplicate event) each leave a profile: the gate judges neither, and two passes of
    one batch are refused rather than promoted twice."""
    raw = parse_raw_key("diabetes/patients/created_at=20261121T000000Z/visits.csv")
    stage(spark, staging, tmp_path, raw, sample.clean.read_bytes(), run_id="jr_one")
    staging.gate(raw)
    (profile,) = [k for k in staging.run_keys() if k.endswith("profile.json")]
    for name in ("profile.json", "_GATE_PASSED.json"):  # a second run's, written while the first ran
        body = staging.s3.get_object(Bucket=staging.BUCKET, Key=profile.replace("profile.json", name))["Body"]
        staging.s3.put_object(Bucket=staging.BUCKET, Key=f"_runs/{raw.batch}/run=jr_two/{name}", Body=body.read())
    with pytest.raises(RuntimeError, match="2 staged runs"):
        staging.gate(raw)
    with pytest.raises(RuntimeError, match="more than one run"):
        passed_runs(staging.run_keys())


def test_a_run_id_that_cannot_name_a_folder_is_refused_before_anything_is_deleted(spark, sample, staging) -> None:
    raw = parse_raw_key("diabetes/patients/created_at=20261121T000000Z/visits.csv")
    staging.write_text(str(staging.root / f"_runs/{raw.batch}/run=jr_1/profile.json"), "{}")
    with pytest.raises(ValueError, match=r"run id '\.\./x' cannot name a folder"):
        run_raw_to_staging(
            spark,
            CONTRACT,
            raw,
            raw_root="unused",
            staging_root=str(staging.root),
            quarantine_root="unused",
            header=CONTRACT.column_names,
            updated_at=raw.created_at,
            write_text=staging.write_text,
            delete_texts=staging.delete_texts,
            run_id="../x",
        )
    assert staging.run_keys() == [f"_runs/{raw.batch}/run=jr_1/profile.json"]


def test_the_smoke_check_file_passes_the_gate_and_is_never_promoted(spark, tmp_path: Path) -> None:
    """What the deploy smoke check lands runs through the same job functions as a real file: staged,
    nothing rejected, its profile passes its contract's gate; promoting it is refused and curated stays empty."""
    import json

    from infra.smoke import check_file
    from pipeline.contract import contract_named, contracts_from_json, contracts_to_json
    from pipeline.gate import evaluate

    contracts = contracts_from_json(contracts_to_json(load_contracts()))  # as the Glue jobs get them
    check = load_contracts()["platform_check/smoke"]
    landing_key, body = check_file(check, "20261201T000000Z-test")
    raw = parse_raw_key(landing_key.replace("/smoke-", "/created_at=20261201T000000Z/smoke-", 1))
    roots = {name: str(tmp_path / name) for name in ("raw", "staging", "quarantine", "curated")}
    (Path(roots["raw"]) / raw.key).parent.mkdir(parents=True)
    (Path(roots["raw"]) / raw.key).write_bytes(body)
    written: dict[str, str] = {}
    report = run_raw_to_staging(
        spark,
        contract_named(contracts, raw.contract_name),
        raw,
        raw_root=roots["raw"],
        staging_root=roots["staging"],
        quarantine_root=roots["quarantine"],
        header=body.decode().splitlines()[0].split(","),
        updated_at="20261201T000001Z",
        write_text=written.__setitem__,
        delete_texts=lambda prefix: None,
        run_id="jr_smoke",
    )
    assert (report["rows_in"], report["rows_rejected"]) == (3, 0)
    (profile,) = [json.loads(text) for key, text in written.items() if key.endswith("profile.json")]
    assert evaluate(check, profile).passed
    with pytest.raises(RuntimeError, match="check-only"):
        run_staging_to_curated(
            spark,
            check,
            staging_root=roots["staging"],
            runs=[f"{raw.batch}/run=jr_smoke"],
            curated=local_curated(Path(roots["curated"])),
            onto=None,
        )
    assert not Path(roots["curated"]).exists()


def test_a_header_the_job_cannot_use_is_refused_without_quoting_what_may_be_data(spark) -> None:
    """Validate stops such a file first; if it ever let one through, the job's error (which reaches the
    failure notification) names the contract's columns only, never a field of a first line that is data."""
    header = ["P0000042", "61", *CONTRACT.column_names[2:], "61"]
    frame = spark.createDataFrame([], "_f0 string")
    refused = r"lacks the columns \['patient_id', 'age'\]; the header repeats 1 name"
    with pytest.raises(ValueError, match=refused) as caught:
        raw_to_staging(
            frame, CONTRACT, header, created_at="20261122T000000Z", updated_at="20261122T000500Z", source_file="x.csv"
        )
    assert "P0000042" not in str(caught.value) and "61" not in str(caught.value)


def test_a_column_whose_name_holds_a_dot_is_staged_profiled_and_built(spark, staging, tmp_path) -> None:
    """Spark reads an unquoted `unit.price` as a field of a struct `unit`: every name the job hands Spark is
    quoted, from the staged rows' columns to the gate's figures and the build."""
    from pipeline.contract import parse_contract

    dotted = parse_contract(
        {
            "dataset": "shop",
            "table": "prices",
            "key": ["sku"],
            "features": ["unit.price"],
            "label": "qty",
            "columns": [
                {"name": "sku", "type": "string", "nullable": False},
                {"name": "unit.price", "type": "double", "nullable": True},
                {"name": "qty", "type": "integer", "nullable": True},
            ],
            "quality": {"min_rows": 1},
        }
    )
    raw = parse_raw_key("shop/prices/created_at=20261122T000000Z/a.csv")
    body = b"sku,unit.price,qty\nA,1.5,2\nB,x,3\nC,2.5,4\n"
    report = stage(spark, staging, tmp_path, raw, body, "jr_1", contract=dotted, header=["sku", "unit.price", "qty"])
    assert (report["rows_in"], report["rows_written"], report["rows_rejected"]) == (3, 2, 1)
    assert report["columns"]["unit.price"] == {"nulls": 0, "min": 1.5, "max": 2.5, "mean": 2.0}
    built = build(spark, staging, tmp_path / "curated", [f"{raw.batch}/run=jr_1"], contract=dotted)
    rows = current_rows(spark, tmp_path / "curated", contract=dotted).collect()
    assert built.rows == 2 and sorted((r["sku"], r["unit.price"]) for r in rows) == [("A", 1.5), ("C", 2.5)]


def _codegen_stages(plan):
    """The whole-stage-codegen nodes of a physical plan (a JVM object)."""
    if plan.getClass().getSimpleName() == "WholeStageCodegenExec":
        yield plan
    children = plan.children().iterator()
    while children.hasNext():
        yield from _codegen_stages(children.next())


@pytest.mark.parametrize("name", sorted(load_contracts()))
def test_a_contracts_checks_compile_into_methods_the_jit_compiles(spark, sample, name: str) -> None:
    """Over HUGE_METHOD_LIMIT bytes of bytecode, Spark gives up whole-stage codegen for the checks and runs
    a projection per step (2.3x the time of raw_to_staging's checks on 1M rows): a contract's rules, or the
    SQL they become, must stay within it. Compiled as the job compiles them, nothing run."""
    contract = load_contracts()[name]
    header = contract.column_names
    raw = read_raw_csv(spark, str(sample.clean), contract.format, len(header))
    checked = raw_to_staging(
        raw, contract, header, created_at="20261122T000000Z", updated_at="20261122T000000Z", source_file="f"
    ).checked
    compiler = spark._jvm.org.apache.spark.sql.catalyst.expressions.codegen.CodeGenerator
    stages = list(_codegen_stages(checked._jdf.queryExecution().executedPlan()))
    assert stages, "the checks are not whole-stage code-generated at all"
    for stage in stages:
        largest = compiler.compile(stage.doCodeGen()._2())._2().maxMethodCodeSize()
        assert largest <= int(HUGE_METHOD_LIMIT[1]), (
            f"{name}: a generated method of {largest} bytes, over {HUGE_METHOD_LIMIT[1]}: Spark would run this "
            "contract's checks without whole-stage codegen (the same rows, about twice the time)"
        )


def versioned_contract(version: str | None):
    from pipeline.sample_data import prices_contract

    return prices_contract(deletes=False, version=version)


def staged_rows(spark, rows: list[tuple[str, int, float, str, str, int]]):
    """Staging rows: (sku, seq, price, landed at, file, row)."""
    from datetime import datetime

    return spark.createDataFrame(
        [(sku, seq, price, datetime.fromisoformat(at), f"s3://raw/{f}", row) for sku, seq, price, at, f, row in rows],
        "sku string, seq bigint, price double, created_at timestamp, source_file string, source_row bigint",
    )


LANDINGS = [  # one key; the newest data (seq 7) landed in the middle, an older extract (seq 6) landed last
    ("A", 5, 50.0, "2026-11-01 00:00:00", "first.csv", 0),
    ("A", 7, 70.0, "2026-11-02 00:00:00", "second.csv", 0),
    ("A", 6, 60.0, "2026-11-03 00:00:00", "late-backfill.csv", 0),
]


@pytest.mark.parametrize(("version", "kept"), [("seq", 70.0), (None, 60.0)])
def test_curated_keeps_the_highest_version_whatever_order_files_land_in(spark, version, kept) -> None:
    """With a version column a late older extract never overwrites newer data; without one, the latest
    landed row wins (all the pipeline knows)."""
    contract = versioned_contract(version)
    for order in (LANDINGS, LANDINGS[::-1]):
        (row,) = staging_to_curated(staged_rows(spark, order), contract).collect()
        assert row["price"] == kept
    assert staging_to_curated(staged_rows(spark, LANDINGS), contract).columns == [
        "sku",
        "seq",
        "price",
        "created_at",
        "source_file",
        "source_row",
    ]


def test_files_landed_in_the_same_second_are_ordered_by_name_and_line_not_by_generated_ids(spark) -> None:
    """Row numbers are generated per file (its partitions' ids in the high bits): across files they say nothing,
    so a rebuild must not let them pick the winner. Same second: the file named last wins, then its last line."""
    same_second = [
        ("A", 1, 10.0, "2026-11-01 00:00:00", "b.csv", 3),
        ("A", 1, 20.0, "2026-11-01 00:00:00", "b.csv", 5),
        ("A", 1, 30.0, "2026-11-01 00:00:00", "a.csv", 1 << 40),  # a higher id, in the file named first
    ]
    for order in (same_second, same_second[::-1]):
        (row,) = staging_to_curated(staged_rows(spark, order), versioned_contract(None)).collect()
        assert row["price"] == 20.0


def test_a_promoted_batch_that_fails_the_gate_when_run_again_leaves_curated_by_a_build_from_scratch(
    spark, sample, staging, tmp_path
) -> None:
    """A file passed and was promoted, then was run again on data that fail the gate: the next build is from
    scratch (the table held rows of a run that no longer passes), so curated equals a build over what passes
    now. With max_row_drop_fraction 0 that build, which drops the file's keys, is refused and readers keep
    reading the build before; allowed, it is made current."""
    from dataclasses import replace

    from etl_spark.jobs import CuratedCheckFailed

    strict = replace(CONTRACT, quality=replace(CONTRACT.quality, max_row_drop_fraction=0.0))
    root = tmp_path / "curated"
    keys = []
    for path in (sample.clean, sample.defects):
        raw = parse_raw_key(f"diabetes/patients/created_at=20261121T000000Z/{path.name}")
        stage(spark, staging, tmp_path, raw, path.read_bytes(), run_id="jr_1")
        assert staging.gate(raw)["passed"]
        keys.append(raw)

    def promoted(contract):
        return promote_table(spark, contract, staging, local_curated(root))

    first, _ = promoted(strict)
    assert first.rows == 437 and promoted(strict) is None, "nothing waits after build 1"
    header, *rows = sample.clean.read_text().splitlines()
    broken = "\n".join([header, *[r.replace(",", ",x", 1) for r in rows]]) + "\n"
    stage(spark, staging, tmp_path, keys[0], broken.encode(), run_id="jr_2")
    assert not staging.gate(keys[0])["passed"]
    plan = promotion_plan(staging.run_keys(), held=held_runs(local_curated(root).read_text, first))
    assert (
        plan.from_scratch and plan.runs == [f"{keys[1].batch}/run=jr_1"] and plan.stale == [f"{keys[0].batch}/run=jr_1"]
    )
    with pytest.raises(CuratedCheckFailed, match=r"RowCount >= 1 x the previous build \(observed 137 after 437\)"):
        promoted(strict)
    assert current_rows(spark, root).count() == 437
    assert current_build(local_curated(root).read_text, "diabetes", "patients") == first, "build 1 is still current"
    second, runs = promoted(CONTRACT)
    assert (second.number, second.rows, second.from_scratch, runs) == (2, 137, True, plan.runs)
    assert held_runs(local_curated(root).read_text, second) == plan.runs, "the failed run is not held any more"
    assert promoted(CONTRACT) is None


def deleting_contract(version: str | None):
    """prices with a change extract's operation column: `D` deletes the key."""
    from pipeline.sample_data import prices_contract

    return prices_contract(version=version)


def change_rows(spark, rows: list[tuple[str, int, float, str | None, str, str]]):
    """Staging rows of a change extract: (sku, seq, price, op, landed at, file)."""
    from datetime import datetime

    return spark.createDataFrame(
        [(sku, seq, price, op, datetime.fromisoformat(at), f"s3://raw/{f}", 0) for sku, seq, price, op, at, f in rows],
        "sku string, seq bigint, price double, op string, created_at timestamp, source_file string, source_row bigint",
    )


CHANGES = [
    ("gone", 5, 50.0, "U", "2026-11-01 00:00:00", "a.csv"),
    ("gone", 7, 70.0, "D", "2026-11-02 00:00:00", "b.csv"),  # deleted by the newest row
    ("back", 5, 50.0, "D", "2026-11-01 00:00:00", "a.csv"),
    ("back", 6, 60.0, "I", "2026-11-02 00:00:00", "b.csv"),  # inserted again after its delete
    ("kept", 7, 70.0, "U", "2026-11-02 00:00:00", "b.csv"),
    ("kept", 6, 60.0, "D", "2026-11-03 00:00:00", "late.csv"),  # a late, older delete: history
    ("no-op", 1, 10.0, None, "2026-11-01 00:00:00", "a.csv"),  # no operation given: not a delete
]


def test_a_key_whose_latest_row_is_a_delete_leaves_curated_and_an_older_delete_deletes_nothing(spark) -> None:
    curated = staging_to_curated(change_rows(spark, CHANGES), deleting_contract("seq"))
    assert {r["sku"]: r["price"] for r in curated.collect()} == {"back": 60.0, "kept": 70.0, "no-op": 10.0}
    by_landing = staging_to_curated(change_rows(spark, CHANGES), deleting_contract(None))
    assert {r["sku"] for r in by_landing.collect()} == {"back", "no-op"}, "without a version: the latest landed"


def test_without_delete_when_a_delete_row_is_a_row_like_any_other(spark) -> None:
    from dataclasses import replace

    contract = replace(deleting_contract("seq"), delete_when=None)
    assert {r["sku"] for r in staging_to_curated(change_rows(spark, CHANGES), contract).collect()} == {
        "gone",
        "back",
        "kept",
        "no-op",
    }


def test_a_nullable_column_the_contract_gains_reads_as_null_in_batches_staged_before_it(
    spark, sample, staging, tmp_path
) -> None:
    """A contract change that adds a nullable column: the next build reads every batch as the contract now
    says, the new column null where a batch was staged before it existed (not missing from the build, or
    the build failing, depending on which file's schema Spark happened to take)."""
    from dataclasses import replace

    from pipeline.contract import Column
    from pipeline.layout import staging_prefix

    grown = replace(
        CONTRACT,
        columns=(*CONTRACT.columns, Column("s7", "double", nullable=True, min=0, max=10)),
        features=(*CONTRACT.features, "s7"),
    )
    old = parse_raw_key("diabetes/patients/created_at=20261120T000000Z/before.csv")
    new = parse_raw_key("diabetes/patients/created_at=20261121T000000Z/after.csv")
    header, *rows = sample.clean.read_text().splitlines()
    stage(spark, staging, tmp_path, old, sample.clean.read_bytes(), run_id="jr_old")
    renamed = [f"{row.split(',', 1)[0]}9,{row.split(',', 1)[1]},5.0" for row in rows[:50]]  # other patients
    stage(spark, staging, tmp_path, new, "\n".join([f"{header},s7", *renamed]).encode() + b"\n", "jr_new", grown)
    built = build(
        spark,
        staging,
        tmp_path / "curated",
        [staging_prefix(old, "jr_old").rstrip("/"), staging_prefix(new, "jr_new").rstrip("/")],
        grown,
    )
    curated = current_rows(spark, tmp_path / "curated", grown)
    assert built.rows == curated.count() == len(rows) + 50 and "s7" in curated.columns
    by_file = {
        r["source_file"].rsplit("/", 1)[-1]: r["values"]
        for r in curated.groupBy("source_file").agg(F.collect_set("s7").alias("values")).collect()
    }
    assert by_file == {"before.csv": [], "after.csv": [5.0]}, "null before the column existed, its values after"


def test_a_build_whose_mean_jumps_against_the_table_it_replaces_is_not_written(
    spark, sample, staging, tmp_path
) -> None:
    """A distribution check of the table (quality.max_mean_shift): each file may pass its own gate, yet the
    build they make may move a column's mean too far from the table readers see now; then it is refused and
    the table stays as it was."""
    from dataclasses import replace

    from etl_spark.jobs import CuratedCheckFailed

    from pipeline.layout import staging_prefix

    shifting = replace(CONTRACT, quality=replace(CONTRACT.quality, max_mean_shift={"target": 0.2}))
    old = parse_raw_key("diabetes/patients/created_at=20261120T000000Z/before.csv")
    new = parse_raw_key("diabetes/patients/created_at=20261121T000000Z/after.csv")
    header, *rows = sample.clean.read_text().splitlines()
    stage(spark, staging, tmp_path, old, sample.clean.read_bytes(), run_id="jr_old")
    high = [f"{row.split(',', 1)[0]}9,{row.split(',', 1)[1].rsplit(',', 1)[0]},199" for row in rows]  # target last
    stage(spark, staging, tmp_path, new, "\n".join([header, *high]).encode() + b"\n", run_id="jr_new")
    root = tmp_path / "curated"

    def runs(*batches) -> list[str]:
        return [staging_prefix(raw, run).rstrip("/") for raw, run in batches]

    first = build(spark, staging, root, runs((old, "jr_old")), shifting)
    with pytest.raises(CuratedCheckFailed, match=r'Mean "target" within 0.2 sd of the previous build \(observed 0\.'):
        build(spark, staging, root, runs((new, "jr_new")), shifting)
    assert current_rows(spark, root).count() == first.rows
    relaxed = replace(shifting, quality=replace(shifting.quality, max_mean_shift={"target": 1.0}))
    second = build(spark, staging, root, runs((new, "jr_new")), relaxed)
    assert (second.number, second.rows, second.merged) == (2, 2 * first.rows, 1), "the new batch merged onto build 1"


def test_a_column_the_contract_widens_from_integer_to_double_reads_from_batches_of_either_type(
    spark, sample, staging, tmp_path
) -> None:
    """Spark 3.5 cannot read a Parquet integer as a double: batches staged before the contract widened a column
    are read with their own schema and cast, alone or beside batches staged after."""
    from dataclasses import replace

    from pipeline.layout import staging_prefix

    widened = replace(
        CONTRACT,
        columns=tuple(replace(c, type="double") if c.name == "age" else c for c in CONTRACT.columns),
    )
    old = parse_raw_key("diabetes/patients/created_at=20261120T000000Z/before.csv")
    new = parse_raw_key("diabetes/patients/created_at=20261121T000000Z/after.csv")
    header, *rows = sample.clean.read_text().splitlines()
    stage(spark, staging, tmp_path, old, sample.clean.read_bytes(), run_id="jr_old")
    halves = [f"{r.split(',', 2)[0]}9,{r.split(',', 2)[1]}.5,{r.split(',', 2)[2]}" for r in rows[:20]]  # age 59.5
    stage(spark, staging, tmp_path, new, "\n".join([header, *halves]).encode() + b"\n", "jr_new", widened)
    batches = {"old": staging_prefix(old, "jr_old").rstrip("/"), "new": staging_prefix(new, "jr_new").rstrip("/")}
    root = tmp_path / "curated"
    build(spark, staging, root, [batches["old"]], CONTRACT)  # build 1: age as an integer
    for built in (["old"], ["old", "new"], ["new"]):  # from scratch twice, then onto build 1's integers
        scratch = built != ["new"]
        target = tmp_path / "curated" / "-".join(built) if scratch else root
        made = build(spark, staging, target, [batches[b] for b in built], widened, from_scratch=scratch)
        curated = current_rows(spark, target, widened)
        assert dict(curated.dtypes)["age"] == "double" and made.rows == len(rows) + (20 if "new" in built else 0)
        ages = {r["source_file"].rsplit("/", 1)[-1]: r["age"] for r in curated.collect()}
        assert ages["before.csv"] == int(ages["before.csv"]), "an integer age, now a double"
        if "new" in built:
            assert ages["after.csv"] % 1 == 0.5
