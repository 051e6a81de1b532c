"""What the workflows do for each GitHub event, run on recorded payloads (tests/events/github/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.github_events import EventError, branch_alive, destroy_plan, main, pull_request_plan

EVENTS = Path(__file__).resolve().parents[1] / "events" / "github"
OWNER = "refs/heads/feature/WEDATAIN-1234-add-x"


def event(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


@pytest.fixture
def rules(config):
    return config.naming_rules


@pytest.mark.parametrize(
    ("event_name", "payload", "exists", "expected"),
    [
        ("delete", "delete_branch", None, (True, OWNER, "we-1234-add-x")),
        ("delete", "delete_tag", None, (False, "", "")),
        ("pull_request", "pull_request_closed_merged", True, (True, OWNER, "we-1234-add-x")),
        ("pull_request", "pull_request_closed_unmerged", True, (False, "", "")),
        ("pull_request", "pull_request_closed_unmerged", False, (True, OWNER, "we-1234-add-x")),
        ("pull_request", "pull_request_closed_fork", False, (False, "", "")),
        ("pull_request", "pull_request_closed_stacked", True, (False, "", "")),
        (
            "pull_request",
            "pull_request_closed_stacked",
            False,
            (True, "refs/heads/feature/WEDATAIN-1235-part-two", "we-1235-part-two"),
        ),
        ("pull_request", "pull_request_closed_release", False, (False, "", "")),
        ("pull_request", "pull_request_opened_feature", True, (False, "", "")),
        ("workflow_dispatch", "workflow_dispatch_destroy", None, (True, "", "we-1234-add-x")),
        ("push", "push_release_branch", None, (False, "", "")),
    ],
)
def test_each_event_destroys_only_the_workspace_its_ref_owns(rules, event_name, payload, exists, expected) -> None:
    plan = destroy_plan(event_name, event(payload), rules=rules, branch_exists=exists)
    assert (plan.destroy, plan.owner, plan.workspace) == expected, plan.reason


def test_a_stacked_pr_merged_into_a_live_branch_says_why_it_keeps_the_workspace(rules) -> None:
    plan = destroy_plan("pull_request", event("pull_request_closed_stacked"), rules=rules, branch_exists=True)
    assert "merged into 'feature/WEDATAIN-1234-add-x'" in plan.reason and "lives on" in plan.reason


def test_an_unmerged_close_needs_to_know_whether_the_branch_lives(rules) -> None:
    with pytest.raises(EventError, match="whether its head branch still exists"):
        destroy_plan("pull_request", event("pull_request_closed_unmerged"), rules=rules)


def test_a_manual_workspace_is_checked_and_never_reaches_the_outputs_raw(tmp_path, capsys) -> None:
    path = EVENTS / "workflow_dispatch_destroy_bad_input.json"
    assert main(["destroy-plan", "workflow_dispatch", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "the workflow's input" in captured.err
    assert main(["destroy-plan", "workflow_dispatch", str(EVENTS / "workflow_dispatch_destroy.json")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "destroy=true",
        "owner=",
        "workspace=we-1234-add-x",
        "reason=asked by hand",
    ]


@pytest.mark.parametrize(
    ("payload", "aws"),
    [
        ("pull_request_opened_feature", True),
        ("pull_request_opened_fork", False),
        ("pull_request_opened_release", False),
        ("pull_request_opened_hotfix_main", False),
    ],
)
def test_only_a_feature_branch_of_this_repository_uses_aws_in_pr_checks(rules, payload, aws) -> None:
    plan = pull_request_plan(event(payload), rules=rules)
    assert plan.aws is aws, plan.reason
    assert plan.workspace == ("we-1234-add-x" if aws else "")


def test_a_deleted_fork_counts_as_a_fork(rules) -> None:
    payload = event("pull_request_opened_fork")
    payload["pull_request"]["head"]["repo"] = None  # GitHub sends null once the fork is deleted
    assert pull_request_plan(payload, rules=rules).aws is False


def test_a_deploy_checks_that_its_branch_still_exists(tmp_path, capsys) -> None:
    listing = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d\trefs/heads/feature/x-longer\n"
    assert not branch_alive(listing, "refs/heads/feature/x"), "exact, not a prefix"
    assert branch_alive(listing, "refs/heads/feature/x-longer")
    remote = tmp_path / "remote.txt"
    remote.write_text("")
    assert main(["alive", "refs/heads/feature/x", str(remote)]) == 1
    assert "no longer exists: not deploying" in capsys.readouterr().err
    remote.write_text(listing.replace("x-longer", "x"))
    assert main(["alive", "refs/heads/feature/x", str(remote)]) == 0
