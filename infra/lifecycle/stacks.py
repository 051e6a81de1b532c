"""A workspace's deployed stacks as every lifecycle job sees them: listed and found by their tags (never by
today's naming rules, which may have changed since the deploy), guarded against another ref's deploy and
against switched-off components, ordered for deletion; and what the jobs share (LifecycleError, the run's
Deadline, a stack's template and account)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from infra.naming import TAG_BRANCH, TAG_OWNER, TAG_PROJECT, TAG_STAGE, TAG_WORKSPACE, Component
from infra.workspace import Stage, branch_tag_value, full_ref, owner_tag_value

if TYPE_CHECKING:  # the stubs are a development dependency, not installed where the workflows run this
    from mypy_boto3_cloudformation import CloudFormationClient

DEPLOY_ORDER = [c.value for c in Component]
"""Stacks are deployed in this order (each may use those before it), so they are deleted in reverse."""
ALARM_COMPONENT = Component.MONITORING.value
"""Deleted last, and only once every other stack of the workspace is gone: its topic is where a destroy
that cannot finish raises the alarm (nothing deployed uses it from below: storage does not reference it)."""
WAIT_DELAY_SECONDS = 5
WAIT_MAX_ATTEMPTS = 360
"""How often and how long (30 minutes) destroy waits for one stack's deletion, at most."""


class LifecycleError(RuntimeError):
    """A lifecycle action that must not go ahead; the message says why and what to do."""


@dataclass(frozen=True)
class Deadline:
    """The end of a run's time budget, on a monotonic clock (injectable for tests)."""

    at: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(cls, budget: timedelta, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + budget.total_seconds(), clock)

    def remaining(self) -> timedelta:
        return timedelta(seconds=max(0.0, self.at - self.clock()))

    def wait_attempts(self) -> int:
        """The waiter's attempts that fit in what is left (at least one, at most WAIT_MAX_ATTEMPTS)."""
        return max(1, min(WAIT_MAX_ATTEMPTS, int(self.remaining().total_seconds()) // WAIT_DELAY_SECONDS))


@dataclass(frozen=True)
class Owners:
    """Refs as their stacks' tags name them, computed once for many stacks: the exact owner tag values, and
    the lossy branch tag values of stacks deployed before the owner tag existed."""

    hashes: frozenset[str]
    branch_tags: frozenset[str]

    @classmethod
    def of(cls, refs: Iterable[str]) -> Owners:
        """`refs`: full refs or branch names."""
        full = [full_ref(ref) for ref in refs]
        return cls(
            frozenset(owner_tag_value(ref) for ref in full),
            frozenset(branch_tag_value(ref.split("/", 2)[2]) for ref in full),
        )


@dataclass(frozen=True)
class DeployedStack:
    """A live CloudFormation stack of the project, as the lifecycle sees it (name, status, tags)."""

    name: str
    status: str
    created: datetime
    tags: dict[str, str] = field(default_factory=dict)
    stack_id: str = ""

    @property
    def workspace(self) -> str:
        return self.tags.get(TAG_WORKSPACE, "")

    @property
    def branch(self) -> str:
        return self.tags.get(TAG_BRANCH, "")

    def owned_by(self, ref: str) -> bool:
        """Whether `ref` (a full ref or a branch name) deployed this stack."""
        return self.owned_by_one_of(Owners.of([ref]))

    def owned_by_one_of(self, owners: Owners) -> bool:
        """By the exact owner tag; a stack deployed before that tag existed, by its (lossy) branch tag."""
        if TAG_OWNER in self.tags:
            return self.tags[TAG_OWNER] in owners.hashes
        return self.branch in owners.branch_tags

    def component(self, project: str) -> str:
        return self.name.removeprefix(f"{project}-{self.workspace}-")


def list_stacks(cfn: CloudFormationClient, project: str | None) -> list[DeployedStack]:
    """Every live stack of the project (tagged `project`), whatever its workspace; None: every live stack
    in the account and region, whoever deployed it."""
    stacks = []
    for page in cfn.get_paginator("describe_stacks").paginate():
        for stack in page["Stacks"]:
            tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])}
            if project in (None, tags.get(TAG_PROJECT)) and stack["StackStatus"] != "DELETE_COMPLETE":
                stacks.append(
                    DeployedStack(
                        stack["StackName"], stack["StackStatus"], stack["CreationTime"], tags, stack.get("StackId", "")
                    )
                )
    return stacks


def find_workspace(cfn: CloudFormationClient, project: str, workspace: str) -> list[DeployedStack]:
    return [s for s in list_stacks(cfn, project) if s.workspace == workspace]


def find_owned(cfn: CloudFormationClient, project: str, ref: str) -> list[DeployedStack]:
    """The feature stacks `ref` deployed, found by their owner tag, whatever today's naming rules would
    call its workspace (a rule changed since the deploy does not hide them)."""
    return [
        s
        for s in list_stacks(cfn, project)
        if s.tags.get(TAG_STAGE) == Stage.FEATURE.value and TAG_OWNER in s.tags and s.owned_by(ref)
    ]


def guard_deploy(cfn: CloudFormationClient, project: str, workspace: str, branch: str) -> list[DeployedStack]:
    """Raise if the workspace's stacks belong to another ref (two branches whose names normalise alike
    share a workspace; the second must not overwrite the first). `branch`: a branch name or full ref."""
    stacks = find_workspace(cfn, project, workspace)
    others = sorted({s.branch for s in stacks if not s.owned_by(branch)})
    if others:
        raise LifecycleError(
            f"workspace {workspace!r} is deployed from branch {others[0]!r}, not from {branch!r}: the two "
            f"branch names map to the same workspace. Rename this branch (or destroy the other workspace "
            f"first: `python -m infra.lifecycle destroy {workspace}`)."
        )
    return stacks


def refuse_switched_off(
    cfn: CloudFormationClient, project: str, workspace: str, components: Collection[str]
) -> list[DeployedStack]:
    """Raise if the workspace has a deployed stack whose component config now switches off (`components`: the
    stage's, infra/config.py Components.stacks). `cdk deploy` neither updates nor deletes a stack that is not in
    the app: it would keep running and costing, its outputs stale, and a dashboard moving to another stack
    would collide with its name. Deleting it is a decision about its data, so it is named, not done."""
    stacks = find_workspace(cfn, project, workspace)
    off = [s for s in stacks if s.component(project) not in components]
    if off:
        listed = ", ".join(f"{s.name} ({s.component(project)})" for s in off)
        raise LifecycleError(
            f"workspace {workspace!r} has stacks of components its config switches off: {listed}. A deploy "
            "would leave them as they are (cdk deploys only the stacks in the app). Switch the component back "
            "on (config/project.yaml stages.<stage>.components), or delete the stack first: a feature "
            f"workspace with `python -m infra.lifecycle destroy {workspace}` (the destroy workflow, or delete "
            "and push the branch again); int or prd by hand: there a deleted stack keeps its stateful resources "
            "and prd's stacks are termination-protected (README: Switch components)."
        )
    return stacks


def deletion_order(stacks: Iterable[DeployedStack], project: str) -> list[DeployedStack]:
    """Reverse of the deploy order, except the alarm stack, which goes last (see ALARM_COMPONENT); stacks
    of components this code no longer knows go first (nothing known depends on them), newest first."""

    def key(stack: DeployedStack) -> tuple[bool, int, float]:
        component = stack.component(project)
        rank = DEPLOY_ORDER.index(component) if component in DEPLOY_ORDER else len(DEPLOY_ORDER)
        return (component == ALARM_COMPONENT, -rank, -stack.created.timestamp())

    return sorted(stacks, key=key)


def stack_template(cfn: CloudFormationClient, ident: str) -> dict[str, Any] | str | None:
    """The stack's template as deployed (botocore gives JSON as a dict, YAML as text); None if unreadable."""
    try:
        body = cfn.get_template(StackName=ident, TemplateStage="Original")["TemplateBody"]
    except ClientError:
        return None
    return dict(body) if isinstance(body, Mapping) else str(body)


def account_region_of(stacks: Iterable[DeployedStack]) -> tuple[str, str] | None:
    """Account and region from a stack ID (`arn:aws:cloudformation:<region>:<account>:stack/...`)."""
    for stack in stacks:
        parts = stack.stack_id.split(":")
        if len(parts) > 5 and parts[2] == "cloudformation":
            return parts[4], parts[3]
    return None
