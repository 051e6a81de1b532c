"""What the workflows do for a GitHub event, decided in Python from the event's payload (the file at
$GITHUB_EVENT_PATH) instead of workflow expressions no test runs. Pure functions over the payload, tested
against recorded payloads (tests/events/github/); the CLI at the bottom prints `key=value` lines for
$GITHUB_OUTPUT, only values checked here (never a raw input).

- destroy-plan: whether a `delete`, `pull_request` closed or manual run destroys, and whose workspace:
  a branch's deletion destroys what that ref owns; a PR's close only when its head branch (of this
  repository) is gone or the PR was merged into the default branch, never for a fork or a stacked PR
  into a live branch; a manual run names a workspace, checked against the workspace pattern.
- pr-plan: whether a PR's checks may use AWS: not for a fork (GitHub gives it no OIDC token), not for a
  head that is not a feature branch (a release or hotfix merged back has no workspace to clean up).
- alive: whether a branch still exists (`git ls-remote` output), right before a deploy, so that a late
  deploy cannot bring back the workspace of a deleted branch.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.workspace import NamingRules, Stage, WorkspaceError, feature_workspace_problem, git_ref_problem, resolve


@dataclass(frozen=True)
class DestroyPlan:
    """`owner`: destroy what this full ref owns; `workspace`: the workspace to destroy by hand, or (with
    an owner) the name today's rules give it, for the concurrency group it shares with deploys."""

    destroy: bool
    reason: str
    owner: str = ""
    workspace: str = ""

    def outputs(self) -> dict[str, str]:
        return {
            "destroy": str(self.destroy).lower(),
            "owner": self.owner,
            "workspace": self.workspace,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class PullRequestPlan:
    aws: bool
    reason: str
    workspace: str = ""

    def outputs(self) -> dict[str, str]:
        return {"aws": str(self.aws).lower(), "reason": self.reason, "workspace": self.workspace}


class EventError(ValueError):
    """An event or input the workflows must not act on; the message names it and the fix."""


def _branch(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise EventError(f"{what} is missing from the event")
    problem = git_ref_problem(name)
    if problem:
        raise EventError(f"{what} {name!r} is not a branch name git accepts: {problem}")
    return name


def _feature_workspace(branch: str, rules: NamingRules) -> str | None:
    try:
        target = resolve(f"refs/heads/{branch}", rules)
    except WorkspaceError:
        return None
    return target.workspace if target.stage is Stage.FEATURE else None


def is_fork(pull_request: Mapping[str, Any]) -> bool:
    """A PR from another repository (or from a fork deleted since): its head is not this repository's."""
    head_repo = (pull_request.get("head") or {}).get("repo") or {}
    base_repo = (pull_request.get("base") or {}).get("repo") or {}
    return not head_repo or head_repo.get("full_name") != base_repo.get("full_name")


def destroy_plan(
    event_name: str, payload: Mapping[str, Any], *, rules: NamingRules, branch_exists: bool | None = None
) -> DestroyPlan:
    """What the destroy workflow does for this event. `branch_exists`: whether a closed PR's head branch
    is still in the repository (asked by the workflow; None when not asked)."""
    if event_name == "delete":
        if payload.get("ref_type") != "branch":
            return DestroyPlan(False, f"a {payload.get('ref_type')} was deleted: only branches have workspaces")
        branch = _branch(payload.get("ref"), "the deleted branch")
        workspace = _feature_workspace(branch, rules)
        if workspace is None:
            return DestroyPlan(False, f"branch {branch!r} is not a feature branch: it has no workspace")
        return DestroyPlan(True, f"branch {branch!r} was deleted", f"refs/heads/{branch}", workspace)
    if event_name == "pull_request":
        pull_request = payload.get("pull_request") or {}
        if payload.get("action") != "closed":
            return DestroyPlan(False, f"pull request {payload.get('action')}: only a close can destroy")
        if is_fork(pull_request):
            return DestroyPlan(False, "a pull request from a fork: its branch never deployed a workspace here")
        branch = _branch((pull_request.get("head") or {}).get("ref"), "the pull request's head branch")
        workspace = _feature_workspace(branch, rules)
        if workspace is None:
            return DestroyPlan(False, f"head {branch!r} is not a feature branch: it has no workspace to destroy")
        default = (payload.get("repository") or {}).get("default_branch", "main")
        base = (pull_request.get("base") or {}).get("ref")
        if pull_request.get("merged") and base == default:
            return DestroyPlan(True, f"merged into {default}", f"refs/heads/{branch}", workspace)
        if branch_exists is False:
            return DestroyPlan(True, f"closed and branch {branch!r} is gone", f"refs/heads/{branch}", workspace)
        if branch_exists is None:
            raise EventError("a closed, unmerged pull request: say whether its head branch still exists")
        into = f"merged into {base!r}" if pull_request.get("merged") else "closed unmerged"
        return DestroyPlan(False, f"{into} while branch {branch!r} lives on: its workspace stays with it")
    if event_name == "workflow_dispatch":
        workspace = str((payload.get("inputs") or {}).get("workspace", ""))
        problem = feature_workspace_problem(workspace)
        if problem:
            raise EventError(f"workspace {workspace!r} (the workflow's input): {problem}")
        return DestroyPlan(True, "asked by hand", workspace=workspace)
    return DestroyPlan(False, f"{event_name!r} events never destroy")


def pull_request_plan(payload: Mapping[str, Any], *, rules: NamingRules) -> PullRequestPlan:
    """Whether a PR's checks may use AWS, and why not."""
    pull_request = payload.get("pull_request") or {}
    if is_fork(pull_request):
        return PullRequestPlan(
            False,
            "a pull request from a fork: GitHub gives it no OIDC token and it "
            "deploys no workspace; nothing to clean up",
        )
    branch = _branch((pull_request.get("head") or {}).get("ref"), "the pull request's head branch")
    workspace = _feature_workspace(branch, rules)
    if workspace is None:
        return PullRequestPlan(
            False,
            f"head {branch!r} is not a feature branch (a release, hotfix or main "
            "merged back): it has no workspace to clean up",
        )
    return PullRequestPlan(True, f"feature branch {branch!r}: workspace {workspace!r}", workspace)


def branch_alive(ls_remote: str, ref: str) -> bool:
    """Whether `git ls-remote` output lists exactly `ref` (refs/heads/<branch>)."""
    return any(line.split("\t", 1)[-1].strip() == ref for line in ls_remote.splitlines() if "\t" in line)


def _print_outputs(outputs: Mapping[str, str]) -> None:
    for key, value in outputs.items():
        if "\n" in value or "\r" in value:
            raise EventError(f"output {key} holds a line break")
        print(f"{key}={value}")


def main(argv: list[str] | None = None) -> int:
    from infra.config import load_config

    parser = argparse.ArgumentParser(prog="python -m infra.github_events", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    destroy = sub.add_parser("destroy-plan", help="whether and what this event destroys (key=value lines)")
    destroy.add_argument("event_name")
    destroy.add_argument("event_path", type=Path)
    destroy.add_argument("--branch-exists", choices=["true", "false"], default=None)
    pr = sub.add_parser("pr-plan", help="whether a pull request's checks may use AWS (key=value lines)")
    pr.add_argument("event_path", type=Path)
    alive = sub.add_parser("alive", help="fail unless the ref is in `git ls-remote` output")
    alive.add_argument("ref")
    alive.add_argument("ls_remote", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "alive":
            if branch_alive(args.ls_remote.read_text(encoding="utf-8"), args.ref):
                return 0
            print(
                f"error: {args.ref} no longer exists: not deploying (its workspace would have no branch to "
                "destroy it; the destroy workflow or the janitor removes what is left)",
                file=sys.stderr,
            )
            return 1
        payload = json.loads(args.event_path.read_text(encoding="utf-8"))
        rules = load_config().naming_rules
        if args.command == "destroy-plan":
            exists = None if args.branch_exists is None else args.branch_exists == "true"
            _print_outputs(destroy_plan(args.event_name, payload, rules=rules, branch_exists=exists).outputs())
        else:
            _print_outputs(pull_request_plan(payload, rules=rules).outputs())
    except EventError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
