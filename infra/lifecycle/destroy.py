"""Destroying one feature workspace: its stacks emptied and deleted in reverse dependency order (the alarm
stack last), a stack that fails to delete emptied and retried, the log groups services made for its
resources deleted, what will not go named and alarmed on, and then the bootstrap assets only it used
(assets.py); with the report the destroy job's summary is made of."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, WaiterError

from infra.lifecycle.assets import ASSET_GRACE, delete_unused_assets, referenced_assets, refused_deletes
from infra.lifecycle.stacks import (
    ALARM_COMPONENT,
    WAIT_DELAY_SECONDS,
    WAIT_MAX_ATTEMPTS,
    Deadline,
    DeployedStack,
    LifecycleError,
    account_region_of,
    deletion_order,
    find_workspace,
    stack_template,
)
from infra.naming import TAG_STAGE
from infra.stack_outputs import ALARM_TOPIC_OUTPUT
from infra.workspace import PERSISTENT_WORKSPACES, Stage

if TYPE_CHECKING:  # the stubs are a development dependency, not installed where the workflows run this
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import StackResourceSummaryTypeDef
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef
    from mypy_boto3_sns import SNSClient

DELETE_ATTEMPTS = 3
"""How often destroy asks CloudFormation to delete one stack before it reports the stack as stuck."""
STACK_MINIMUM = timedelta(minutes=2)
"""No stack deletion starts with less of the budget left: emptying and one delete request need it."""
CONTAINER_INSIGHTS_LOG_GROUP = "/aws/ecs/containerinsights/{cluster}/performance"
"""Where ECS Container Insights writes a cluster's metrics: a group ECS creates, CloudFormation does not own."""


def empty_bucket(s3: S3Client, bucket: str) -> int:
    """Delete every object version and delete marker; returns how many went."""
    deleted = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        victims: list[ObjectIdentifierTypeDef] = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for start in range(0, len(victims), 1000):
            refused_deletes(
                bucket,
                s3.delete_objects(Bucket=bucket, Delete={"Objects": victims[start : start + 1000], "Quiet": True}),
            )
        deleted += len(victims)
    return deleted


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
