"""The catalog's partitions brought to a build's pointer (pipeline/catalog.py), without Spark: which partitions
are added, repointed and dropped, in the API's batch sizes, with the table's columns, and a refusal named. The
tests that read the catalog as Athena does, after real builds, are in tests/glue/test_catalog.py."""

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
)
from pipeline.sample_data import prices_contract


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


def test_the_table_is_an_external_parquet_table_of_the_contracts_curated_columns() -> None:
    """As CloudFormation deploys it and Athena reads it: every field, since Athena reads the table by them."""
    contract = prices_contract(description="Prices by sku")
    assert table_input(contract, "curated") == {
        "Name": "shop_prices",
        "Description": "Prices by sku",
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "classification": "parquet",
            "EXTERNAL": "TRUE",
            "contract": "shop/prices",
            "contract_version": "1",
        },
        "PartitionKeys": [{"Name": "partition", "Type": "string", "Comment": "The build's partition token"}],
        "StorageDescriptor": {
            "Columns": [
                {"Name": "sku", "Type": "string"},
                {"Name": "seq", "Type": "bigint"},
                {"Name": "price", "Type": "double"},
                {"Name": "created_at", "Type": "timestamp", "Comment": "When the row's file landed (lineage)"},
                {"Name": "source_file", "Type": "string", "Comment": "The raw file the row came from (lineage)"},
            ],
            "Location": "s3://curated/shop/prices/",
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
        },
    }


def test_a_table_without_a_description_gets_one_and_a_long_one_is_cut_to_glues_2048() -> None:
    assert table_input(prices_contract(), "c")["Description"] == "Curated shop/prices"
    assert table_input(prices_contract(description="x" * 3000), "c")["Description"] == "x" * 2048
    assert table_input(prices_contract(), "c")["Parameters"]["contract_version"] == str(
        prices_contract().contract_version
    )


def test_a_builds_partitions_are_catalogued_at_their_folders_and_an_empty_one_not() -> None:
    from pipeline.builds import Build, Partition

    parts = {"b1": Partition("build=000002-bbbb", 3), "b0": Partition("build=000001-aaaa", 2), "b2": Partition("x", 0)}
    build = Build("shop", "prices", 2, 5, "t", "build=000002-bbbb", partitions=parts)
    assert partition_locations(build, "curated") == {
        "b0": "s3://curated/shop/prices/build=000001-aaaa/partition=b0/",
        "b1": "s3://curated/shop/prices/build=000002-bbbb/partition=b1/",
    }


def test_the_catalogued_contracts_are_every_one_but_check_only_by_table_name() -> None:
    from pipeline.catalog import catalogued
    from pipeline.contract import ContractError

    checks = prices_contract(dataset="a", table="checks", check_only=True)
    shop, other = prices_contract(), prices_contract(dataset="z", table="prices")
    assert catalogued({"a/checks": checks, "shop/prices": shop, "z/prices": other}) == {
        "shop_prices": shop,
        "z_prices": other,
    }
    clash = prices_contract(dataset="shop_prices", table="x"), prices_contract(dataset="shop", table="prices_x")
    for order in (clash, clash[::-1]):
        with pytest.raises(ContractError) as refused:
            catalogued({c.name: c for c in order})
        assert str(refused.value) == (
            "contracts shop/prices_x and shop_prices/x would both be catalogued as table shop_prices_x: "
            "rename one dataset or table"
        )


class Listing:
    """A catalog holding `listed` partitions that accepts every change, recording each call."""

    def __init__(self, listed: list[dict[str, Any]]) -> None:
        self.listed, self.calls = listed, []

    def get_paginator(self, _: str) -> Any:
        return type("Pages", (), {"paginate": lambda *_, **__: [{"Partitions": self.listed}]})()

    def __getattr__(self, name: str) -> Any:
        return lambda **kwargs: self.calls.append((name, kwargs)) or {}


def test_a_listed_partition_without_columns_is_rewritten_with_the_tables() -> None:
    from pipeline.builds import Build, Partition

    contract = prices_contract()
    build = Build("shop", "prices", 1, 5, "t", "build=1", partitions={"b0": Partition("build=1", 5)})
    location = partition_locations(build, "curated")["b0"]
    glue = Listing([{"Values": ["b0"], "StorageDescriptor": {"Location": location}}])
    assert sync_partitions(glue, "db", contract, build, "curated") == PartitionChanges(update={"b0": location})
    ((call, kwargs),) = glue.calls
    assert call == "batch_update_partition" and (kwargs["DatabaseName"], kwargs["TableName"]) == ("db", "shop_prices")
    (entry,) = kwargs["Entries"]
    assert entry["PartitionValueList"] == ["b0"] and entry["PartitionInput"]["Values"] == ["b0"]
    described = table_input(contract, "curated")["StorageDescriptor"]
    assert entry["PartitionInput"]["StorageDescriptor"] == described | {"Location": location}


def test_a_refusal_without_values_or_detail_still_names_each_error() -> None:
    from pipeline.catalog import _refused

    error = _refused(
        "t", "add", [{"PartitionValues": ["b2"], "ErrorDetail": {"ErrorMessage": "No"}}, {}, {"ErrorDetail": {}}]
    )
    assert str(error) == "the catalog refused to add partitions of t: ?: ?; b2: No"
