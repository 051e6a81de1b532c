"""The curated tables in the Glue catalog (pipeline/catalog.py): after every promotion, reading the table as
Athena does (each catalogued partition's location, the table's columns and types, the partition value from the
catalog) gives exactly the table's current build; partitions a build moves are repointed, emptied ones dropped.
The local pipeline defines the table as the stack does (`table_input`) and syncs it as the Glue job does."""

from __future__ import annotations

from typing import Any

import pytest
from moto import mock_aws

from pipeline.catalog import (
    PartitionChanges,
    table_name,
)
from pipeline.contract import PARTITION_COLUMN
from pipeline.sample_data import prices_contract

DAILY = prices_contract(daily=True, version="seq")


def land(pipeline: Any, name: str, lines: list[str]) -> None:
    body = "\n".join(["day,sku,seq,price,op", *lines]) + "\n"
    pipeline.s3.put_object(Bucket="landing", Key=f"shop/prices/{name}", Body=body.encode())


def through_the_gate(pipeline: Any) -> None:
    moved = pipeline.ingest(limit=50)["moved"]
    for verdict in pipeline.validate(moved):
        assert verdict["valid"], verdict
        pipeline.stage(verdict["key"])
        assert pipeline.gate(verdict["key"])["passed"]


def read_as_athena(spark: Any, pipeline: Any, table: dict[str, Any]) -> list[tuple]:
    """Every row the catalog names, as Athena reads them: per partition, the Parquet files at its location (here
    the local mirror of the bucket), the table's columns, the partition's value as the `partition` column."""
    from pyspark.sql import functions as F

    rows = []
    for token, location in table["partitions"].items():
        folder = pipeline.mirror["curated"] / location.removeprefix("s3://curated/")
        frame = spark.read.parquet(str(folder)).select(*[name for name, _ in table["columns"]])
        rows += [tuple(r) for r in frame.withColumn(PARTITION_COLUMN, F.lit(token)).collect()]
    return sorted(rows)


@pytest.fixture(scope="module")
def builds(spark, tmp_path_factory) -> list[dict[str, Any]]:
    """Three builds of a day-partitioned table, each followed by the catalog as it then was and the build's rows
    with their partition: days 1-3; then day 3 changed and day 4 new; then day 1's only key deleted."""
    from etl_spark.jobs import read_build
    from etl_spark.local import local_curated

    from scripts.run_pipeline_local import LocalPipeline

    out = tmp_path_factory.mktemp("catalog")
    seen = []
    with mock_aws():
        pipeline = LocalPipeline(out, {DAILY.name: DAILY}, spark)
        rounds = [
            ["20261101,A,1,10.5,I", "20261102,B,1,11.5,I", "20261103,C,1,12.5,I", "20261103,D,1,13.5,I"],
            ["20261103,C,2,22.5,U", "20261104,E,1,14.5,I"],
            ["20261101,A,2,10.5,D"],
        ]
        for index, lines in enumerate(rounds):
            land(pipeline, f"extract-{index}.csv", lines)
            through_the_gate(pipeline)
            build, _ = pipeline.promote(DAILY)
            frame = read_build(spark, DAILY, local_curated(pipeline.mirror["curated"]), build)
            catalog = pipeline.catalog()[table_name(DAILY)]
            columns = [name for name, _ in catalog["columns"]]
            from etl_spark.transforms import partition_token

            expected = sorted(tuple(r) for r in frame.select(*columns, partition_token(DAILY)).collect())
            seen.append(
                {
                    "build": build,
                    "catalog": catalog,
                    "athena": read_as_athena(spark, pipeline, catalog),
                    "rows": expected,
                }
            )
        seen.append({"resync": pipeline.sync_catalog(DAILY)})
        seen.append({"schema": spark.read.parquet(str(pipeline.mirror["curated"] / catalog_location(catalog))).schema})
    return seen


def catalog_location(catalog: dict[str, Any]) -> str:
    return next(iter(catalog["partitions"].values())).removeprefix("s3://curated/")


def test_reading_the_catalog_as_athena_gives_exactly_each_current_build(builds) -> None:
    for seen in builds[:3]:
        assert seen["rows"], "a build with rows"
        assert seen["athena"] == seen["rows"], f"build {seen['build'].number}"


def test_the_catalog_follows_the_builds_partitions(builds) -> None:
    first, second, third = (seen["catalog"]["partitions"] for seen in builds[:3])
    assert sorted(first) == ["v20261101", "v20261102", "v20261103"]
    assert sorted(second) == ["v20261101", "v20261102", "v20261103", "v20261104"]
    assert second["v20261102"] == first["v20261102"], "an untouched partition keeps its folder"
    assert second["v20261103"] != first["v20261103"], "a rewritten one is repointed to the new build's folder"
    assert builds[1]["build"].folder in second["v20261103"]
    assert sorted(third) == ["v20261102", "v20261103", "v20261104"], "the emptied day is dropped"
    assert builds[3]["resync"] == PartitionChanges(), "a second sync of the same build changes nothing"


def test_the_tables_columns_are_the_contracts_typed_as_the_builds_write_them(builds) -> None:
    catalog = builds[0]["catalog"]
    assert catalog["columns"] == [
        ("day", "bigint"),
        ("sku", "string"),
        ("seq", "bigint"),
        ("price", "double"),
        ("created_at", "timestamp"),
        ("source_file", "string"),
    ]
    assert catalog["partition_keys"] == [PARTITION_COLUMN]
    written = {f.name: f.dataType.simpleString() for f in builds[4]["schema"].fields}
    assert {name: written[name] for name, _ in catalog["columns"]} == dict(catalog["columns"])
