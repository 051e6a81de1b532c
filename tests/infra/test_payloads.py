"""The state machine and the functions it calls share their payloads (lambdas/payloads.py): every path the
definition reads under `$.validation` and `$.gate` is a key the handler's result type has, on the branch
where it is read; what it passes the functions is their event type; and the handlers, run, return exactly
those keys."""

from __future__ import annotations

import re
from typing import Any, get_type_hints

import pytest

from infra.naming import Component
from infra.workspace import Stage
from lambdas.payloads import BatchEvent, FileEvent, GateVerdict, Quarantined, Validated
from tests.infra.state_machine import definition, reachable

READ = re.compile(r"\$\.(validation|gate)\.([A-Za-z_]+)")


def keys(kind: type) -> set[str]:
    return set(get_type_hints(kind))


@pytest.fixture(scope="module")
def machine(workspaces) -> dict[str, Any]:
    return definition(workspaces[Stage.FEATURE].templates[Component.ETL].to_json())


def reads(node: Any) -> set[tuple[str, str]]:
    """Every (`validation` | `gate`, key) a state reads, wherever the path is written: a `.$` parameter, a
    Choice's Variable or `...Path` comparison, InputPath, OutputPath, ResultSelector."""
    if isinstance(node, str):
        return set(READ.findall(node))
    if isinstance(node, dict):
        return {found for value in node.values() for found in reads(value)}
    if isinstance(node, list):
        return {found for value in node for found in reads(value)}
    return set()


def test_the_scan_sees_every_way_a_path_is_written() -> None:
    state = {
        "Choices": [{"Variable": "$.gate.passed", "BooleanEqualsPath": "$.gate.passd", "Next": "x"}],
        "InputPath": "$.validation.kee",
        "ResultPath": "$.gate",  # written, not read: no key
        "Parameters": {"k.$": "$.validation.key"},
    }
    assert reads(state) == {("gate", "passed"), ("gate", "passd"), ("validation", "kee"), ("validation", "key")}


def test_every_path_read_is_a_key_the_handler_returns(machine) -> None:
    read = reads(machine)
    assert ("validation", "valid") in read and ("gate", "passed") in read, "the test sees the Choices"
    assert {key for source, key in read if source == "gate"} <= keys(GateVerdict)
    assert {key for source, key in read if source == "validation"} <= keys(Validated) | keys(Quarantined)


def test_each_branch_reads_only_what_its_verdict_has(machine) -> None:
    """After `Readable?`: the quarantined branch reads a Quarantined result, the other a Validated one."""
    states = machine["States"]
    choice = states["Readable?"]
    (rule,) = choice["Choices"]
    assert (rule["Variable"], rule["BooleanEquals"]) == ("$.validation.valid", False)
    quarantined = {k for name in reachable(states, rule["Next"]) for s, k in reads(states[name]) if s == "validation"}
    assert quarantined and quarantined <= keys(Quarantined), "the notice says why, from a Quarantined result"
    readable = {k for name in reachable(states, choice["Default"]) for s, k in reads(states[name]) if s == "validation"}
    assert "key" in readable and readable <= keys(Validated)


def test_the_functions_get_their_event_types(machine) -> None:
    states = machine["States"]
    gate, validate = states["QualityGate"], states["ValidateFile"]  # the function's own payload (response only)
    assert {k.removesuffix(".$") for k in gate["Parameters"]} == keys(BatchEvent)
    assert "Parameters" not in validate and "InputPath" not in validate, "validate gets the Input state's output"
    assert states["Input"]["Next"] == "ValidateFile"
    assert set(states["Input"]["Parameters"]) == {f"{k}.$" for k in keys(FileEvent)}


def test_the_handlers_return_exactly_their_types(handler_runs_in_feature) -> None:
    readable, empty = handler_runs_in_feature["validate"].returned
    assert set(readable) == keys(Validated) and readable["valid"] is True
    assert set(empty) == keys(Quarantined) and empty["valid"] is False
    for verdict in handler_runs_in_feature["gate"].returned:
        assert set(verdict) == keys(GateVerdict)
    assert [v["passed"] for v in handler_runs_in_feature["gate"].returned] == [True, False]
