"""The pipeline's state machine as a test reads it: its definition out of a template, and which states a run
can reach from one (shared by the template tests of the ETL stack, its Glue arguments and its payloads)."""

from __future__ import annotations

import json
from typing import Any


def definition(template: dict[str, Any]) -> dict[str, Any]:
    """The state machine's definition, its Fn::Join parts joined with tokens in place of references."""
    (machine,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    body = machine["Properties"]["DefinitionString"]
    if isinstance(body, dict):
        body = "".join(
            part if isinstance(part, str) else f"REF:{part.get('Ref', 'TOKEN')}" for part in body["Fn::Join"][1]
        )
    return json.loads(body)


def reachable(states: dict[str, Any], start: str) -> set[str]:
    """The states a run can enter from `start`: by Next, Default, a Choice's rules and a Catch."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state = states[name]
        todo += [state[k] for k in ("Next", "Default") if k in state]
        todo += [rule["Next"] for rule in state.get("Choices", [])]
        todo += [catch["Next"] for catch in state.get("Catch", [])]
    return seen
