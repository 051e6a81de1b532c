"""The curated tables in the Glue catalog (pipeline/catalog.py): after every promotion, reading the table as
Athena does (each catalogued partition's location, the table's columns and types, the partition value from the
catalog) gives exactly the table's current build; partitions a build moves are repointed, emptied ones dropped.
The local pipeline defines the table as the stack does (`table_input`) and syncs it as the Glue job does."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
from moto import mock_aws

from pipeline.catalog import (
    WHOLE_BUILD,
    CatalogError,
    PartitionChanges,
    partition_changes,
    partition_locations,
    sync_partitions,
    table_input,
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


@pytest.mark.parametrize(
    ("existing", "wanted", "changes"),
    [
        ({}, {"b0": "s3://c/t/x/"}, PartitionChanges(create={"b0": "s3://c/t/x/"})),
        ({"b0": "s3://c/t/x/"}, {"b0": "s3://c/t/x/"}, PartitionChanges()),
        ({"b0": "s3://c/t/x/"}, {"b0": "s3://c/t/y/"}, PartitionChanges(update={"b0": "s3://c/t/y/"})),
        ({"b0": "s3://c/t/x/", "b1": "s3://c/t/x/"}, {"b1": "s3://c/t/x/"}, PartitionChanges(delete=["b0"])),
        ({}, {}, PartitionChanges()),
    ],
)
def test_partition_changes_bring_the_catalog_to_the_pointer(existing, wanted, changes) -> None:
    assert partition_changes(existing, wanted) == changes
    assert changes.empty is (changes == PartitionChanges())


class Recording:
    """A boto3 Glue client whose batch calls are counted by size (moto does not enforce the API's limits)."""

    def __init__(self, glue: Any) -> None:
        self.glue, self.sizes = glue, []

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.glue, name)
        if not name.startswith("batch_"):
            return call

        def recorded(**kwargs: Any) -> Any:
            (items,) = [v for k, v in kwargs.items() if k in ("PartitionInputList", "Entries", "PartitionsToDelete")]
            self.sizes.append((name, len(items)))
            return call(**kwargs)

        return recorded


def test_a_sync_of_many_partitions_goes_in_the_apis_batches() -> None:
    import boto3

    from pipeline.builds import Build, Partition

    contract = prices_contract(partition={"buckets": 300})
    parts = {f"b{i:03d}": Partition(folder="build=000001-aaaa", rows=1) for i in range(260)}
    build = Build("shop", "prices", 1, rows=260, built_at="2026-12-03T00:00:00+00:00", folder="build=000001-aaaa")
    with mock_aws():
        glue = Recording(boto3.client("glue", region_name="eu-west-1"))
        glue.create_database(DatabaseInput={"Name": "db"})
        glue.create_table(DatabaseName="db", TableInput=table_input(contract, "curated"))
        first = sync_partitions(glue, "db", contract, replace(build, partitions=parts), "curated")
        assert len(first.create) == 260
        assert glue.sizes == [
            ("batch_create_partition", 100),
            ("batch_create_partition", 100),
            ("batch_create_partition", 60),
        ]
        glue.sizes.clear()
        moved = {t: Partition(folder="build=000002-bbbb", rows=1) for t in list(parts)[:150]}
        second = sync_partitions(glue, "db", contract, replace(build, partitions=moved), "curated")
        assert (len(second.create), len(second.update), len(second.delete)) == (0, 150, 110)
        assert glue.sizes == [
            ("batch_update_partition", 100),
            ("batch_update_partition", 50),
            *[("batch_delete_partition", 25)] * 4,
            ("batch_delete_partition", 10),
        ]
        listed = glue.get_partitions(DatabaseName="db", TableName="shop_prices")["Partitions"]
        assert len(listed) == 150
        assert all("build=000002-bbbb/partition=" in p["StorageDescriptor"]["Location"] for p in listed)


def test_a_partition_whose_columns_are_not_the_tables_is_rewritten_with_them() -> None:
    """A contract change the table's definition took (CloudFormation) and a partition did not: repointed with the
    table's columns even where its folder stays, so that Athena finds no schema mismatch."""
    import boto3

    from pipeline.builds import Build, Partition

    contract = prices_contract()
    build = Build(
        "shop", "prices", 1, 5, "t", "build=000001-aaaa", partitions={"b0": Partition("build=000001-aaaa", 5)}
    )
    with mock_aws():
        glue = boto3.client("glue", region_name="eu-west-1")
        glue.create_database(DatabaseInput={"Name": "db"})
        older = table_input(contract, "curated")
        older["StorageDescriptor"]["Columns"] = older["StorageDescriptor"]["Columns"][:-1]  # one column fewer
        glue.create_table(DatabaseName="db", TableInput=table_input(contract, "curated"))
        location = partition_locations(build, "curated")["b0"]
        glue.create_partition(
            DatabaseName="db",
            TableName="shop_prices",
            PartitionInput={"Values": ["b0"], "StorageDescriptor": older["StorageDescriptor"] | {"Location": location}},
        )
        assert sync_partitions(glue, "db", contract, build, "curated") == PartitionChanges(update={"b0": location})
        (part,) = glue.get_partitions(DatabaseName="db", TableName="shop_prices")["Partitions"]
        assert part["StorageDescriptor"]["Columns"] == table_input(contract, "curated")["StorageDescriptor"]["Columns"]
        assert sync_partitions(glue, "db", contract, build, "curated") == PartitionChanges()


class Refusing:
    """A catalog that lists one partition, and refuses every change with the shape of error each call returns."""

    def get_paginator(self, _: str) -> Any:
        located = {"Values": ["b001"], "StorageDescriptor": {"Location": "s3://curated/old/", "Columns": []}}
        return type("Pages", (), {"paginate": lambda *_, **__: [{"Partitions": [located]}]})()

    def batch_create_partition(self, **_: Any) -> dict[str, Any]:
        return {"Errors": [{"PartitionValues": ["b000"], "ErrorDetail": {"ErrorMessage": "Access denied"}}]}

    def batch_update_partition(self, **_: Any) -> dict[str, Any]:
        return {"Errors": [{"PartitionValueList": ["b001"], "ErrorDetail": {"ErrorMessage": "Throttled"}}]}

    def batch_delete_partition(self, **_: Any) -> dict[str, Any]:
        return {"Errors": [{"PartitionValues": ["b001"], "ErrorDetail": {"ErrorMessage": "Access denied"}}]}


@pytest.mark.parametrize(
    ("wanted", "message"),
    [
        ({"b000": "build=1", "b001": "build=1"}, "refused to add partitions of shop_prices: b000: Access denied"),
        ({"b001": "build=1"}, "refused to repoint partitions of shop_prices: b001: Throttled"),
        ({}, "refused to drop partitions of shop_prices: b001: Access denied"),
    ],
)
def test_a_refusal_names_the_table_the_partitions_and_the_reason(wanted: dict[str, str], message: str) -> None:
    from pipeline.builds import Build, Partition

    contract = prices_contract()
    partitions = {token: Partition(folder, 1) for token, folder in wanted.items()}
    build = Build("shop", "prices", 1, 1, "t", "build=1", partitions=partitions)
    with pytest.raises(CatalogError, match=re.escape(message)):
        sync_partitions(Refusing(), "db", contract, build, "curated")


def test_no_build_catalogues_nothing_and_a_build_before_partitions_is_one_partition() -> None:
    from pipeline.builds import Build

    legacy = Build("shop", "prices", 1, rows=5, built_at="2026-12-03T00:00:00+00:00", folder="build=000001-aaaa")
    assert partition_locations(None, "curated") == {}
    assert partition_locations(legacy, "curated") == {WHOLE_BUILD: "s3://curated/shop/prices/build=000001-aaaa/"}


def test_a_description_over_lines_is_one_line_of_at_most_255_characters() -> None:
    """Glue's column comment takes no line break (moto takes one: the deploy would fail in AWS)."""
    contract = prices_contract(
        columns=[
            {"name": "sku", "type": "string", "nullable": False, "description": "line one\nline  two " + "x" * 300},
            {"name": "seq", "type": "integer", "nullable": False},
            {"name": "price", "type": "double", "nullable": False},
            {"name": "op", "type": "string", "nullable": True},
        ]
    )
    (sku,) = [c for c in table_input(contract, "curated")["StorageDescriptor"]["Columns"] if c["Name"] == "sku"]
    assert sku["Comment"].startswith("line one line two x") and len(sku["Comment"]) == 255
    assert "Comment" not in table_input(contract, "curated")["StorageDescriptor"]["Columns"][1]
