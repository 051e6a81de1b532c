"""The janitor's part: which feature workspaces are orphans (their branch gone, or past the TTL), which
are busy (left to its next run), whether a branch list can be the repository's, and the table its job
summary is. Destroying them is destroy.py's; the run itself is cli.py's `orphans`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from infra.lifecycle.stacks import DeployedStack, LifecycleError, Owners
from infra.naming import TAG_STAGE
from infra.workspace import PERSISTENT_WORKSPACES, Stage

WORKSPACE_MINIMUM = timedelta(minutes=10)
"""The janitor starts no workspace with less of its budget left: the rest are deferred to its next run."""


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


def janitor_summary(report: dict[str, Any]) -> str:
    """The janitor's job summary: a table of each orphan, why it was one and what became of it
    (destroyed, stuck, deferred, refused, failed, or only listed in a dry run)."""
    orphans = report.get("orphans")
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
