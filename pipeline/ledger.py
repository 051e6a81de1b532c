"""The run ledger: one item per landed file (by its raw key, or its landing key and version where it never
reached raw) and what became of it, step by step, in a DynamoDB table of the workspace: queryable in AWS
(`aws dynamodb get-item`, the console, PartiQL) and printed by `make pipeline`.

Each step records its own attributes, named after it (`ingested_at`, `gate_passed`, ...), and the file's
`state`; a step that runs again (a retry, a redrive) overwrites its own attributes and leaves the others.
A later step never goes back on an earlier one: `state` moves forward only (the update's condition), so a
late duplicate of an early step cannot make a promoted file look merely ingested.

No data values are recorded: keys, versions, counts, verdicts and reasons only (the reasons quote no value:
tests/glue/test_no_values_in_reports.py).

A database source's committed position (pipeline/extract.py) is an item of the same table, by
`source-position:<dataset>/<table>` (`position_id`: no file's id has a colon), beside the files it wrote: what
no one can rebuild, kept and backed up as they are.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the stubs are a development dependency: the Lambda runtime has none
    from mypy_boto3_dynamodb import DynamoDBClient

    from pipeline.extract import PositionStore

FILE_KEY = "file"
"""The table's partition key: the raw key, or `landing/<key>@<version>` for a file that never reached raw."""
LEDGER_TABLE_ENV = "LEDGER_TABLE"
STATE = "state"
"""The furthest step a file reached (or `failed`)."""
STATE_RANK = "state_rank"
"""RANK of `state`: what the condition that keeps it moving forward compares."""


class Step(StrEnum):
    """What happened to a file, in the order it happens."""

    INGESTED = "ingested"
    DISPATCHED = "dispatched"
    VALIDATED = "validated"
    GATED = "gated"
    PROMOTED = "promoted"
    QUARANTINED = "quarantined"  # the whole file: unroutable (ingest) or unreadable (validate)
    FAILED = "failed"  # an execution failed: the error and its cause


RANK = {step: position for position, step in enumerate(Step) if step is not Step.FAILED} | {Step.QUARANTINED: len(Step)}
"""How far a step takes a file: its `state` moves to a step of this rank or more only. A failure has none: it
is always recorded as the state, and the next step a redrive reaches takes over from it."""


def landing_file_id(landing_key: str, version: str | None) -> str:
    """The id of a landed file that never reached raw (unroutable)."""
    return f"landing/{landing_key}@{version or 'null'}"


def _value(value: Any) -> dict[str, Any]:
    """A Python value as DynamoDB's attribute value."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list | tuple):
        return {"L": [_value(v) for v in value]}
    if isinstance(value, Mapping):
        return {"M": {str(k): _value(v) for k, v in value.items()}}
    raise TypeError(f"the ledger records no {type(value).__name__}: {value!r}")


def plain(value: Mapping[str, Any]) -> Any:
    """A DynamoDB attribute value as Python (numbers as int where whole)."""
    ((kind, inner),) = value.items()
    if kind == "NULL":
        return None
    if kind == "N":
        number = float(inner)
        return int(number) if number.is_integer() and "." not in inner else number
    if kind == "L":
        return [plain(v) for v in inner]
    if kind == "M":
        return {k: plain(v) for k, v in inner.items()}
    return inner


def step_attribute(step: Step, name: str) -> str:
    """The attribute a step records `name` under: `<step>_<name>` (`gated_passed`, `ingested_at`)."""
    return f"{step.value}_{name}"


def step_update(file_id: str, step: Step, fields: Mapping[str, Any], *, at: datetime) -> dict[str, Any]:
    """UpdateItem arguments (without the table) that write the step's own attributes, `<step>_<name>`, and
    `<step>_at`: a step run again overwrites its own, and no other's."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    assignments = []
    for index, (name, value) in enumerate({"at": at.isoformat(timespec="seconds"), **fields}.items()):
        names[f"#a{index}"], values[f":a{index}"] = step_attribute(step, name), _value(value)
        assignments.append(f"#a{index} = :a{index}")
    return {
        "Key": {FILE_KEY: {"S": file_id}},
        "UpdateExpression": "SET " + ", ".join(assignments),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def state_update(file_id: str, step: Step) -> dict[str, Any]:
    """UpdateItem arguments that make `step` the file's `state` if it takes the file as far as it got or
    further (RANK); a failure always. A caller treats a failed condition as "the file got further already"."""
    key = {FILE_KEY: {"S": file_id}}
    if step is Step.FAILED:
        return {
            "Key": key,
            "UpdateExpression": "SET #state = :state",
            "ExpressionAttributeNames": {"#state": STATE},
            "ExpressionAttributeValues": {":state": _value(step.value)},
        }
    return {
        "Key": key,
        "UpdateExpression": "SET #state = :state, #rank = :rank",
        "ConditionExpression": "attribute_not_exists(#rank) OR #rank <= :rank",
        "ExpressionAttributeNames": {"#state": STATE, "#rank": STATE_RANK},
        "ExpressionAttributeValues": {":state": _value(step.value), ":rank": _value(RANK[step])},
    }


@dataclass(frozen=True)
class Entry:
    """What one step records of one file: the handlers work out their entries from their results (pure), and
    record them at the edge."""

    file_id: str
    step: Step
    fields: Mapping[str, Any] = field(default_factory=dict)


class Ledger(Protocol):
    def record(self, file_id: str, step: Step, **fields: Any) -> None: ...


def record_all(ledger: Ledger, entries: list[Entry]) -> None:
    for entry in entries:
        ledger.record(entry.file_id, entry.step, **entry.fields)


class DynamoLedger:
    """The ledger in a DynamoDB table: a record is the step's attributes, then the state where it advances
    (two UpdateItems: DynamoDB cannot make part of one conditional)."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client, self.table = client, table

    def record(self, file_id: str, step: Step, **fields: Any) -> None:
        self.client.update_item(TableName=self.table, **step_update(file_id, step, fields, at=datetime.now(UTC)))
        # a failed condition: the file got further already (a retried or repeated earlier step), its state stays
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(TableName=self.table, **state_update(file_id, step))

    def items(self) -> list[dict[str, Any]]:
        """Every file's record, as Python values (a scan: for the local run and small tables)."""
        found = []
        for page in self.client.get_paginator("scan").paginate(TableName=self.table):
            found += [{k: plain(v) for k, v in item.items()} for item in page["Items"]]
        return sorted(found, key=lambda item: str(item[FILE_KEY]))


def create_table(client: DynamoDBClient, table: str) -> DynamoLedger:
    """A ledger table as the storage stack defines it (the local run's, in moto), and the ledger on it."""
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": FILE_KEY, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": FILE_KEY, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return DynamoLedger(client, table)


POSITION_PREFIX = "source-position:"
POSITION = "position"
"""The position item's attribute: Position.text() (pipeline/extract.py)."""


def position_id(source_name: str) -> str:
    """The ledger's id of a source's position (`dataset/table`)."""
    return f"{POSITION_PREFIX}{source_name}"


def position_store(client: DynamoDBClient, table: str, source_name: str) -> PositionStore:
    """A source's position in the ledger table: read consistently, switched by a conditional update (the
    position read, or none), so that of two runs at once the second to commit stops (ExtractError)."""
    from pipeline.extract import PositionMoved, PositionStore

    def read_text(key: str) -> str | None:
        item = client.get_item(TableName=table, Key={FILE_KEY: {"S": key}}, ConsistentRead=True).get("Item", {})
        return item[POSITION]["S"] if POSITION in item else None

    def swap(key: str, text: str, expected: str | None) -> None:
        values = {":text": {"S": text}, ":at": {"S": datetime.now(UTC).isoformat()}}
        if expected is not None:
            values[":expected"] = {"S": expected}
        try:
            client.update_item(
                TableName=table,
                Key={FILE_KEY: {"S": key}},
                UpdateExpression="SET #p = :text, committed_at = :at",
                ConditionExpression="attribute_not_exists(#p)" if expected is None else "#p = :expected",
                ExpressionAttributeNames={"#p": POSITION},
                ExpressionAttributeValues=values,
            )
        except client.exceptions.ConditionalCheckFailedException:
            raise PositionMoved(
                f"{key} moved while this run read it: another run extracts {source_name} at the same time; this "
                "one stops (its files are duplicates of the other's, resolved by the key downstream)"
            ) from None

    return PositionStore(position_id(source_name), read_text, swap)


def ledger_from_environment() -> DynamoLedger:
    """The workspace's ledger, as a pipeline function's environment names it (LEDGER_TABLE)."""
    import boto3

    return DynamoLedger(boto3.client("dynamodb"), os.environ[LEDGER_TABLE_ENV])
