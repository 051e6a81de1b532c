"""prd runs releases in order: a deploy of prd goes ahead only when its release is not older than the
one prd runs (a `release/X.Y.Z` push and its tag both deploy prd, in any order; a hotfix pushed to an
old release branch must not replace a newer release), except an explicit rollback: a manual run of the
deploy workflow that names an earlier release tag, in the prd environment with its reviewers.

Every prd stack carries the release it was deployed from in its `release` tag (infra/stacks/base.py).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.naming import TAG_PROJECT, TAG_RELEASE, TAG_STAGE
from infra.workspace import Stage, Target, WorkspaceError, resolve

if TYPE_CHECKING:
    from infra.lifecycle.stacks import DeployedStack

Version = tuple[int, int, int]
_VERSION = re.compile(r"(?:^|/)v?(\d+)\.(\d+)\.(\d+)$")


def release_of(target: Target) -> str | None:
    """`X.Y.Z` of a prd target (`release/X.Y.Z`, `X.Y.Z`, `vX.Y.Z`); None for other stages."""
    if target.stage is not Stage.PRD:
        return None
    match = _VERSION.search(target.name)
    return ".".join(match.groups()) if match else None


def version(release: str) -> Version:
    major, minor, patch = (int(part) for part in release.split("."))
    return major, minor, patch


def running_release(stacks: Iterable[DeployedStack], project: str) -> str | None:
    """The newest release among the project's prd stacks (as infra.lifecycle.stacks.list_stacks reads them), None
    before the first."""
    found = [
        s.tags[TAG_RELEASE]
        for s in stacks
        if s.tags.get(TAG_PROJECT) == project and s.tags.get(TAG_STAGE) == Stage.PRD.value and TAG_RELEASE in s.tags
    ]
    return max(found, key=version, default=None)


def order_problem(release: str, running: str | None, *, rollback: bool) -> str | None:
    """Why deploying `release` to prd, which runs `running`, would go backwards; None when it may go."""
    if running is None or rollback or version(release) >= version(running):
        return None
    return (
        f"release {release} is older than {running}, which prd runs: not deployed. To go back to it, run "
        f"the deploy workflow by hand with rollback_to={release} (the prd environment's reviewers approve)"
    )


def deploy_ref(event_name: str, payload: Mapping[str, Any], github_ref: str) -> tuple[str, bool]:
    """The ref a deploy-persistent run deploys and whether it is a rollback: the pushed ref, or for a
    manual run the release tag it names (checked: a release tag, nothing else)."""
    if event_name != "workflow_dispatch":
        return github_ref, False
    tag = str((payload.get("inputs") or {}).get("rollback_to", ""))
    ref = f"refs/tags/{tag}"
    try:
        target = resolve(ref)
    except WorkspaceError as exc:
        raise ValueError(f"rollback_to {tag!r} (the workflow's input): {exc}") from exc
    if target.stage is not Stage.PRD:
        raise ValueError(f"rollback_to {tag!r}: name a release tag (X.Y.Z or vX.Y.Z)")
    return ref, True


def main(argv: list[str] | None = None) -> int:
    import boto3

    from infra.config import load_config

    parser = argparse.ArgumentParser(prog="python -m infra.releases", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ref = sub.add_parser("ref", help="the ref to deploy and whether it is a rollback (key=value lines)")
    ref.add_argument("event_name")
    ref.add_argument("event_path", type=Path)
    ref.add_argument("github_ref")
    check = sub.add_parser("check", help="deploy=true|false: whether prd may take this ref's release")
    check.add_argument("ref")
    check.add_argument("--rollback", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "ref":
            payload = json.loads(args.event_path.read_text(encoding="utf-8"))
            chosen, rollback = deploy_ref(args.event_name, payload, args.github_ref)
            print(f"ref={chosen}\nrollback={str(rollback).lower()}")
            return 0
        target = resolve(args.ref)
    except (ValueError, WorkspaceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    release = release_of(target)
    if release is None:
        print(f"deploy=true\nreason={target.stage.value} deploys every push")
        return 0
    from infra.lifecycle.stacks import list_stacks

    project = load_config().project
    stacks = list_stacks(boto3.client("cloudformation"), project)
    running = running_release(stacks, project)
    problem = order_problem(release, running, rollback=args.rollback)
    if problem:
        print(f"::warning::{problem}", file=sys.stderr)
        print(f"deploy=false\nreason={problem}")
    else:
        print(f"deploy=true\nreason=release {release} (prd runs {running or 'nothing yet'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
