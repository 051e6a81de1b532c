"""The branch lifecycle's logic, in Python rather than workflow shell: what the deploy, destroy and
janitor workflows call (through the CLI at the bottom), tested against moto.

- guard: refuse to deploy over a workspace whose stacks carry another branch's tag;
- find: a workspace's stacks by their tags (so stacks that only a deleted branch defined are found);
- destroy: empty what must be emptied, delete in reverse dependency order (the alarm stack last), retry a
  stack that fails to delete after emptying it again, remove the bootstrap assets no other stack uses,
  report what went and, when something will not go, name it and raise the workspace's alarm;
- orphans: feature workspaces whose branch is gone or that are older than the TTL.

A destroy or janitor run has a time budget (`--budget-minutes`, below the job's timeout and so its
credentials' lifetime): no stack deletion starts, and no wait goes on, past it; what is left is reported
as deferred (the janitor finishes it on its next run) instead of failing later with ExpiredToken.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError, WaiterError

from infra.naming import TAG_BRANCH, TAG_OWNER, TAG_PROJECT, TAG_STAGE, TAG_WORKSPACE, Component
from infra.stack_outputs import ALARM_TOPIC_OUTPUT
from infra.workspace import (
    PERSISTENT_WORKSPACES,
    Stage,
    WorkspaceError,
    branch_tag_value,
    full_ref,
    owner_tag_value,
    resolve,
)

if TYPE_CHECKING:  # the stubs are a development dependency, not installed where the workflows run this
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import StackResourceSummaryTypeDef
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import DeleteObjectsOutputTypeDef, ObjectIdentifierTypeDef
    from mypy_boto3_sns import SNSClient

DEPLOY_ORDER = [c.value for c in Component]
"""Stacks are deployed in this order (each may use those before it), so they are deleted in reverse."""
ALARM_COMPONENT = Component.MONITORING.value
"""Deleted last, and only once every other stack of the workspace is gone: its topic is where a destroy
that cannot finish raises the alarm (nothing deployed uses it from below: storage does not reference it)."""
"""The alarm stack's output holding its topic (infra/stacks/monitoring.py)."""
DELETE_ATTEMPTS = 3
"""How often destroy asks CloudFormation to delete one stack before it reports the stack as stuck."""
WAIT_DELAY_SECONDS = 5
WAIT_MAX_ATTEMPTS = 360
"""How often and how long (30 minutes) destroy waits for one stack's deletion, at most."""
STACK_MINIMUM = timedelta(minutes=2)
"""No stack deletion starts with less of the budget left: emptying and one delete request need it."""
WORKSPACE_MINIMUM = timedelta(minutes=10)
"""The janitor starts no workspace with less of its budget left: the rest are deferred to its next run."""
CONTAINER_INSIGHTS_LOG_GROUP = "/aws/ecs/containerinsights/{cluster}/performance"
"""Where ECS Container Insights writes a cluster's metrics: a group ECS creates, CloudFormation does not own."""


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
        return max(1, min(WAIT_MAX_ATTEMPTS, int(self.remaining().total_seconds() // WAIT_DELAY_SECONDS)))


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


def empty_bucket(s3: S3Client, bucket: str) -> int:
    """Delete every object version and delete marker; returns how many went."""
    deleted = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        victims: list[ObjectIdentifierTypeDef] = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for start in range(0, len(victims), 1000):
            _refused_deletes(
                bucket,
                s3.delete_objects(Bucket=bucket, Delete={"Objects": victims[start : start + 1000], "Quiet": True}),
            )
        deleted += len(victims)
    return deleted


def _refused_deletes(bucket: str, response: DeleteObjectsOutputTypeDef) -> None:
    """DeleteObjects answers 200 and lists the keys it refused: an emptied bucket must be empty."""
    errors = response.get("Errors", [])
    if errors:
        first = errors[0]
        raise LifecycleError(
            f"s3://{bucket}: {len(errors)} objects not deleted, e.g. {first.get('Key')!r}: "
            f"{first.get('Code')} {first.get('Message', '')}".rstrip()
        )


def empty_repository(ecr: ECRClient, repository: str) -> int:
    deleted = 0
    for page in ecr.get_paginator("list_images").paginate(repositoryName=repository):
        images = page.get("imageIds", [])
        if images:
            ecr.batch_delete_image(repositoryName=repository, imageIds=images)
            deleted += len(images)
    return deleted


@dataclass(frozen=True)
class StuckResource:
    """A resource CloudFormation could not delete, with its reason (from the stack's events)."""

    logical_id: str
    physical_id: str
    type: str
    reason: str


@dataclass
class StuckStack:
    """A stack still there after every attempt: what the report, stderr and the alarm name."""

    stack: str
    status: str
    reason: str
    resources: list[StuckResource] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = f"stack {self.stack} ({self.status}): {self.reason or 'no reason given'}"
        return [head] + [f"  {r.type} {r.logical_id} ({r.physical_id}): {r.reason}" for r in self.resources]


@dataclass
class DestroyReport:
    """What a destroy did. `stacks`: deleted or attempted, in order; `stuck`: those still there after
    every attempt; `kept`: not attempted (the alarm stack, kept for the alarm while another is stuck);
    `assets`: bootstrap objects (s3://bucket/key) and image tags (ecr:repository:tag) removed;
    `deferred`: stacks left for a later run because the time budget ran out (not stuck: nothing failed)."""

    workspace: str
    stacks: list[str] = field(default_factory=list)
    emptied: dict[str, int] = field(default_factory=dict)
    log_groups: list[str] = field(default_factory=list)
    dry_run: bool = False
    retried: list[str] = field(default_factory=list)
    stuck: list[StuckStack] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    assets: list[str] = field(default_factory=list)
    alarm: dict[str, str] | None = None
    notes: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)

    def stuck_lines(self) -> list[str]:
        return [line for stuck in self.stuck for line in stuck.lines()]


def destroy_workspace(
    client: Callable[[str], Any],
    project: str,
    workspace: str,
    *,
    dry_run: bool = False,
    wait: bool = True,
    attempts: int = DELETE_ATTEMPTS,
    asset_grace: timedelta | None = None,
    deadline: Deadline | None = None,
    owner: str | None = None,
) -> DestroyReport:
    """Delete every stack tagged with the workspace, then what CloudFormation does not own and the
    workspace alone used:

    - each stack's buckets and repositories are emptied first, and again before each retry: a stack left
      DELETE_FAILED (by this run or an earlier one: a bucket refilled during deletion) is deleted again, up
      to `attempts` times; what still will not go is reported by name and raises the workspace's alarm,
      whose stack (ALARM_COMPONENT) is deleted last and kept while anything else is stuck;
    - the log groups that services created for the workspace's resources: `/aws/lambda/<function>` (the
      CDK's custom-resource providers write there) and Container Insights' group of each ECS cluster;
    - the bootstrap assets (files in the CDK's bucket, images in its repository) that no stack left in the
      account and region references, once older than `asset_grace` (default ASSET_GRACE; see unused_asset).

    With a `deadline`, no stack is started with less than STACK_MINIMUM left and no wait outlasts it: the
    stacks not done are `deferred` (neither stuck nor alarmed), and the assets wait for a later run.
    With an `owner` (a full ref), every stack must be that ref's, or nothing is destroyed.

    `client(service)` makes the AWS clients: `boto3.client`, or an emulator's."""
    if workspace in PERSISTENT_WORKSPACES:
        raise LifecycleError(
            f"refusing to destroy {workspace!r}: it is a persistent stage's workspace "
            "(int and prd are destroyed by hand, never by a workflow)"
        )
    cfn: CloudFormationClient = client("cloudformation")
    stacks = find_workspace(cfn, project, workspace)
    persistent = [s.name for s in stacks if s.tags.get(TAG_STAGE) != Stage.FEATURE.value]
    if persistent:
        raise LifecycleError(
            f"refusing to destroy {workspace!r}: stacks {persistent} are not tagged {TAG_STAGE}={Stage.FEATURE.value}"
        )
    foreign = sorted({s.branch for s in stacks if owner is not None and not s.owned_by(owner)})
    if foreign:
        raise LifecycleError(
            f"refusing to destroy {workspace!r} for {owner!r}: it is the workspace of branch "
            f"{foreign[0]!r} (deployed from there); that branch's deletion destroys it"
        )
    report = DestroyReport(workspace, dry_run=dry_run)
    if dry_run:
        report.stacks = [s.name for s in deletion_order(stacks, project)]
        return report
    qualifiers: frozenset[str] = frozenset()  # the bootstrap locations the deleted templates named
    for stack in deletion_order(stacks, project):
        if stack.component(project) == ALARM_COMPONENT and report.stuck:
            report.kept.append(stack.name)
            continue
        if report.deferred or (deadline is not None and deadline.remaining() < STACK_MINIMUM):
            report.deferred.append(stack.name)  # in order: a stack after a deferred one may depend on it
            continue
        template = stack_template(cfn, stack.stack_id or stack.name)
        report.stacks.append(stack.name)
        stuck = _delete_stack(client, stack, report, wait=wait, attempts=attempts, deadline=deadline)
        if stack.name in report.deferred:
            continue
        if stuck:
            report.stuck.append(stuck)
        elif template is not None:
            qualifiers |= referenced_assets(template, own=True).qualifiers
    if report.stuck:
        report.alarm = raise_alarm(client, project, workspace, report)
    account_region = account_region_of(stacks)
    if report.deferred:
        report.notes.append(
            f"out of time: {len(report.deferred)} stack(s) deferred to a later run; bootstrap assets not swept"
        )
    elif account_region:
        report.assets = delete_unused_assets(
            client,
            qualifiers,
            *account_region,
            grace=ASSET_GRACE if asset_grace is None else asset_grace,
            notes=report.notes,
        )
    return report


def _delete_stack(
    client: Callable[[str], Any],
    stack: DeployedStack,
    report: DestroyReport,
    *,
    wait: bool,
    attempts: int,
    deadline: Deadline | None = None,
) -> StuckStack | None:
    """Delete one stack, emptying it before every attempt, then the log groups its gone resources made;
    None when it went (or, out of time and still deleting, was deferred), else what is stuck."""
    cfn: CloudFormationClient = client("cloudformation")
    ident = stack.stack_id or stack.name
    groups: set[str] = set()
    status: str | None = stack.status
    stuck = None
    for attempt in range(1, attempts + 1):
        if attempt > 1 and stack.name not in report.retried:
            report.retried.append(stack.name)
        groups |= _service_log_groups(_empty_stack(client, ident, report))
        cfn.delete_stack(StackName=ident)
        if wait:
            tries = deadline.wait_attempts() if deadline is not None else WAIT_MAX_ATTEMPTS
            with contextlib.suppress(WaiterError):  # DELETE_FAILED (or still in progress): the status tells
                cfn.get_waiter("stack_delete_complete").wait(
                    StackName=ident, WaiterConfig={"Delay": WAIT_DELAY_SECONDS, "MaxAttempts": tries}
                )
        status = _stack_status(cfn, ident)
        if status in (None, "DELETE_COMPLETE") or (not wait and status == "DELETE_IN_PROGRESS"):
            break
        if deadline is not None and deadline.remaining() < STACK_MINIMUM:
            report.deferred.append(stack.name)  # still deleting, or no time for another attempt
            return None
    else:
        stuck = _stuck_stack(cfn, stack.name, ident, status or "?")
        present = [r for r in _physical_resources(cfn, ident) if r.get("ResourceStatus") != "DELETE_COMPLETE"]
        groups -= _service_log_groups(present)  # a resource still there may write to its group again
    for group in sorted(groups):
        if delete_log_group(client("logs"), group):
            report.log_groups.append(group)
    return stuck


def _service_log_groups(resources: Iterable[Mapping[str, Any]]) -> set[str]:
    """The log groups services create for these resources, which CloudFormation does not own."""
    groups = set()
    for resource in resources:
        kind, physical = resource["ResourceType"], resource.get("PhysicalResourceId")
        if physical and kind == "AWS::Lambda::Function":
            groups.add(f"/aws/lambda/{physical}")
        elif physical and kind == "AWS::ECS::Cluster":
            groups.add(CONTAINER_INSIGHTS_LOG_GROUP.format(cluster=physical.rsplit("/", 1)[-1]))
    return groups


def _empty_stack(client: Callable[[str], Any], ident: str, report: DestroyReport) -> list[StackResourceSummaryTypeDef]:
    """Empty the stack's buckets and repositories still there; returns its resources as listed."""
    s3: S3Client = client("s3")
    ecr: ECRClient = client("ecr")
    resources = _physical_resources(client("cloudformation"), ident)
    for resource in resources:
        kind, physical = resource["ResourceType"], resource.get("PhysicalResourceId")
        if not physical or resource.get("ResourceStatus") == "DELETE_COMPLETE":
            continue
        if kind == "AWS::S3::Bucket":
            emptied = _ignore_missing(lambda p=physical: empty_bucket(s3, p))
            report.emptied[f"s3://{physical}"] = report.emptied.get(f"s3://{physical}", 0) + emptied
        elif kind == "AWS::ECR::Repository":
            emptied = _ignore_missing(lambda p=physical: empty_repository(ecr, p))
            report.emptied[f"ecr:{physical}"] = report.emptied.get(f"ecr:{physical}", 0) + emptied
    return resources


def _stack_status(cfn: CloudFormationClient, ident: str) -> str | None:
    """The stack's status; None once it no longer exists (asked by name after deletion)."""
    try:
        return str(cfn.describe_stacks(StackName=ident)["Stacks"][0]["StackStatus"])
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise


def _stuck_stack(cfn: CloudFormationClient, name: str, ident: str, status: str) -> StuckStack:
    events = [
        e for page in cfn.get_paginator("describe_stack_events").paginate(StackName=ident) for e in page["StackEvents"]
    ]
    reason = next(
        (
            e.get("ResourceStatusReason", "")
            for e in events
            if e["LogicalResourceId"] == name and e["ResourceStatus"] == status
        ),
        "",
    )
    return StuckStack(name, status, reason, failed_resources(events, name))


def failed_resources(events: Iterable[Mapping[str, Any]], stack_name: str) -> list[StuckResource]:
    """The resources that failed to delete in the stack's last delete attempt: its events (newest
    first, as DescribeStackEvents gives them) back to the stack's DELETE_IN_PROGRESS."""
    found: dict[str, StuckResource] = {}
    for event in events:
        logical = event["LogicalResourceId"]
        if logical == stack_name:
            if event["ResourceStatus"] == "DELETE_IN_PROGRESS":
                break
            continue
        if event["ResourceStatus"] == "DELETE_FAILED" and logical not in found:
            found[logical] = StuckResource(
                logical,
                event.get("PhysicalResourceId", ""),
                event["ResourceType"],
                event.get("ResourceStatusReason", ""),
            )
    return list(found.values())


def alarm_message(project: str, workspace: str, stuck: Iterable[StuckStack], kept: Iterable[str]) -> tuple[str, str]:
    """Subject (SNS: at most 100 characters) and body of the alarm a destroy raises when it gives up."""
    stuck = list(stuck)
    subject = f"{project} {workspace}: destroy left {len(stuck)} stack(s) behind"[:100]
    body = [
        f"Destroying workspace {workspace!r} of {project} did not finish after {DELETE_ATTEMPTS} attempts "
        "per stack. What will not go:",
        "",
    ]
    body += [line for s in stuck for line in s.lines()]
    kept = list(kept)
    if kept:
        body += ["", f"Kept until those are gone (this alarm's topic): {', '.join(kept)}"]
    body += [
        "",
        "Remove or free the resources named above, then run `python -m infra.lifecycle destroy "
        f"{workspace}` (or the destroy workflow); the daily janitor retries it meanwhile.",
    ]
    return subject, "\n".join(body)


def raise_alarm(client: Callable[[str], Any], project: str, workspace: str, report: DestroyReport) -> dict[str, str]:
    """Publish the stuck stacks and resources to the workspace's alarm topic (the ALARM_TOPIC_OUTPUT of
    its alarm stack); returns the topic and message ID, or why nothing was sent."""
    cfn: CloudFormationClient = client("cloudformation")
    alarm_stack = f"{project}-{workspace}-{ALARM_COMPONENT}"
    try:
        outputs = cfn.describe_stacks(StackName=alarm_stack)["Stacks"][0].get("Outputs", [])
    except ClientError as exc:
        return {"error": f"no alarm topic: stack {alarm_stack} cannot be read ({exc})"}
    topic = next((o["OutputValue"] for o in outputs if o["OutputKey"] == ALARM_TOPIC_OUTPUT), None)
    if topic is None:
        return {"error": f"no alarm topic: stack {alarm_stack} has no output {ALARM_TOPIC_OUTPUT}"}
    subject, message = alarm_message(project, workspace, report.stuck, report.kept)
    try:
        sns: SNSClient = client("sns")
        sent = sns.publish(TopicArn=topic, Subject=subject, Message=message)
    except ClientError as exc:
        return {"topic": topic, "error": str(exc)}
    return {"topic": topic, "message_id": sent["MessageId"]}


def delete_log_group(logs: CloudWatchLogsClient, name: str) -> bool:
    """Delete a log group if it exists; True if it did."""
    try:
        logs.delete_log_group(logGroupName=name)
    except logs.exceptions.ResourceNotFoundException:
        return False
    return True


def _physical_resources(cfn: CloudFormationClient, stack: str) -> list[StackResourceSummaryTypeDef]:
    resources: list[StackResourceSummaryTypeDef] = []
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack):
        resources += page["StackResourceSummaries"]
    return resources


def _ignore_missing(action: Any) -> int:
    try:
        return int(action())
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchBucket", "RepositoryNotFoundException"):
            return 0
        raise


# Bootstrap assets. The CDK CLI publishes every file asset (Lambda code, Glue scripts, the stack templates
# themselves) to the bootstrap bucket `cdk-<qualifier>-assets-<account>-<region>` under `<hash>.<ext>`, and
# every image to `cdk-<qualifier>-container-assets-<account>-<region>` under the tag `<hash>`, shared by
# every stack and stage of the account. A template names the assets it uses by those hashes (S3Key, Glue
# script paths, image URIs, nested template URLs, BucketDeployment sources): scanning its strings for them,
# as `cdk gc` does, finds every kind without knowing each property.
ASSET_HASH = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
DEFAULT_QUALIFIER = "hnb659fds"
"""The CDK's default bootstrap qualifier: swept even when no live template names it any more."""
BOOTSTRAP_NAME = re.compile(r"cdk-([a-z0-9]+)-(?:container-)?assets-")
ASSET_GRACE = timedelta(days=1)
"""Unreferenced assets younger than this stay (cdk gc's default `--created-buffer-days`): a deploy
publishes its assets before CloudFormation's template references them."""


@dataclass(frozen=True)
class AssetRefs:
    """Asset hashes that templates reference, and the bootstrap qualifiers their locations name."""

    hashes: frozenset[str] = frozenset()
    qualifiers: frozenset[str] = frozenset()

    def __or__(self, other: AssetRefs) -> AssetRefs:
        return AssetRefs(self.hashes | other.hashes, self.qualifiers | other.qualifiers)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def template_asset_hash(template: Mapping[str, Any]) -> str:
    """The hash the CLI published the template itself under (`<hash>.json`): SHA-256 of the file the
    synthesizer wrote, `JSON.stringify(template, undefined, 1)`, which this serialisation reproduces."""
    return hashlib.sha256(json.dumps(template, indent=1, ensure_ascii=False).encode()).hexdigest()


def referenced_assets(template: Mapping[str, Any] | str, *, own: bool = True) -> AssetRefs:
    """The assets a template uses (a dict, or the text of a template CloudFormation could not give as
    JSON); `own`: with the hash of the template's own published copy."""
    strings = list(_strings(template))
    hashes = {h for s in strings for h in ASSET_HASH.findall(s)}
    if own and isinstance(template, Mapping):
        hashes.add(template_asset_hash(template))
    return AssetRefs(frozenset(hashes), frozenset(q for s in strings for q in BOOTSTRAP_NAME.findall(s)))


def asset_hash(name: str) -> str | None:
    """The asset hash an object key (`<hash>.zip`) or image tag (`<hash>`) stands for; None otherwise."""
    stem = name.split(".", 1)[0]
    return stem if ASSET_HASH.fullmatch(stem) else None


def bootstrap_locations(qualifiers: Iterable[str], account: str, region: str) -> tuple[list[str], list[str]]:
    """The bootstrap buckets and image repositories of these qualifiers (the default synthesizer's names)."""
    qualifiers = sorted(set(qualifiers))
    return (
        [f"cdk-{q}-assets-{account}-{region}" for q in qualifiers],
        [f"cdk-{q}-container-assets-{account}-{region}" for q in qualifiers],
    )


def live_asset_refs(cfn: CloudFormationClient) -> AssetRefs | None:
    """What every live stack in the account and region references, whoever deployed it (other workspaces,
    int and prd, other CDK apps); None if one template cannot be read (then nothing is safe to delete).
    Stacks in progress count: their template is the one being deployed."""
    refs = AssetRefs()
    for stack in list_stacks(cfn, None):
        template = stack_template(cfn, stack.stack_id or stack.name)
        if template is None:
            return None
        refs |= referenced_assets(template, own=True)
    return refs


def delete_unused_assets(
    client: Callable[[str], Any],
    qualifiers: frozenset[str],
    account: str,
    region: str,
    *,
    grace: timedelta = ASSET_GRACE,
    now: datetime | None = None,
    notes: list[str],
) -> list[str]:
    """Delete from the bootstrap buckets and repositories (of `qualifiers`, the live stacks' and the default)
    every asset no live stack references that is older than `grace` (every version of a file, every tag of
    an image): a destroyed workspace's, earlier pushes' of a branch. Returns what went."""
    cfn: CloudFormationClient = client("cloudformation")
    s3: S3Client = client("s3")
    ecr: ECRClient = client("ecr")
    busy = [s.name for s in list_stacks(cfn, None) if s.status.endswith("_IN_PROGRESS")]
    if busy:  # a deploy is on its way: what it is about to reference is not in a template yet
        notes.append(f"bootstrap assets kept: stacks in progress ({', '.join(busy[:3])})")
        return []
    live = live_asset_refs(cfn)
    if live is None:
        notes.append("bootstrap assets kept: a live stack's template could not be read")
        return []
    cutoff = (now or datetime.now(UTC)) - grace
    buckets, repositories = bootstrap_locations(qualifiers | live.qualifiers | {DEFAULT_QUALIFIER}, account, region)
    deleted: list[str] = []
    for bucket in buckets:
        victims: list[ObjectIdentifierTypeDef] = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for page in _pages_if_exists(s3.get_paginator("list_object_versions").paginate(Bucket=bucket))
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            if unused_asset(v["Key"], v["LastModified"], live=live, cutoff=cutoff)
        ]
        for start in range(0, len(victims), 1000):
            _refused_deletes(
                bucket,
                s3.delete_objects(Bucket=bucket, Delete={"Objects": victims[start : start + 1000], "Quiet": True}),
            )
        deleted += sorted({f"s3://{bucket}/{v['Key']}" for v in victims})
    for repository in repositories:
        tags = sorted(
            {
                tag
                for page in _pages_if_exists(ecr.get_paginator("describe_images").paginate(repositoryName=repository))
                for image in page.get("imageDetails", [])
                for tag in image.get("imageTags", [])
                if unused_asset(tag, image["imagePushedAt"], live=live, cutoff=cutoff)
            }
        )
        for start in range(0, len(tags), 100):
            gone = ecr.batch_delete_image(
                repositoryName=repository, imageIds=[{"imageTag": t} for t in tags[start : start + 100]]
            )
            deleted += sorted(f"ecr:{repository}:{i['imageTag']}" for i in gone.get("imageIds", []) if "imageTag" in i)
    return deleted


def sweep_assets(client: Callable[[str], Any], *, grace: timedelta = ASSET_GRACE) -> list[str]:
    """The janitor's pass over the bootstrap assets: those no live stack references, older than `grace`
    (a workspace destroyed by hand, an earlier push); the account and region from any live stack."""
    account_region = account_region_of(list_stacks(client("cloudformation"), None))
    if account_region is None:
        return []
    return delete_unused_assets(client, frozenset(), *account_region, grace=grace, notes=[])


def unused_asset(name: str, created: datetime, *, live: AssetRefs, cutoff: datetime) -> bool:
    """Whether a bootstrap object key or image tag is to go: an asset no live stack references, uploaded
    before the cutoff. A younger one stays, even if only a destroyed workspace used it: the CLI uploads no
    asset that exists, so another branch's deploy may be about to reference it. Anything not named like an
    asset stays."""
    digest = asset_hash(name)
    if digest is None or digest in live.hashes:
        return False
    return created < cutoff


Page = TypeVar("Page")


def _pages_if_exists(pages: Iterable[Page]) -> Iterator[Page]:
    """The pages of a listing (a paginator's, which asks as it is read); none if its bucket or repository
    does not exist."""
    try:
        yield from pages
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("NoSuchBucket", "RepositoryNotFoundException"):
            raise


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


@dataclass(frozen=True)
class Orphan:
    workspace: str
    branch: str
    reason: str
    stacks: tuple[str, ...]


def find_orphans(
    stacks: Iterable[DeployedStack], existing_branches: Iterable[str], *, ttl_days: int, now: datetime
) -> list[Orphan]:
    """Feature workspaces whose owning branch no longer exists (compared exactly: see
    DeployedStack.owned_by), or whose oldest stack is past the TTL."""
    live = Owners.of(f"refs/heads/{branch}" for branch in existing_branches)
    by_workspace: dict[str, list[DeployedStack]] = {}
    for stack in stacks:
        if stack.tags.get(TAG_STAGE) == Stage.FEATURE.value and stack.workspace not in PERSISTENT_WORKSPACES:
            by_workspace.setdefault(stack.workspace, []).append(stack)
    orphans = []
    for workspace, members in sorted(by_workspace.items()):
        branch = members[0].branch
        oldest = min(s.created for s in members)
        if not members[0].owned_by_one_of(live):
            reason = f"branch {branch!r} no longer exists"
        elif now - oldest > timedelta(days=ttl_days):
            reason = f"older than {ttl_days} days (created {oldest:%Y-%m-%d})"
        else:
            continue
        orphans.append(Orphan(workspace, branch, reason, tuple(sorted(s.name for s in members))))
    return orphans


def busy_workspaces(stacks: Iterable[DeployedStack]) -> dict[str, str]:
    """Workspaces with a stack in progress (a deploy or a destroy running now), with that stack's status:
    the janitor leaves them to its next run rather than race the workflow that holds them."""
    return {s.workspace: f"{s.name} {s.status}" for s in stacks if s.status.endswith("_IN_PROGRESS")}


def plausible_branches(branches: list[str], default_branch: str) -> list[str]:
    """The janitor's branch list, refused when it cannot be the repository's: empty, or without the
    default branch (a failed or cut `gh api` call would otherwise make every workspace an orphan)."""
    if not branches:
        raise LifecycleError(
            "the branch list is empty: refusing to treat every feature workspace as orphaned "
            "(did listing the repository's branches fail?)"
        )
    if default_branch not in branches:
        raise LifecycleError(
            f"the branch list ({len(branches)} branches) lacks the default branch "
            f"{default_branch!r}: it is not the repository's list; nothing is destroyed"
        )
    return branches


def destroy_summary(report: dict[str, Any]) -> str:
    """The destroy job's summary from its JSON report (one workspace's, or a ref's: its workspaces and
    notes): what went, what was emptied, what stayed."""
    if "reports" in report:
        parts = [f"- note: {note}" for note in report.get("notes", [])]
        parts += [f"#### `{r['workspace']}`\n{destroy_summary(r)}" for r in report["reports"]]
        return "\n".join(parts) or f"- nothing deployed by {report.get('owner')}"
    lines = [f"- stack {name}" for name in report.get("stacks", [])] or ["- nothing was deployed"]
    lines += [f"- emptied {where}: {count} objects" for where, count in report.get("emptied", {}).items()]
    lines += [f"- **stuck** {stuck['stack']} ({stuck['status']})" for stuck in report.get("stuck", [])]
    lines += [f"- **deferred** (out of time) {name}" for name in report.get("deferred", [])]
    lines += [f"- note: {note}" for note in report.get("notes", [])]
    return "\n".join(lines)


def janitor_summary(report: dict[str, Any]) -> str:
    """The janitor's job summary: a table of each orphan, why it was one and what became of it
    (destroyed, stuck, deferred, refused, failed, or only listed in a dry run)."""
    orphans = report.get("orphans", [])
    if not orphans:
        return "- nothing to reap"
    destroyed = {d["workspace"]: d for d in report.get("destroyed", [])}
    failed, deferred = report.get("failed", {}), set(report.get("deferred", []))
    rows = ["| workspace | branch | why | outcome |", "| --- | --- | --- | --- |"]
    for orphan in orphans:
        workspace = orphan["workspace"]
        done = destroyed.get(workspace)
        if done is not None and done.get("stuck"):
            outcome = "**stuck**: " + ", ".join(f"{s['stack']} ({s['status']})" for s in done["stuck"])
        elif done is not None and done.get("deferred"):
            outcome = "deferred to the next run (out of time): " + ", ".join(done["deferred"])
        elif done is not None:
            outcome = f"destroyed ({len(done.get('stacks', []))} stacks)"
        elif workspace in failed:
            kind = "refused" if failed[workspace].startswith("LifecycleError") else "**failed**"
            outcome = f"{kind}: {failed[workspace]}"
        elif workspace in deferred:
            outcome = "deferred to the next run (out of time)"
        else:
            outcome = "listed (dry run)"
        cells = [workspace, orphan["branch"], orphan["reason"], outcome]
        rows.append("| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    import boto3

    from infra.aws_clients import client
    from infra.config import load_config

    parser = argparse.ArgumentParser(prog="python -m infra.lifecycle", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    guard = sub.add_parser("guard", help="fail if the workspace belongs to another branch")
    guard.add_argument("workspace")
    guard.add_argument("branch")
    components = sub.add_parser("components", help="fail if the workspace has stacks of switched-off components")
    components.add_argument("ref", help="the ref being deployed (its stage's components apply)")
    find = sub.add_parser("find", help="list a workspace's stacks (or those a ref owns)")
    destroy = sub.add_parser("destroy", help="empty and delete a feature workspace (or what a ref owns)")
    for command in (find, destroy):
        which = command.add_mutually_exclusive_group(required=True)
        which.add_argument("workspace", nargs="?", type=_workspace_name, help="a feature workspace, by hand")
        which.add_argument("--owner", help="the full ref (refs/heads/<branch>) whose workspace it is")
    destroy.add_argument("--dry-run", action="store_true")
    orphans = sub.add_parser("orphans", help="feature workspaces to reap")
    for command in (destroy, orphans):
        command.add_argument(
            "--budget-minutes",
            type=_minutes,
            default=None,
            help="stop starting work after this long (below the job's credentials' lifetime)",
        )
    orphans.add_argument("--branches", required=True, help="file with one existing branch per line")
    orphans.add_argument("--destroy", action="store_true", help="destroy them (default: only list)")
    orphans.add_argument("--default-branch", default="main", help="must be in the branch list (a sanity check)")
    for name, helptext in (
        ("janitor-summary", "markdown of an `orphans` report (the job summary)"),
        ("destroy-summary", "markdown of a `destroy` report (the job summary)"),
    ):
        sub.add_parser(name, help=helptext).add_argument("report", type=Path)
    args = parser.parse_args(argv)
    if args.command in ("janitor-summary", "destroy-summary"):
        summary = janitor_summary if args.command == "janitor-summary" else destroy_summary
        print(summary(json.loads(args.report.read_text(encoding="utf-8"))))
        return 0

    config = load_config()
    project = config.project
    cfn = boto3.client("cloudformation")
    try:
        if args.command == "guard":
            stacks = guard_deploy(cfn, project, args.workspace, args.branch)
            print(json.dumps({"workspace": args.workspace, "existing_stacks": [s.name for s in stacks]}))
        elif args.command == "components":
            target = resolve(args.ref, config.naming_rules)
            wanted = [c.value for c in config.stage(target.stage).components.stacks]
            stacks = refuse_switched_off(cfn, project, target.workspace, wanted)
            print(
                json.dumps({"workspace": target.workspace, "components": wanted, "deployed": [s.name for s in stacks]})
            )
        elif args.command == "find":
            found = find_owned(cfn, project, args.owner) if args.owner else find_workspace(cfn, project, args.workspace)
            print(json.dumps([s.name for s in deletion_order(found, project)]))
        elif args.command == "destroy":
            deadline = _deadline(args.budget_minutes)
            if args.owner is None:
                report = destroy_workspace(client, project, args.workspace, dry_run=args.dry_run, deadline=deadline)
                print(json.dumps(asdict(report)))
                return _exit_code([report], deferred_fails=True)
            owned = find_owned(cfn, project, args.owner)
            reports = [
                destroy_workspace(client, project, workspace, dry_run=args.dry_run, deadline=deadline, owner=args.owner)
                for workspace in sorted({s.workspace for s in owned})
            ]
            notes = [] if owned else [nothing_owned(cfn, project, args.owner, config.naming_rules)]
            print(json.dumps({"owner": args.owner, "reports": [asdict(r) for r in reports], "notes": notes}))
            return _exit_code(reports, deferred_fails=True)
        else:
            with open(args.branches, encoding="utf-8") as handle:
                branches = plausible_branches([line.strip() for line in handle if line.strip()], args.default_branch)
            live = list_stacks(cfn, project)
            found_orphans = find_orphans(
                live, branches, ttl_days=config.feature_workspace_ttl_days, now=datetime.now(UTC)
            )
            deadline = _deadline(args.budget_minutes)
            reports, failed, deferred = [], {}, []
            busy = busy_workspaces(live)
            for orphan in found_orphans if args.destroy else []:
                if orphan.workspace in busy:  # a deploy (or a destroy) is running: not now, and not red
                    print(
                        f"note: workspace {orphan.workspace!r} is busy ({busy[orphan.workspace]}): next run",
                        file=sys.stderr,
                    )
                    deferred.append(orphan.workspace)
                    continue
                if deadline is not None and deadline.remaining() < WORKSPACE_MINIMUM:
                    deferred.append(orphan.workspace)
                    continue
                try:  # one workspace that fails (refused, throttled) does not keep the others alive
                    reports.append(destroy_workspace(client, project, orphan.workspace, deadline=deadline))
                except (ClientError, LifecycleError) as exc:
                    failed[orphan.workspace] = f"{type(exc).__name__}: {exc}"
                    print(f"error: destroying workspace {orphan.workspace!r} failed: {exc}", file=sys.stderr)
            out_of_time = bool(deferred) or any(r.deferred for r in reports)
            swept = sweep_assets(client) if args.destroy and not out_of_time else []
            print(
                json.dumps(
                    {
                        "orphans": [asdict(o) for o in found_orphans],
                        "destroyed": [asdict(r) for r in reports],
                        "failed": failed,
                        "deferred": deferred,
                        "assets": swept,
                    }
                )
            )
            return max(_exit_code(reports), 1 if failed else 0)
    except (LifecycleError, WorkspaceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def nothing_owned(cfn: CloudFormationClient, project: str, ref: str, rules: Any) -> str:
    """Why a destroy for `ref` found nothing: it never deployed, or its name's workspace is another's."""
    from infra.workspace import WorkspaceError, resolve

    try:
        workspace = resolve(ref, rules).workspace
    except WorkspaceError:
        return f"nothing deployed by {ref}"
    others = sorted({s.branch for s in find_workspace(cfn, project, workspace) if not s.owned_by(ref)})
    if others:
        return (
            f"nothing deployed by {ref}; workspace {workspace!r} is branch {others[0]!r}'s (it deployed there "
            "first) and is kept"
        )
    return f"nothing deployed by {ref}"


def _workspace_name(text: str) -> str:
    from infra.workspace import feature_workspace_problem

    problem = feature_workspace_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"workspace {text!r}: {problem}")
    return text


def _minutes(text: str) -> timedelta:
    minutes = float(text)
    if not 0 <= minutes <= 24 * 60:
        raise argparse.ArgumentTypeError(f"{text!r}: a budget is 0 to 1440 minutes (below the job's timeout)")
    return timedelta(minutes=minutes)


def _deadline(budget: timedelta | None) -> Deadline | None:
    return None if budget is None else Deadline.after(budget)


def _exit_code(reports: Iterable[DestroyReport], *, deferred_fails: bool = False) -> int:
    """1 when a destroy left stacks behind (named on stderr, as in the report and the alarm), or, with
    `deferred_fails` (a branch's own destroy), ran out of time before the end; else 0."""
    code = 0
    for report in reports:
        if report.deferred and deferred_fails:
            code = 1
            print(
                f"error: workspace {report.workspace!r} is not fully destroyed: out of time before "
                f"{', '.join(report.deferred)}; run the destroy again (the janitor also finishes it)",
                file=sys.stderr,
            )
        if report.stuck:
            code = 1
            print(f"error: workspace {report.workspace!r} is not fully destroyed; still there:", file=sys.stderr)
            for line in report.stuck_lines():
                print(f"  {line}", file=sys.stderr)
            alarm = report.alarm or {}
            sent = f"sent to {alarm.get('topic')}" if alarm.get("message_id") else f"not sent: {alarm.get('error')}"
            print(f"  alarm: {sent}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
