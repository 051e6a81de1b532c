"""The branch lifecycle's commands, as the deploy, destroy and janitor workflows call them.

`python -m infra.lifecycle guard | components | find | destroy | orphans | destroy-summary | janitor-summary`:
each prints JSON (or markdown, the summaries) on stdout and exits 2 when a job must not go ahead (the reason
on stderr), 1 when a destroy left stacks behind or ran out of time. The first line above is `--help`'s
description."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from infra.lifecycle.assets import sweep_assets
from infra.lifecycle.destroy import DestroyReport, destroy_summary, destroy_workspace
from infra.lifecycle.janitor import (
    WORKSPACE_MINIMUM,
    busy_workspaces,
    find_orphans,
    janitor_summary,
    plausible_branches,
)
from infra.lifecycle.stacks import (
    Deadline,
    LifecycleError,
    deletion_order,
    find_owned,
    find_workspace,
    guard_deploy,
    list_stacks,
    refuse_switched_off,
)
from infra.workspace import WorkspaceError, resolve

if TYPE_CHECKING:  # the stubs are a development dependency, not installed where the workflows run this
    from mypy_boto3_cloudformation import CloudFormationClient


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
