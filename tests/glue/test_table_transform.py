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
from pyspark.sql import DataFrame
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
        (lambda df: df.where(F.col("department").isNotNull()), "turned 3 rows into 1: it must keep every row"),
        (lambda df: df.union(df), "turned 3 rows into 6"),
        (lambda df: df.collect(), "transform returned list, not a DataFrame"),
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
