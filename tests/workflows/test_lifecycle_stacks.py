"""A workspace's deployed stacks as the lifecycle sees them (infra/lifecycle/stacks.py), against moto: found
by their tags, guarded against another branch's deploy and against switched-off components, ordered for
deletion, owned exactly; the run's deadline."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from infra.lifecycle.cli import main
from infra.lifecycle.destroy import destroy_workspace
from infra.lifecycle.janitor import find_orphans
from infra.lifecycle.stacks import (
    WAIT_DELAY_SECONDS,
    WAIT_MAX_ATTEMPTS,
    Deadline,
    DeployedStack,
    LifecycleError,
    deletion_order,
    find_workspace,
    guard_deploy,
    list_stacks,
    refuse_switched_off,
)
from infra.workspace import branch_tag_value
from tests.workflows.lifecycle_helpers import PROJECT, Clock, deploy


def test_find_returns_only_that_workspace_of_that_project(aws) -> None:
    cfn = aws["cloudformation"]
    deploy(cfn, "we-1-a", "storage", branch="feature/WEDATAIN-1-a")
    deploy(cfn, "we-1-a", "etl", branch="feature/WEDATAIN-1-a")
    deploy(cfn, "we-2-b", "storage", branch="feature/WEDATAIN-2-b")
    deploy(cfn, "we-1-a", "storage", branch="feature/WEDATAIN-1-a", project="other")
    found = find_workspace(cfn, PROJECT, "we-1-a")
    assert sorted(s.name for s in found) == ["dataplat-we-1-a-etl", "dataplat-we-1-a-storage"]


def test_guard_refuses_another_branchs_workspace(aws) -> None:
    cfn = aws["cloudformation"]
    deploy(cfn, "x", "storage", branch="feature/x")
    assert [s.name for s in guard_deploy(cfn, PROJECT, "x", "feature/x")] == ["dataplat-x-storage"]
    assert guard_deploy(cfn, PROJECT, "fresh", "fix/fresh") == []
    with pytest.raises(LifecycleError) as caught:
        guard_deploy(cfn, PROJECT, "x", "fix/x")
    assert "'feature/x'" in str(caught.value) and "'fix/x'" in str(caught.value)


def test_a_deploy_is_refused_while_a_switched_off_components_stack_is_deployed(aws, capsys) -> None:
    cfn = aws["cloudformation"]
    for component in ("storage", "monitoring", "etl", "ml"):
        deploy(cfn, "x", component, branch="feature/x")
    every = ["storage", "monitoring", "etl", "ml", "model-service"]
    assert len(refuse_switched_off(cfn, PROJECT, "x", every)) == 4, "a component not deployed yet is fine"
    with pytest.raises(LifecycleError) as caught:
        refuse_switched_off(cfn, PROJECT, "x", ["storage", "monitoring", "etl"])
    message = str(caught.value)
    assert "switches off: dataplat-x-ml (ml). A deploy would leave them as they are" in message
    assert "`python -m infra.lifecycle destroy x`" in message and "README: Switch components" in message
    assert refuse_switched_off(cfn, PROJECT, "fresh", ["storage"]) == []
    assert main(["components", "feature/x"]) == 0, "the shipped config switches nothing off"
    assert json.loads(capsys.readouterr().out)["deployed"] == [f"dataplat-x-{c}" for c in every[:4]]
    assert main(["components", "refs/pull/1/merge"]) == 2
    assert "error: cannot derive a workspace" in capsys.readouterr().err


def test_deletion_order_is_the_reverse_of_deployment_with_the_alarm_stack_last() -> None:
    """The monitoring stack holds the topic a stuck destroy alarms on: it goes after everything else."""
    at = datetime(2026, 11, 1, tzinfo=UTC)
    stacks = [
        DeployedStack(f"dataplat-w-{c}", "CREATE_COMPLETE", at + timedelta(minutes=i), {"workspace": "w"})
        for i, c in enumerate(["storage", "monitoring", "etl", "ml", "model-service", "legacy"])
    ]
    ordered = [s.name.removeprefix("dataplat-w-") for s in deletion_order(reversed(stacks), PROJECT)]
    assert ordered == ["legacy", "model-service", "ml", "etl", "storage", "monitoring"]


def test_the_waits_fit_in_what_is_left_of_the_budget() -> None:
    clock = Clock()
    deadline = Deadline.after(timedelta(minutes=10), clock)
    assert deadline.wait_attempts() == 600 // WAIT_DELAY_SECONDS
    clock.now += 9 * 60 + 58
    assert deadline.wait_attempts() == 1, "at least one look"
    assert Deadline.after(timedelta(hours=5), clock).wait_attempts() == WAIT_MAX_ATTEMPTS
    clock.now += 3600
    assert deadline.remaining() == timedelta(0)


# Exact ownership: the owner tag is the full ref's hash; the branch tag is only for people.


def test_two_refs_with_one_branch_tag_are_told_apart(aws, tmp_path, capsys) -> None:
    """`feature/x!` and `feature/x&` give one branch tag (AWS tags allow neither character)."""
    cfn = aws["cloudformation"]
    assert branch_tag_value("feature/x!") == branch_tag_value("feature/x&")
    deploy(cfn, "x", "etl", branch="feature/x!", owned=True)
    assert [s.name for s in guard_deploy(cfn, PROJECT, "x", "feature/x!")] == ["dataplat-x-etl"]
    with pytest.raises(LifecycleError, match="deployed from branch 'feature/x_'"):
        guard_deploy(cfn, PROJECT, "x", "refs/heads/feature/x&")
    now = datetime.now(UTC)
    assert find_orphans(list_stacks(cfn, PROJECT), ["main", "feature/x!"], ttl_days=14, now=now) == []
    (orphan,) = find_orphans(list_stacks(cfn, PROJECT), ["main", "feature/x&"], ttl_days=14, now=now)
    assert orphan.workspace == "x", "x& lives, but the workspace is x!'s and its branch is gone"
    with pytest.raises(LifecycleError, match="it is the workspace of branch 'feature/x_'"):
        destroy_workspace(aws.__getitem__, PROJECT, "x", owner="refs/heads/feature/x&")
    assert [s.name for s in list_stacks(cfn, PROJECT)] == ["dataplat-x-etl"]
