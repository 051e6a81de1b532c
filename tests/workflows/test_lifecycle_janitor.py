"""The janitor's part (infra/lifecycle/janitor.py): which workspaces are orphans, which branch lists it
refuses, which busy workspaces it leaves, the table its summary is."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from infra.lifecycle.cli import main
from infra.lifecycle.janitor import find_orphans, janitor_summary
from infra.lifecycle.stacks import DeployedStack, list_stacks
from tests.workflows.lifecycle_helpers import PROJECT, deploy


def test_orphans_are_gone_branches_and_expired_workspaces() -> None:
    now = datetime(2026, 11, 22, tzinfo=UTC)

    def stack(workspace: str, branch: str, age_days: int, stage: str = "feature") -> DeployedStack:
        return DeployedStack(
            f"p-{workspace}-storage",
            "CREATE_COMPLETE",
            now - timedelta(days=age_days),
            {"workspace": workspace, "branch": branch, "stage": stage},
        )

    stacks = [
        stack("alive", "feature/alive", 1),
        stack("gone", "feature/gone", 1),
        stack("stale", "feature/stale", 30),
        stack("int", "main", 400, "int"),
    ]
    orphans = find_orphans(stacks, ["main", "feature/alive", "feature/stale"], ttl_days=14, now=now)
    assert [(o.workspace, o.reason.split(" (")[0]) for o in orphans] == [
        ("gone", "branch 'feature/gone' no longer exists"),
        ("stale", "older than 14 days"),
    ]


@pytest.mark.parametrize(
    ("listed", "why"), [("", "the branch list is empty"), ("feature/a\nfeature/b\n", "lacks the default branch 'main'")]
)
def test_the_janitor_destroys_nothing_from_an_implausible_branch_list(aws, tmp_path, capsys, listed, why) -> None:
    cfn = aws["cloudformation"]
    deploy(cfn, "we-1-a", "etl", branch="feature/WEDATAIN-1-a", owned=True)
    branches = tmp_path / "branches.txt"
    branches.write_text(listed)
    assert main(["orphans", "--branches", str(branches), "--destroy"]) == 2
    assert why in capsys.readouterr().err
    assert len(list_stacks(cfn, PROJECT)) == 1


def test_the_janitor_summary_is_a_table_of_what_became_of_each_orphan() -> None:
    def orphan(workspace):
        return {"workspace": workspace, "branch": f"feature/{workspace}", "reason": "branch gone"}

    report = {
        "orphans": [orphan(w) for w in ("gone", "stuck", "late", "refused", "throttled", "next", "seen|x")],
        "destroyed": [
            {"workspace": "gone", "stacks": ["a", "b"]},
            {"workspace": "stuck", "stacks": ["a"], "stuck": [{"stack": "a", "status": "DELETE_FAILED"}]},
            {"workspace": "late", "stacks": ["a"], "deferred": ["b"]},
        ],
        "failed": {"refused": "LifecycleError: not feature", "throttled": "ClientError: Rate exceeded"},
        "deferred": ["next"],
    }
    rows = janitor_summary(report).splitlines()
    assert rows[0] == "| workspace | branch | why | outcome |"
    outcomes = {row.split(" | ")[0].removeprefix("| "): row.split(" | ")[-1].removesuffix(" |") for row in rows[2:]}
    assert outcomes == {
        "gone": "destroyed (2 stacks)",
        "stuck": "**stuck**: a (DELETE_FAILED)",
        "late": "deferred to the next run (out of time): b",
        "refused": "refused: LifecycleError: not feature",
        "throttled": "**failed**: ClientError: Rate exceeded",
        "next": "deferred to the next run (out of time)",
        "seen\\|x": "listed (dry run)",
    }
    assert janitor_summary({"orphans": []}) == "- nothing to reap"


def test_the_janitor_leaves_a_workspace_with_a_deploy_running_to_its_next_run(
    aws, tmp_path, monkeypatch, capsys
) -> None:
    cfn = aws["cloudformation"]
    deploy(cfn, "we-1-a", "etl", branch="feature/WEDATAIN-1-a", owned=True)
    deploy(cfn, "we-2-b", "etl", branch="feature/WEDATAIN-2-b", owned=True)
    listed = list_stacks

    def one_updating(cfn, project):  # moto finishes every update at once; CloudFormation takes minutes
        return [
            dataclasses.replace(s, status="UPDATE_IN_PROGRESS") if s.workspace == "we-1-a" else s
            for s in listed(cfn, project)
        ]

    for module in ("cli", "stacks", "assets"):  # everywhere the lifecycle looks it up
        monkeypatch.setattr(f"infra.lifecycle.{module}.list_stacks", one_updating)
    branches = tmp_path / "branches.txt"
    branches.write_text("main\n")
    assert main(["orphans", "--branches", str(branches), "--destroy"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["deferred"] == ["we-1-a"] and [r["workspace"] for r in out["destroyed"]] == ["we-2-b"]
    assert "busy (dataplat-we-1-a-etl UPDATE_IN_PROGRESS)" in captured.err
    assert [s.workspace for s in listed(cfn, PROJECT)] == ["we-1-a"]
