"""The Glue Data Catalog's view of curated: one table per promotable contract, queryable in Athena.

A curated build never moves rows: it writes new partition folders and switches the table's pointer
(pipeline/builds.py), and each partition lives in the folder of the build that last rewrote it. So the catalog
table cannot name one folder: it is partitioned by the build's partition token (`partition`, a column no
contract may take), and each of its partitions names the folder the current pointer names for it. After each
promotion `sync_partitions` brings the catalog to the pointer: new partitions added, moved ones repointed,
emptied ones dropped. The table itself (columns and types from the contract) is defined once, by
`table_input`: the stack deploys it (infra/stacks/etl.py) and the local pipeline creates it from the same text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.builds import Build
from pipeline.contract import LINEAGE_TYPES, PARTITION_COLUMN, TABLE_TYPES, Contract, ContractError, curated_columns
from pipeline.layout import partition_folder, table_prefix

PARQUET_STORAGE = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
}
"""How Athena and Glue read what the builds write (Spark's Parquet)."""
CATALOG_SYNC_ACTIONS = (
    "glue:GetPartitions",
    "glue:BatchCreatePartition",
    "glue:BatchUpdatePartition",
    "glue:BatchDeletePartition",
)
"""What `sync_partitions` calls, granted on the catalog, the database and the tables (infra/stacks/etl.py)."""
CREATE_BATCH = 100
"""Partitions per BatchCreatePartition and BatchUpdatePartition call (the API's limit)."""
DELETE_BATCH = 25
"""Partitions per BatchDeletePartition call (the API's limit)."""


class CatalogError(RuntimeError):
    """The catalog refused a change: names the table, the partitions and the service's reason."""


def table_name(contract: Contract) -> str:
    """`<dataset>_<table>`: both are lowercase names (pipeline.layout), so the result is a valid Glue and
    Athena table name."""
    return f"{contract.dataset}_{contract.table}"


def catalogued(contracts: Mapping[str, Contract]) -> dict[str, Contract]:
    """The contracts whose curated table the catalog holds (every one but check-only), by table name. Two
    contracts whose names join to the same table name (`a_b/c` and `a/b_c`) are refused: name either apart."""
    tables: dict[str, Contract] = {}
    for contract in sorted(contracts.values(), key=lambda c: c.name):
        if contract.check_only:
            continue
        name = table_name(contract)
        if name in tables:
            raise ContractError(
                f"contracts {tables[name].name} and {contract.name} would both be catalogued as table {name}: "
                "rename one dataset or table"
            )
        tables[name] = contract
    return tables


def _columns(contract: Contract) -> list[dict[str, str]]:
    types = {c.name: TABLE_TYPES[c.type] for c in contract.columns} | LINEAGE_TYPES
    described = {c.name: c.description for c in contract.columns} | {
        "created_at": "When the row's file landed (lineage)",
        "source_file": "The raw file the row came from (lineage)",
    }
    comments = {name: " ".join(text.split())[:255] for name, text in described.items()}  # one line: Glue's rule
    return [
        {"Name": name, "Type": types[name], **({"Comment": comments[name]} if comments[name] else {})}
        for name in curated_columns(contract)
    ]


def _storage(columns: list[dict[str, str]], location: str) -> dict[str, Any]:
    return {"Columns": columns, "Location": location, **PARQUET_STORAGE}


def table_location(contract: Contract, bucket: str) -> str:
    return f"s3://{bucket}/{table_prefix(contract.dataset, contract.table)}"


def table_input(contract: Contract, bucket: str) -> dict[str, Any]:
    """The catalog table of `contract`'s curated data in `bucket`, as Glue's CreateTable and CloudFormation's
    AWS::Glue::Table both take it: the columns curated keeps, typed as the builds write them, and the partition
    column whose values are the builds' partition tokens."""
    return {
        "Name": table_name(contract),
        "Description": (contract.description or f"Curated {contract.name}")[:2048],
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "classification": "parquet",
            "EXTERNAL": "TRUE",
            "contract": contract.name,
            "contract_version": str(contract.contract_version),
        },
        "PartitionKeys": [{"Name": PARTITION_COLUMN, "Type": "string", "Comment": "The build's partition token"}],
        "StorageDescriptor": _storage(_columns(contract), table_location(contract, bucket)),
    }


WHOLE_BUILD = "whole"
"""The one partition of a build made before tables were partitioned: its rows are in its own folder."""


def partition_locations(build: Build | None, bucket: str) -> dict[str, str]:
    """Partition token -> the folder the build's pointer names for it, as an S3 location; only partitions with
    rows (an emptied one is dropped from the catalog). None (no build yet): none. A build from before partitions:
    its folder, as one partition (`WHOLE_BUILD`), until its next build, which is one from scratch."""
    if build is None:
        return {}
    prefix = f"s3://{bucket}/{table_prefix(build.dataset, build.table)}"
    if build.partitions is None:
        return {WHOLE_BUILD: f"{prefix}{build.folder}/"}
    return {
        token: f"{prefix}{partition_folder(part.folder, token)}/"
        for token, part in sorted(build.partitions.items())
        if part.rows
    }


@dataclass(frozen=True)
class PartitionChanges:
    """What brings the catalog's partitions to the pointer's: tokens to add and to repoint (with their
    locations), and tokens to drop."""

    create: dict[str, str] = field(default_factory=dict)
    update: dict[str, str] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def partition_changes(
    existing: Mapping[str, str], wanted: Mapping[str, str], stale: Iterable[str] = ()
) -> PartitionChanges:
    """From the catalog's partitions (`existing`, token -> location) to `wanted`'s; `stale`: tokens whose columns
    are not the table's now (a contract change the table's definition took and the partition did not), repointed
    even where their folder stays."""
    outdated = set(stale)
    return PartitionChanges(
        create={t: wanted[t] for t in sorted(wanted) if t not in existing},
        update={t: wanted[t] for t in sorted(wanted) if t in existing and (existing[t] != wanted[t] or t in outdated)},
        delete=sorted(t for t in existing if t not in wanted),
    )


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _refused(table: str, what: str, errors: list[dict[str, Any]]) -> CatalogError:
    def values(error: dict[str, Any]) -> list[str]:  # create and delete errors name them one way, update another
        return error.get("PartitionValues") or error.get("PartitionValueList") or ["?"]

    reasons = sorted({f"{values(e)[0]}: {e.get('ErrorDetail', {}).get('ErrorMessage', '?')}" for e in errors})
    return CatalogError(f"the catalog refused to {what} partitions of {table}: {'; '.join(reasons)}")


def listed_partitions(glue: Any, database: str, table: str) -> list[dict[str, Any]]:
    """Every partition the catalog holds of `table`, as GetPartitions gives them (all pages)."""
    return [
        part
        for page in glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=table)
        for part in page["Partitions"]
    ]


def sync_partitions(glue: Any, database: str, contract: Contract, build: Build | None, bucket: str) -> PartitionChanges:
    """Bring table `contract`'s partitions in catalog `database` to `build`'s (`glue`: a boto3 Glue client).
    Idempotent: a sync that failed half-way is finished by the next (the promotion's run syncs the table it
    built, and the scheduled promote function every table no run is building). A partition whose columns are not
    the table's (the contract changed) is rewritten with them.
    Raises CatalogError where the catalog refuses a change."""
    table = table_name(contract)
    listed = listed_partitions(glue, database, table)
    existing = {part["Values"][0]: part["StorageDescriptor"]["Location"] for part in listed}

    def typed(columns: list[dict[str, Any]]) -> list[tuple[str, str]]:  # what a reader reads by (not comments)
        return [(c["Name"], c["Type"]) for c in columns]

    columns = _columns(contract)
    table_columns = typed(columns)
    stale = [
        part["Values"][0] for part in listed if typed(part["StorageDescriptor"].get("Columns", [])) != table_columns
    ]
    changes = partition_changes(existing, partition_locations(build, bucket), stale)

    def partition(token: str, location: str) -> dict[str, Any]:
        return {"Values": [token], "StorageDescriptor": _storage(columns, location)}

    for chunk in _chunks(list(changes.create.items()), CREATE_BATCH):
        created = glue.batch_create_partition(
            DatabaseName=database, TableName=table, PartitionInputList=[partition(t, loc) for t, loc in chunk]
        )
        if created.get("Errors"):
            raise _refused(table, "add", created["Errors"])
    for chunk in _chunks(list(changes.update.items()), CREATE_BATCH):
        updated = glue.batch_update_partition(
            DatabaseName=database,
            TableName=table,
            Entries=[{"PartitionValueList": [t], "PartitionInput": partition(t, loc)} for t, loc in chunk],
        )
        if updated.get("Errors"):
            raise _refused(table, "repoint", updated["Errors"])
    for chunk in _chunks(changes.delete, DELETE_BATCH):
        deleted = glue.batch_delete_partition(
            DatabaseName=database, TableName=table, PartitionsToDelete=[{"Values": [t]} for t in chunk]
        )
        if deleted.get("Errors"):
            raise _refused(table, "drop", deleted["Errors"])
    return changes
