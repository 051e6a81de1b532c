"""The lifecycle's decisions without an emulator (infra/lifecycle/janitor.py, infra/lifecycle/stacks.py): who
owns a workspace, which workspaces are orphans or busy, which branch list the janitor refuses, what its summary
says, in which order a workspace's stacks go, what a deploy refuses. The CloudFormation reads go to a small
fake that answers `describe_stacks` pages and `get_template` as the service does; the emulator tests
(tests/workflows/test_lifecycle_*.py) run the same functions end to end. Fast, for mutation testing."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from infra.lifecycle.janitor import (
    Orphan,
    busy_workspaces,
    find_orphans,
    janitor_summary,
    plausible_branches,
)
from infra.lifecycle.stacks import (
    WAIT_DELAY_SECONDS,
    WAIT_MAX_ATTEMPTS,
    Deadline,
    DeployedStack,
    LifecycleError,
    Owners,
    account_region_of,
    deletion_order,
    find_owned,
    find_workspace,
    guard_deploy,
    list_stacks,
    refuse_switched_off,
    stack_template,
)

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
PROJECT = "proj"


def owner(ref: str) -> str:
    return hashlib.sha256(ref.encode()).hexdigest()


def stack(
    workspace: str,
    component: str = "storage",
    *,
    branch: str | None = None,
    stage: str = "feature",
    age: timedelta = timedelta(days=1),
    status: str = "CREATE_COMPLETE",
    owned: bool = True,
    project: str = PROJECT,
) -> DeployedStack:
    """A stack of `workspace` as the lifecycle lists it: tagged as the app tags it (`owned`: with the owner
    tag, which stacks from before it lack)."""
    branch = branch if branch is not None else f"feature/{workspace}"
    tags = {"project": project, "workspace": workspace, "branch": branch, "stage": stage}
    if owned:
        tags["owner"] = owner(f"refs/heads/{branch}")
    return DeployedStack(f"{project}-{workspace}-{component}", status, NOW - age, tags)


# ---- ownership


def test_a_stack_is_owned_by_its_exact_ref_whether_given_as_a_branch_or_in_full() -> None:
    mine = stack("x", branch="feature/x!")
    assert mine.owned_by("feature/x!") and mine.owned_by("refs/heads/feature/x!")
    assert not mine.owned_by("feature/x&"), "the owner tag tells apart what the branch tag cannot"
    assert not mine.owned_by("refs/tags/feature/x!"), "a tag is not the branch of the same name"
    assert (mine.workspace, mine.branch, mine.component(PROJECT)) == ("x", "feature/x!", "storage")


def test_a_stack_from_before_the_owner_tag_is_owned_by_its_branch_tag() -> None:
    old = stack("x", branch="feature/x_", owned=False)
    assert old.owned_by("feature/x_") and old.owned_by("feature/x!"), "the branch tag is lossy: both map to x_"
    assert not old.owned_by("feature/y")


def test_owners_are_computed_from_full_refs_and_branch_names() -> None:
    owners = Owners.of(["main", "refs/tags/v1", "feature/a b!"])
    assert owners.hashes == frozenset(owner(r) for r in ["refs/heads/main", "refs/tags/v1", "refs/heads/feature/a b!"])
    assert owners.branch_tags == frozenset({"main", "v1", "feature/a b_"})


def test_an_untagged_stack_has_no_workspace_or_branch() -> None:
    bare = DeployedStack("other", "CREATE_COMPLETE", NOW)
    assert (bare.workspace, bare.branch, bare.tags, bare.stack_id) == ("", "", {}, "")
    assert not bare.owned_by("main")


# ---- the janitor


def test_orphans_are_workspaces_whose_branch_is_gone_or_past_the_ttl_oldest_stack_first() -> None:
    stacks = [
        stack("alive"),
        stack("gone"),
        stack("gone", "etl"),
        stack("stale", age=timedelta(days=3)),
        stack("stale", "etl", age=timedelta(days=15)),
        stack("edge", age=timedelta(days=14)),
        stack("int", stage="int", branch="main", age=timedelta(days=400)),
        stack("prd", stage="feature", branch="gone-too"),  # a persistent workspace's name is never reaped
    ]
    branches = ["main", "feature/alive", "feature/stale", "feature/edge"]
    assert find_orphans(stacks, branches, ttl_days=14, now=NOW) == [
        Orphan(
            "gone", "feature/gone", "branch 'feature/gone' no longer exists", ("proj-gone-etl", "proj-gone-storage")
        ),
        Orphan(
            "stale",
            "feature/stale",
            "older than 14 days (created 2026-11-07)",
            ("proj-stale-etl", "proj-stale-storage"),
        ),
    ]
    assert find_orphans(stacks, branches, ttl_days=13, now=NOW)[0].workspace == "edge", "past the TTL by a day"


def test_a_renamed_branch_whose_name_maps_alike_does_not_keep_another_workspace_alive() -> None:
    stacks = [stack("x", branch="feature/x!")]
    assert [o.workspace for o in find_orphans(stacks, ["main", "feature/x&"], ttl_days=14, now=NOW)] == ["x"]
    old = [stack("x", branch="feature/x_", owned=False)]
    assert find_orphans(old, ["main", "feature/x&"], ttl_days=14, now=NOW) == [], "lossy, for old stacks only"


def test_busy_workspaces_are_those_with_a_stack_in_progress() -> None:
    stacks = [
        stack("a", status="UPDATE_IN_PROGRESS"),
        stack("b", status="UPDATE_COMPLETE"),
        stack("c", status="DELETE_IN_PROGRESS"),
        stack("d", status="ROLLBACK_FAILED"),
    ]
    assert busy_workspaces(stacks) == {
        "a": "proj-a-storage UPDATE_IN_PROGRESS",
        "c": "proj-c-storage DELETE_IN_PROGRESS",
    }


def test_the_janitor_refuses_a_branch_list_that_cannot_be_the_repositorys() -> None:
    assert plausible_branches(["main", "feature/a"], "main") == ["main", "feature/a"]
    with pytest.raises(LifecycleError) as empty:
        plausible_branches([], "main")
    assert str(empty.value) == (
        "the branch list is empty: refusing to treat every feature workspace as orphaned "
        "(did listing the repository's branches fail?)"
    )
    with pytest.raises(LifecycleError, match=r"^the branch list \(2 branches\) lacks the default branch 'main'"):
        plausible_branches(["feature/a", "feature/b"], "main")


def test_the_summary_says_what_became_of_each_orphan() -> None:
    orphans = [
        {"workspace": w, "branch": f"feature/{w}", "reason": "gone"}
        for w in ["done", "stuck", "late", "refused", "broke", "later", "listed"]
    ]
    report = {
        "orphans": orphans,
        "destroyed": [
            {"workspace": "done", "stacks": ["a", "b"]},
            {
                "workspace": "stuck",
                "stuck": [{"stack": "s1", "status": "DELETE_FAILED"}, {"stack": "s2", "status": "X"}],
            },
            {"workspace": "late", "deferred": ["proj-late-ml", "proj-late-etl"]},
        ],
        "failed": {"refused": "LifecycleError: not yours", "broke": "ClientError: denied | twice\nagain"},
        "deferred": ["later"],
    }
    assert janitor_summary(report).splitlines() == [
        "| workspace | branch | why | outcome |",
        "| --- | --- | --- | --- |",
        "| done | feature/done | gone | destroyed (2 stacks) |",
        "| stuck | feature/stuck | gone | **stuck**: s1 (DELETE_FAILED), s2 (X) |",
        "| late | feature/late | gone | deferred to the next run (out of time): proj-late-ml, proj-late-etl |",
        "| refused | feature/refused | gone | refused: LifecycleError: not yours |",
        "| broke | feature/broke | gone | **failed**: ClientError: denied \\| twice again |",
        "| later | feature/later | gone | deferred to the next run (out of time) |",
        "| listed | feature/listed | gone | listed (dry run) |",
    ]
    assert janitor_summary({"orphans": []}) == janitor_summary({}) == "- nothing to reap"
    destroyed_none = {"orphans": orphans[:1], "destroyed": [{"workspace": "done"}]}
    assert janitor_summary(destroyed_none).splitlines()[-1] == "| done | feature/done | gone | destroyed (0 stacks) |"
    listed = janitor_summary({"orphans": orphans[:1]})  # a dry run's report: orphans only
    assert listed.splitlines()[-1] == "| done | feature/done | gone | listed (dry run) |"


# ---- deadlines and order


def test_a_deadline_counts_down_on_its_clock_and_bounds_the_waiter() -> None:
    now = [100.0]
    deadline = Deadline.after(timedelta(minutes=10), clock=lambda: now[0])
    assert deadline.at == 700.0 and deadline.remaining() == timedelta(minutes=10)
    assert deadline.wait_attempts() == 600 // WAIT_DELAY_SECONDS
    now[0] = 689.0
    assert deadline.wait_attempts() == 2, "11 s left: two waits of 5 s"
    now[0] = 800.0
    assert deadline.remaining() == timedelta(0) and deadline.wait_attempts() == 1, "at least one attempt"
    long = Deadline.after(timedelta(days=1), clock=lambda: 0.0)
    assert long.wait_attempts() == WAIT_MAX_ATTEMPTS == 360


def test_stacks_are_deleted_in_reverse_deploy_order_unknown_first_newest_first_and_monitoring_last() -> None:
    stacks = [
        stack("w", "monitoring"),
        stack("w", "storage"),
        stack("w", "model-service"),
        stack("w", "etl"),
        stack("w", "old-thing", age=timedelta(days=3)),
        stack("w", "newer-thing", age=timedelta(days=1)),
        stack("w", "ml"),
    ]
    assert [s.component(PROJECT) for s in deletion_order(stacks, PROJECT)] == [
        "newer-thing",
        "old-thing",
        "model-service",
        "ml",
        "etl",
        "storage",
        "monitoring",
    ]


def test_the_account_and_region_come_from_the_first_stack_id_that_has_them() -> None:
    arn = "arn:aws:cloudformation:eu-west-1:123456789012:stack/proj-w-storage/abc"
    with_id = DeployedStack("s", "CREATE_COMPLETE", NOW, stack_id=arn)
    other = DeployedStack("s", "CREATE_COMPLETE", NOW, stack_id="arn:aws:sns:eu-west-1:123456789012:topic")
    short = DeployedStack("s", "CREATE_COMPLETE", NOW, stack_id="arn:aws:cloudformation:eu-west-1:1")
    assert account_region_of([other, short, with_id]) == ("123456789012", "eu-west-1")
    assert account_region_of([other, short]) is None and account_region_of([]) is None


# ---- reads from CloudFormation


class FakeCloudFormation:
    """describe_stacks in pages, as the paginator gives them; get_template per stack."""

    def __init__(self, stacks: list[DeployedStack], templates: dict[str, Any] | None = None) -> None:
        self.pages = [
            {
                "Stacks": [
                    {
                        "StackName": s.name,
                        "StackStatus": s.status,
                        "CreationTime": s.created,
                        **({"Tags": [{"Key": k, "Value": v} for k, v in s.tags.items()]} if s.tags else {}),
                        **({"StackId": s.stack_id} if s.stack_id else {}),
                    }
                    for s in stacks[i : i + 2]
                ]
            }
            for i in range(0, len(stacks), 2)
        ]
        self.templates = templates or {}

    def get_paginator(self, operation: str) -> FakeCloudFormation:
        assert operation == "describe_stacks"
        return self

    def paginate(self) -> list[dict[str, Any]]:
        return self.pages

    def get_template(self, StackName: str, TemplateStage: str) -> dict[str, Any]:
        assert TemplateStage == "Original"
        if StackName not in self.templates:
            raise ClientError({"Error": {"Code": "ValidationError", "Message": "no such stack"}}, "GetTemplate")
        return {"TemplateBody": self.templates[StackName]}


def test_stacks_are_listed_by_their_project_tag_across_pages_and_deleted_ones_left_out() -> None:
    stacks = [
        stack("a"),
        stack("b", status="DELETE_COMPLETE"),
        stack("c", project="other"),
        DeployedStack("untagged", "CREATE_COMPLETE", NOW, stack_id="arn:x"),
        stack("d", "etl"),
    ]
    cfn = FakeCloudFormation(stacks)
    assert [s.name for s in list_stacks(cfn, PROJECT)] == ["proj-a-storage", "proj-d-etl"]  # type: ignore[arg-type]
    everything = list_stacks(cfn, None)  # type: ignore[arg-type]
    assert [s.name for s in everything] == ["proj-a-storage", "other-c-storage", "untagged", "proj-d-etl"]
    assert everything[2] == DeployedStack("untagged", "CREATE_COMPLETE", NOW, {}, "arn:x")
    assert everything[0] == stacks[0], "name, status, creation time and tags as listed"


def test_a_workspace_and_a_refs_feature_stacks_are_found_by_their_tags() -> None:
    stacks = [
        stack("x"),
        stack("x", "etl"),
        stack("y"),
        stack("x", "ml", owned=False),
        stack("int", stage="int", branch="feature/x"),
        stack("x", project="p2"),  # another project's, of the same workspace and branch
    ]
    cfn = FakeCloudFormation(stacks)
    assert [s.name for s in find_workspace(cfn, PROJECT, "x")] == ["proj-x-storage", "proj-x-etl", "proj-x-ml"]  # type: ignore[arg-type]
    owned = find_owned(cfn, PROJECT, "feature/x")  # type: ignore[arg-type]
    assert [s.name for s in owned] == ["proj-x-storage", "proj-x-etl"], "feature stacks with its owner tag only"


def test_a_deploy_is_refused_over_another_refs_workspace_naming_both_branches() -> None:
    others = stack("x", branch="feature/x&", project="p2")  # another project's workspace of the same name
    cfn = FakeCloudFormation([stack("x", branch="feature/x!"), stack("x", "etl", branch="feature/x!"), others])
    assert len(guard_deploy(cfn, PROJECT, "x", "feature/x!")) == 2  # type: ignore[arg-type]
    with pytest.raises(LifecycleError) as refused:
        guard_deploy(cfn, PROJECT, "x", "feature/x&")  # type: ignore[arg-type]
    assert str(refused.value).startswith(
        "workspace 'x' is deployed from branch 'feature/x!', not from 'feature/x&': the two branch names map to "
        "the same workspace. Rename this branch (or destroy the other workspace first: "
        "`python -m infra.lifecycle destroy x`)."
    )
    assert guard_deploy(FakeCloudFormation([]), PROJECT, "x", "feature/x&") == []  # type: ignore[arg-type]


def test_a_deploy_is_refused_while_a_switched_off_components_stack_is_deployed() -> None:
    cfn = FakeCloudFormation(
        [stack("w", "storage"), stack("w", "ml"), stack("w", "etl"), stack("w", "x", project="p2")]
    )
    assert len(refuse_switched_off(cfn, PROJECT, "w", ["storage", "ml", "etl"])) == 3  # type: ignore[arg-type]
    with pytest.raises(LifecycleError) as refused:
        refuse_switched_off(cfn, PROJECT, "w", ["storage"])  # type: ignore[arg-type]
    assert str(refused.value) == (
        "workspace 'w' has stacks of components its config switches off: proj-w-ml (ml), proj-w-etl (etl). A deploy "
        "would leave them as they are (cdk deploys only the stacks in the app). Switch the component back "
        "on (config/project.yaml stages.<stage>.components), or delete the stack first: a feature "
        "workspace with `python -m infra.lifecycle destroy w` (the destroy workflow, or delete "
        "and push the branch again); int or prd by hand: there a deleted stack keeps its stateful resources "
        "and prd's stacks are termination-protected (README: Switch components)."
    )


def test_a_template_is_read_as_deployed_or_none() -> None:
    cfn = FakeCloudFormation([], {"json": {"Resources": {}}, "yaml": "Resources: {}\n"})
    assert stack_template(cfn, "json") == {"Resources": {}}  # type: ignore[arg-type]
    assert stack_template(cfn, "yaml") == "Resources: {}\n"  # type: ignore[arg-type]
    assert stack_template(cfn, "gone") is None  # type: ignore[arg-type]
