"""The branch lifecycle's logic, in Python rather than workflow shell: what the deploy, destroy and
janitor workflows call (through the CLI at the bottom), tested against moto.

- guard: refuse to deploy over a workspace whose stacks carry another branch's tag;
- find: a workspace's stacks by their tags (so stacks that only a deleted branch defined are found);
- destroy: empty what must be emptied, delete in reverse dependency order, report what went;
- orphans: feature workspaces whose branch is gone or that are older than the TTL.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from infra.naming import TAG_BRANCH, TAG_PROJECT, TAG_STAGE, TAG_WORKSPACE, Component
from infra.stateful import STATEFUL_RESOURCE_TYPES
from infra.workspace import PERSISTENT_WORKSPACES, Stage, branch_tag_value

DEPLOY_ORDER = [c.value for c in Component]
"""Stacks are deployed in this order (each may use those before it), so they are deleted in reverse."""


class LifecycleError(RuntimeError):
    """A lifecycle action that must not go ahead; the message says why and what to do."""


@dataclass(frozen=True)
class DeployedStack:
    """A live CloudFormation stack of the project, as the lifecycle sees it (name, status, tags)."""

    name: str
    status: str
    created: datetime
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def workspace(self) -> str:
        return self.tags.get(TAG_WORKSPACE, "")

    @property
    def branch(self) -> str:
        return self.tags.get(TAG_BRANCH, "")

    def component(self, project: str) -> str:
        return self.name.removeprefix(f"{project}-{self.workspace}-")


def list_stacks(cfn: Any, project: str) -> list[DeployedStack]:
    """Every live stack of the project (tagged `project`), whatever its workspace."""
    stacks = []
    for page in cfn.get_paginator("describe_stacks").paginate():
        for stack in page["Stacks"]:
            tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])}
            if tags.get(TAG_PROJECT) == project and stack["StackStatus"] != "DELETE_COMPLETE":
                stacks.append(DeployedStack(stack["StackName"], stack["StackStatus"], stack["CreationTime"], tags))
    return stacks


def find_workspace(cfn: Any, project: str, workspace: str) -> list[DeployedStack]:
    return [s for s in list_stacks(cfn, project) if s.workspace == workspace]


def guard_deploy(cfn: Any, project: str, workspace: str, branch: str) -> list[DeployedStack]:
    """Raise if the workspace's stacks belong to another branch (two branches whose names normalise
    alike share a workspace; the second must not overwrite the first)."""
    mine = branch_tag_value(branch)
    stacks = find_workspace(cfn, project, workspace)
    others = sorted({s.branch for s in stacks if s.branch != mine})
    if others:
        raise LifecycleError(
            f"workspace {workspace!r} is deployed from branch {others[0]!r}, not from {branch!r}: the two "
            f"branch names map to the same workspace. Rename this branch (or destroy the other workspace "
            f"first: `python -m infra.lifecycle destroy {workspace}`).")
    return stacks


def deletion_order(stacks: Iterable[DeployedStack], project: str) -> list[DeployedStack]:
    """Reverse of the deploy order; stacks of components this code no longer knows go first (nothing
    known depends on them), newest first."""
    def key(stack: DeployedStack) -> tuple[int, float]:
        component = stack.component(project)
        rank = DEPLOY_ORDER.index(component) if component in DEPLOY_ORDER else len(DEPLOY_ORDER)
        return (-rank, -stack.created.timestamp())

    return sorted(stacks, key=key)


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version and delete marker; returns how many went."""
    deleted = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        victims = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                   for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for start in range(0, len(victims), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": victims[start:start + 1000], "Quiet": True})
        deleted += len(victims)
    return deleted


def empty_repository(ecr: Any, repository: str) -> int:
    deleted = 0
    for page in ecr.get_paginator("list_images").paginate(repositoryName=repository):
        images = page.get("imageIds", [])
        if images:
            ecr.batch_delete_image(repositoryName=repository, imageIds=images)
            deleted += len(images)
    return deleted


@dataclass
class DestroyReport:
    workspace: str
    stacks: list[str] = field(default_factory=list)
    emptied: dict[str, int] = field(default_factory=dict)
    log_groups: list[str] = field(default_factory=list)
    dry_run: bool = False


def destroy_workspace(client: Callable[[str], Any], project: str, workspace: str, *, dry_run: bool = False,
                      wait: bool = True) -> DestroyReport:
    """Delete every stack tagged with the workspace, emptying its buckets and repositories first, then
    the log groups its Lambda functions created for themselves (`/aws/lambda/<function>`): the CDK's own
    custom-resource providers (bucket auto-delete, bucket notifications) write there, CloudFormation
    does not own those groups, and a plain `cdk destroy` leaves them behind.

    `client(service)` makes the AWS clients: `boto3.client`, or an emulator's."""
    if workspace in PERSISTENT_WORKSPACES:
        raise LifecycleError(f"refusing to destroy {workspace!r}: it is a persistent stage's workspace "
                             "(int and prd are destroyed by hand, never by a workflow)")
    cfn, s3, ecr, logs = (client(name) for name in ("cloudformation", "s3", "ecr", "logs"))
    stacks = find_workspace(cfn, project, workspace)
    persistent = [s.name for s in stacks if s.tags.get(TAG_STAGE) != Stage.FEATURE.value]
    if persistent:
        raise LifecycleError(f"refusing to destroy {workspace!r}: stacks {persistent} are not tagged "
                             f"{TAG_STAGE}={Stage.FEATURE.value}")
    report = DestroyReport(workspace, dry_run=dry_run)
    for stack in deletion_order(stacks, project):
        report.stacks.append(stack.name)
        if dry_run:
            continue
        functions = []
        for resource in _physical_resources(cfn, stack.name):
            kind, physical = resource["ResourceType"], resource.get("PhysicalResourceId")
            if not physical or resource.get("ResourceStatus") == "DELETE_COMPLETE":
                continue
            if kind == "AWS::S3::Bucket":
                report.emptied[f"s3://{physical}"] = _ignore_missing(lambda p=physical: empty_bucket(s3, p))
            elif kind == "AWS::ECR::Repository":
                report.emptied[f"ecr:{physical}"] = _ignore_missing(lambda p=physical: empty_repository(ecr, p))
            elif kind == "AWS::Lambda::Function":
                functions.append(physical)
        cfn.delete_stack(StackName=stack.name)
        if wait:
            cfn.get_waiter("stack_delete_complete").wait(StackName=stack.name,
                                                        WaiterConfig={"Delay": 5, "MaxAttempts": 360})
        for function in functions:
            if delete_log_group(logs, f"/aws/lambda/{function}"):
                report.log_groups.append(f"/aws/lambda/{function}")
    return report


def delete_log_group(logs: Any, name: str) -> bool:
    """Delete a log group if it exists; True if it did."""
    try:
        logs.delete_log_group(logGroupName=name)
    except logs.exceptions.ResourceNotFoundException:
        return False
    return True


def _physical_resources(cfn: Any, stack: str) -> list[dict[str, Any]]:
    resources = []
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack):
        resources += page["StackResourceSummaries"]
    return resources


def _ignore_missing(action: Any) -> int:
    from botocore.exceptions import ClientError

    try:
        return action()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchBucket", "RepositoryNotFoundException"):
            return 0
        raise


@dataclass(frozen=True)
class Orphan:
    workspace: str
    branch: str
    reason: str
    stacks: tuple[str, ...]


def find_orphans(stacks: Iterable[DeployedStack], existing_branches: Iterable[str], *, ttl_days: int,
                 now: datetime) -> list[Orphan]:
    """Feature workspaces whose branch no longer exists, or whose oldest stack is past the TTL."""
    live = {branch_tag_value(b) for b in existing_branches}
    by_workspace: dict[str, list[DeployedStack]] = {}
    for stack in stacks:
        if stack.tags.get(TAG_STAGE) == Stage.FEATURE.value and stack.workspace not in PERSISTENT_WORKSPACES:
            by_workspace.setdefault(stack.workspace, []).append(stack)
    orphans = []
    for workspace, members in sorted(by_workspace.items()):
        branch = members[0].branch
        oldest = min(s.created for s in members)
        if branch not in live:
            reason = f"branch {branch!r} no longer exists"
        elif now - oldest > timedelta(days=ttl_days):
            reason = f"older than {ttl_days} days (created {oldest:%Y-%m-%d})"
        else:
            continue
        orphans.append(Orphan(workspace, branch, reason, tuple(sorted(s.name for s in members))))
    return orphans


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RESOURCE_LINE = re.compile(r"^\[(?P<op>[-~+])\] (?P<type>AWS::\S+) (?P<path>\S+) (?P<id>\S+)(?: (?P<note>.*))?$")
COMMENT_LIMIT = 60_000
"""GitHub comments hold 65,536 characters; the rest of a diff goes to the job summary."""


def destructive_changes(diff_text: str) -> list[str]:
    """Stateful resources that a `cdk diff` would delete or replace, as '<stack>: <type> <id> (<what>)'."""
    found, stack = [], "?"
    for raw in diff_text.splitlines():
        line = _ANSI.sub("", raw).strip()
        if line.startswith("Stack "):
            stack = line.removeprefix("Stack ").strip()
        match = _RESOURCE_LINE.match(line)
        if not match or match["type"] not in STATEFUL_RESOURCE_TYPES:
            continue
        note = (match["note"] or "").lower()
        if match["op"] == "-" and "orphan" not in note:
            found.append(f"{stack}: {match['type']} {match['id']} (deleted)")
        elif match["op"] == "~" and "replace" in note:
            found.append(f"{stack}: {match['type']} {match['id']} ({match['note'].strip()})")
    return found


def diff_comment(diff_text: str, workspace: str, baseline: str, marker: str) -> tuple[str, bool]:
    """The PR comment (marker first, destructive changes on top, cut to fit) and whether it was cut."""
    text = _ANSI.sub("", diff_text)
    destructive = list(dict.fromkeys(destructive_changes(text)))
    if len(destructive) > 50:
        destructive = [*destructive[:50], f"... and {len(destructive) - 50} more"]
    head = [marker, f"### `cdk diff` of workspace `{workspace}` against {baseline}", ""]
    if destructive:
        head += ["> [!WARNING]", "> **Destructive changes to stateful resources:**"]
        head += [f"> - {item}" for item in destructive] + [""]
    body = text if text.strip() else "No differences."
    cut = len(body) > COMMENT_LIMIT
    if cut:
        body = body[:COMMENT_LIMIT] + "\n... (cut: the full diff is in the job summary)"
    return "\n".join([*head, "```diff", body, "```"]), cut


def write_baselines(cfn: Any, project: str, workspace: str, stacks: list[str], out: Path) -> dict[str, str]:
    """For each of the branch's stacks, the template to diff against: its own deployed template, else
    int's stack of the same component, else an empty template (a new component). Returns stack -> what."""
    out.mkdir(parents=True, exist_ok=True)
    compared = {}
    for name in stacks:
        component = name.removeprefix(f"{project}-{workspace}-")
        template, what = {"Resources": {}}, "nothing (new)"
        for candidate, label in ((name, "deployed"), (f"{project}-int-{component}", "int")):
            try:
                body = cfn.get_template(StackName=candidate, TemplateStage="Original")["TemplateBody"]
            except cfn.exceptions.ClientError:
                continue
            template, what = (body if isinstance(body, dict) else json.loads(body)), f"{label} ({candidate})"
            break
        (out / f"{name}.json").write_text(json.dumps(template))
        compared[name] = what
    return compared


def main(argv: list[str] | None = None) -> int:
    import boto3

    from infra.config import load_config

    parser = argparse.ArgumentParser(prog="python -m infra.lifecycle", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    guard = sub.add_parser("guard", help="fail if the workspace belongs to another branch")
    guard.add_argument("workspace")
    guard.add_argument("branch")
    sub.add_parser("find", help="list a workspace's stacks").add_argument("workspace")
    destroy = sub.add_parser("destroy", help="empty and delete a feature workspace")
    destroy.add_argument("workspace")
    destroy.add_argument("--dry-run", action="store_true")
    orphans = sub.add_parser("orphans", help="feature workspaces to reap")
    orphans.add_argument("--branches", required=True, help="file with one existing branch per line")
    orphans.add_argument("--destroy", action="store_true", help="destroy them (default: only list)")
    baselines = sub.add_parser("baselines", help="templates to diff a workspace against (deployed, else int)")
    baselines.add_argument("workspace")
    baselines.add_argument("stacks", nargs="+")
    baselines.add_argument("--out", type=Path, required=True)
    report = sub.add_parser("diff-comment", help="PR comment markdown from a cdk diff output")
    report.add_argument("diff_file", type=Path)
    report.add_argument("--workspace", required=True)
    report.add_argument("--baseline", required=True)
    report.add_argument("--marker", required=True)
    args = parser.parse_args(argv)
    if args.command == "diff-comment":
        comment, _ = diff_comment(args.diff_file.read_text(encoding="utf-8"), args.workspace, args.baseline,
                                    args.marker)
        print(comment)
        return 0

    config = load_config()
    project = config.project
    cfn = boto3.client("cloudformation")
    try:
        if args.command == "guard":
            stacks = guard_deploy(cfn, project, args.workspace, args.branch)
            print(json.dumps({"workspace": args.workspace, "existing_stacks": [s.name for s in stacks]}))
        elif args.command == "find":
            print(json.dumps([s.name for s in deletion_order(find_workspace(cfn, project, args.workspace), project)]))
        elif args.command == "destroy":
            report = destroy_workspace(boto3.client, project, args.workspace, dry_run=args.dry_run)
            print(json.dumps(asdict(report)))
        elif args.command == "baselines":
            print(json.dumps(write_baselines(cfn, project, args.workspace, args.stacks, args.out)))
        else:
            with open(args.branches, encoding="utf-8") as handle:
                branches = [line.strip() for line in handle if line.strip()]
            found = find_orphans(list_stacks(cfn, project), branches, ttl_days=config.feature_workspace_ttl_days,
                                 now=datetime.now(UTC))
            reports = [asdict(destroy_workspace(boto3.client, project, o.workspace)) for o in found] \
                if args.destroy else []
            print(json.dumps({"orphans": [asdict(o) for o in found], "destroyed": reports}))
    except LifecycleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
