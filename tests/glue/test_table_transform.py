"""A table's own transform (glue/lib/table_transforms/<dataset>/<table>.py): applied to the staged rows before
the latest row per key is taken, held to its rules (same columns and types, every row), and the same whether
batches are merged build by build or built from scratch."""

from __future__ import annotations

import dataclasses
import sys
import types
from pathlib import Path

import pytest
from etl_spark.table_transform import TransformError, apply_transform, table_transform
from etl_spark.transforms import staging_schema
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from pipeline.contract import load_contracts
from pipeline.layout import parse_raw_key
from pipeline.sample_data import write_appointments_sample
from tests.glue import test_transforms
from tests.glue.test_transforms import Staging, build, current_rows, stage

staging = test_transforms.staging  # the fixture: moto's S3 for the gate's markers, a folder for the rows

CLINIC = load_contracts()["clinic/appointments"]
DIABETES = load_contracts()["diabetes/patients"]


def staged(spark, departments: list[str | None]) -> DataFrame:
    """Staged clinic rows (staging's schema), one per department value."""
    schema = spark.createDataFrame([], staging_schema(CLINIC)).schema
    rows = [
        {f.name: None for f in schema.fields}
        | {"day": "2026-11-08", "appointment_id": f"A{i:06d}", "revision": 1, "department": d, "source_row": i}
        for i, d in enumerate(departments)
    ]
    return spark.createDataFrame(rows, schema)


def test_the_clinic_transform_gives_a_booking_without_a_department_to_the_general_clinic(spark) -> None:
    rows = staged(spark, [None, "cardiology", None, "dermatology"])
    out = apply_transform(rows, CLINIC)
    assert [r["department"] for r in out.orderBy("source_row").collect()] == [
        "general",
        "cardiology",
        "general",
        "dermatology",
    ]
    assert [(f.name, f.dataType) for f in out.schema] == [(f.name, f.dataType) for f in rows.schema]


def test_a_table_without_a_transform_is_taken_as_staged(spark) -> None:
    assert table_transform(DIABETES) is None
    rows = staged(spark, ["general"])
    assert apply_transform(rows, DIABETES) is rows


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (lambda df: df.withColumn("extra", F.lit(1)), r"missing \[\], extra \['extra'\], retyped \[\]"),
        (lambda df: df.drop("notes"), r"missing \['notes'\]"),
        (lambda df: df.withColumn("revision", F.col("revision").cast("string")), r"retyped \['revision'\]"),
        (lambda df: df.where(F.col("department").isNotNull()), "it uses Filter"),
        (lambda df: df.union(df), "it uses Union"),
        (lambda df: df.collect(), "transform returned list, not a DataFrame"),
        (
            lambda df: df.withColumn("revision", F.count("*").over(Window.partitionBy("day")).cast("int")),
            "it uses Window",
        ),
        (lambda df: df.withColumn("notes", (F.rand() * 10).cast("string")), "it uses rand"),
        (lambda df: df.withColumn("notes", F.current_timestamp().cast("string")), "it uses current_timestamp"),
        (lambda df: df.join(df.select("appointment_id"), "appointment_id").select(*df.columns), "it uses Join"),
    ],
)
def test_a_transform_that_breaks_its_rules_is_refused_naming_its_file(spark, broken, message) -> None:
    with pytest.raises(TransformError, match=message) as caught:
        apply_transform(staged(spark, [None, "general", None]), CLINIC, broken)
    assert str(caught.value).startswith("glue/lib/table_transforms/clinic/appointments.py: ")


def test_a_transform_file_without_its_function_is_named(monkeypatch) -> None:
    odd = dataclasses.replace(DIABETES, dataset="odd", table="shape")
    for name in ("table_transforms.odd", "table_transforms.odd.shape"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    with pytest.raises(TransformError, match=r"table_transforms/odd/shape.py has no function `transform"):
        table_transform(odd)


def test_merged_build_by_build_or_from_scratch_the_transformed_table_is_the_same(
    spark, staging: Staging, tmp_path: Path
) -> None:
    """Day one's export, then day two's (which revises three of day one's rows, one of them its department):
    merged onto build 1, or both from scratch, the same rows, and no booking without its department."""
    runs = []
    for path in write_appointments_sample(tmp_path / "landed"):
        raw = parse_raw_key(f"clinic/appointments/created_at=20261109T000000Z/{path.name}")
        report = stage(spark, staging, tmp_path, raw, path.read_bytes(), run_id=f"jr_{len(runs)}", contract=CLINIC)
        assert report["rows_rejected"] == 0
        runs.append(f"{raw.batch}/run={report['run_id']}")
    assert staging.root.exists()
    build(spark, staging, tmp_path / "merged", runs[:1], contract=CLINIC)
    merged = build(spark, staging, tmp_path / "merged", runs[1:], contract=CLINIC)
    scratch = build(spark, staging, tmp_path / "scratch", runs, contract=CLINIC, from_scratch=True)
    assert (merged.number, merged.from_scratch, scratch.from_scratch) == (2, False, True)
    columns = ["day", "appointment_id", "revision", "department", "attended"]
    by_merge = current_rows(spark, tmp_path / "merged", CLINIC).select(*columns).orderBy(*columns[:2]).collect()
    by_scratch = current_rows(spark, tmp_path / "scratch", CLINIC).select(*columns).orderBy(*columns[:2]).collect()
    assert by_merge == by_scratch and len(by_merge) == merged.rows == scratch.rows
    departments = {row["department"] for row in by_merge}
    assert None not in departments and "general" in departments
    staged_departments = {
        row["department"] for row in spark.read.parquet(str(staging.root)).select("department").collect()
    }
    assert None in staged_departments, "staging keeps what came; the transform is curated's"


def test_a_transform_file_that_cannot_be_imported_is_an_error_not_skipped(monkeypatch) -> None:
    """Only a missing file means "no transform": a file whose own import fails (a package the Glue job does not
    have) stops the promotion, naming the file and the missing module."""
    import etl_spark.table_transform as module

    def broken(name: str):
        raise ModuleNotFoundError("No module named 'polars'", name="polars")

    monkeypatch.setattr(module.importlib, "import_module", broken)
    with pytest.raises(TransformError, match=r"appointments.py cannot be imported: No module named 'polars'"):
        table_transform(CLINIC)


def test_an_edited_transform_makes_the_next_build_from_scratch(tmp_path: Path) -> None:
    """The transform's hash is part of the build fingerprint: read from the file beside the contracts, carried
    in the JSON the functions and jobs get, and never written in a contract by hand."""
    import shutil

    from pipeline.builds import build_fingerprint
    from pipeline.contract import CONTRACTS_DIR, ContractError, contracts_from_json, contracts_to_json

    contracts = tmp_path / "contracts" / "clinic"
    contracts.mkdir(parents=True)
    shutil.copy(CONTRACTS_DIR / "clinic" / "appointments.yaml", contracts / "appointments.yaml")
    assert load_contracts(tmp_path / "contracts")["clinic/appointments"].transform is None, "no file: none"
    assert build_fingerprint(dataclasses.replace(DIABETES)) == build_fingerprint(DIABETES), "none: as before"
    transform = tmp_path / "glue" / "lib" / "table_transforms" / "clinic" / "appointments.py"
    transform.parent.mkdir(parents=True)
    transform.write_text("def transform(staged):\n    return staged\n")
    first = load_contracts(tmp_path / "contracts")["clinic/appointments"]
    transform.write_text("def transform(staged):\n    return staged  # edited\n")
    edited = load_contracts(tmp_path / "contracts")["clinic/appointments"]
    assert first.transform and edited.transform and first.transform != edited.transform
    assert build_fingerprint(first) != build_fingerprint(edited), "an edit: the next build is from scratch"
    shipped = contracts_from_json(contracts_to_json({edited.name: edited}))[edited.name]
    assert shipped == edited, "the functions and the Glue jobs compute the same fingerprint"
    assert CLINIC.transform is not None, "the shipped clinic transform is in its contract's fingerprint"
    (contracts / "appointments.yaml").write_text((contracts / "appointments.yaml").read_text() + "transform: abc\n")
    with pytest.raises(ContractError, match="transform is not written in a contract"):
        load_contracts(tmp_path / "contracts")
