"""What each workflow does for each GitHub event and ref, run by tests/workflows/gha.py on recorded
payloads: which jobs run, in which environment, with which role, and what they call. The project's pure
CLIs run for real; AWS, the CDK, git and gh are recorded and answered by each scenario."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.workflows.gha import ROOT, JobRun, Scenario, evaluate, run_workflow

EVENTS = ROOT / "tests" / "events" / "github"
FEATURE = "feature/WEDATAIN-1234-add-x"
ACCOUNTS = {"feature": "111111111111", "int": "222222222222", "prd": "333333333333"}


def payload(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


def role(kind: str, stage: str = "feature") -> str:
    config = yaml.safe_load((ROOT / "config" / "project.yaml").read_text())
    project, account = config["project"], config["stages"][stage]["account"]
    names = {
        "deploy": f"{project}-github-deploy-{stage}",
        "pr": f"{project}-github-pr",
        "destroy": f"{project}-github-destroy",
    }
    return f"arn:aws:iam::{account}:role/{names[kind]}"


def ls_remote(branch: str | None) -> tuple[int, str]:
    """`git ls-remote --heads origin <ref>` as GitHub's remote answers: the line, or nothing (exit 2
    with --exit-code)."""
    return (0, f"1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d\trefs/heads/{branch}\n") if branch else (2, "")


def run(workflow: str, scenario: Scenario, tmp_path: Path) -> dict[str, JobRun]:
    return run_workflow(workflow, scenario, tmp_path)


def called(job: JobRun, prefix: str) -> list[str]:
    return [c for c in job.commands if c.startswith(prefix)]


# --- deploys ----------------------------------------------------------------------------------------------


def test_a_feature_push_deploys_its_workspace_in_the_feature_environment(tmp_path) -> None:
    jobs = run(
        "deploy-feature",
        Scenario("push", {}, f"refs/heads/{FEATURE}", fakes={"git ls-remote": ls_remote(FEATURE)}),
        tmp_path,
    )
    deploy = jobs["deploy"]
    assert deploy.ran and deploy.ok and deploy.environment == "deploy-feature"
    assert deploy.role == role("deploy")
    assert called(deploy, "python -m infra.lifecycle guard") == [
        f"python -m infra.lifecycle guard we-1234-add-x refs/heads/{FEATURE}"
    ]
    (cdk,) = called(deploy, "npx cdk deploy")
    assert f"branch=refs/heads/{FEATURE}" in cdk and "dataplat-we-1234-add-x-storage" in cdk
    assert deploy.commands[-1] == f"python -m infra.smoke refs/heads/{FEATURE}", "the smoke check runs last"
    components = f"python -m infra.lifecycle components refs/heads/{FEATURE}"
    assert deploy.commands.index(components) < deploy.commands.index(cdk), "stacks of components off refuse it"


@pytest.mark.parametrize(
    ("workflow", "ref"), [("deploy-feature", f"refs/heads/{FEATURE}"), ("deploy-persistent", "refs/heads/main")]
)
def test_a_deployed_stack_of_a_switched_off_component_stops_the_deploy(tmp_path, workflow: str, ref: str) -> None:
    scenario = Scenario(
        "push",
        {},
        ref,
        fakes={"git ls-remote": ls_remote(ref.removeprefix("refs/heads/")), "infra.lifecycle components": (2, "")},
    )
    deploy = run(workflow, scenario, tmp_path)["deploy"]
    assert not deploy.ok and called(deploy, "python -m infra.lifecycle components") == [
        f"python -m infra.lifecycle components {ref}"
    ]
    assert called(deploy, "npx cdk") == [] and called(deploy, "python -m infra.smoke") == []


def test_a_late_deploy_of_a_deleted_branch_stops_before_the_cdk(tmp_path) -> None:
    jobs = run(
        "deploy-feature", Scenario("push", {}, f"refs/heads/{FEATURE}", fakes={"git ls-remote": (0, "")}), tmp_path
    )
    assert not jobs["deploy"].ok
    assert called(jobs["deploy"], "npx cdk") == [] and called(jobs["deploy"], "python -m infra.smoke") == []


def test_main_deploys_int_without_reviewers(tmp_path) -> None:
    jobs = run("deploy-persistent", Scenario("push", {}, "refs/heads/main"), tmp_path)
    deploy = jobs["deploy"]
    assert deploy.environment == "deploy-int" and deploy.role == role("deploy", "int")
    assert called(deploy, "npx cdk deploy") == [
        "npx cdk deploy -c branch=refs/heads/main --all --require-approval never"
    ]
    # the action by name: its pin (a commit SHA) moves with Dependabot
    assert ("actions/checkout", {"ref": "refs/heads/main"}) in [
        (uses.split("@")[0], given) for uses, given in deploy.uses
    ]


@pytest.mark.parametrize(
    ("event", "ref"), [("push_tag", "refs/tags/v1.4.0"), ("push_release_branch", "refs/heads/release/1.4.0")]
)
def test_a_release_deploys_prd_through_its_reviewed_environment_when_not_older(tmp_path, event, ref) -> None:
    scenario = Scenario(
        "push", payload(event), ref, fakes={"infra.releases check": (0, "deploy=true\nreason=release 1.4.0\n")}
    )
    deploy = run("deploy-persistent", scenario, tmp_path)["deploy"]
    assert deploy.environment == "deploy-prd" and deploy.role == role("deploy", "prd")
    assert called(deploy, "python -m infra.releases check") == [f"python -m infra.releases check {ref}"]
    assert called(deploy, "npx cdk deploy") == [f"npx cdk deploy -c branch={ref} --all --require-approval never"]


def test_an_older_release_is_not_deployed_and_the_job_says_why(tmp_path) -> None:
    scenario = Scenario(
        "push",
        payload("push_release_branch"),
        "refs/heads/release/1.3.9",
        fakes={"infra.releases check": (0, "deploy=false\nreason=release 1.3.9 is older than 1.4.0\n")},
    )
    deploy = run("deploy-persistent", scenario, tmp_path)["deploy"]
    assert deploy.ok and called(deploy, "npx cdk") == [] and called(deploy, "python -m infra.smoke") == []
    assert "false (release 1.3.9 is older than 1.4.0)" in deploy.summary


def test_a_rollback_redeploys_exactly_the_named_release_to_prd(tmp_path) -> None:
    scenario = Scenario(
        "workflow_dispatch",
        {"inputs": {"rollback_to": "v1.3.9"}},
        "refs/heads/main",
        inputs={"rollback_to": "v1.3.9"},
        fakes={"infra.releases check": (0, "deploy=true\nreason=rollback\n")},
    )
    deploy = run("deploy-persistent", scenario, tmp_path)["deploy"]
    assert deploy.environment == "deploy-prd"
    # the action by name: its pin (a commit SHA) moves with Dependabot
    assert ("actions/checkout", {"ref": "refs/tags/v1.3.9"}) in [
        (uses.split("@")[0], given) for uses, given in deploy.uses
    ]
    assert called(deploy, "python -m infra.releases check") == [
        "python -m infra.releases check refs/tags/v1.3.9 --rollback"
    ]
    assert called(deploy, "npx cdk deploy") == [
        "npx cdk deploy -c branch=refs/tags/v1.3.9 --all --require-approval never"
    ]


def test_a_rollback_to_something_that_is_not_a_release_runs_nothing(tmp_path) -> None:
    scenario = Scenario(
        "workflow_dispatch", {"inputs": {"rollback_to": "main"}}, "refs/heads/main", inputs={"rollback_to": "main"}
    )
    jobs = run("deploy-persistent", scenario, tmp_path)
    assert not jobs["workspace"].ok and not jobs["deploy"].ran


# --- destroy ----------------------------------------------------------------------------------------------


def destroyed(jobs: dict[str, JobRun]) -> list[str]:
    return called(jobs["destroy"], "python -m infra.lifecycle destroy ") if jobs["destroy"].ran else []


@pytest.mark.parametrize(
    ("event", "name", "alive", "expected"),
    [
        ("delete", "delete_branch", None, [f"--owner refs/heads/{FEATURE}"]),
        ("delete", "delete_tag", None, []),
        ("pull_request", "pull_request_closed_merged", FEATURE, [f"--owner refs/heads/{FEATURE}"]),
        ("pull_request", "pull_request_closed_unmerged", FEATURE, []),
        ("pull_request", "pull_request_closed_unmerged", None, [f"--owner refs/heads/{FEATURE}"]),
        ("pull_request", "pull_request_closed_fork", None, []),
        ("pull_request", "pull_request_closed_stacked", "feature/WEDATAIN-1235-part-two", []),
        ("pull_request", "pull_request_closed_release", None, []),
        ("workflow_dispatch", "workflow_dispatch_destroy", None, ["we-1234-add-x"]),
    ],
)
def test_destroy_takes_only_what_the_event_owns(tmp_path, event, name, alive, expected) -> None:
    body = payload(name)
    head = (body.get("pull_request") or {}).get("head", {}).get("ref", "")
    scenario = Scenario(
        event,
        body,
        "refs/heads/main",
        head_ref=head,
        inputs=body.get("inputs", {}),
        fakes={"git ls-remote": ls_remote(alive)},
    )
    jobs = run("destroy", scenario, tmp_path)
    assert [
        c.removeprefix("python -m infra.lifecycle destroy ").removesuffix(" --budget-minutes 105")
        for c in destroyed(jobs)
    ] == expected
    if expected:
        destroy = jobs["destroy"]
        assert destroy.environment == "destroy-feature-workspace" and destroy.role == role("destroy")


def test_a_bad_manual_workspace_stops_the_run_before_anything(tmp_path) -> None:
    body = payload("workflow_dispatch_destroy_bad_input")
    jobs = run("destroy", Scenario("workflow_dispatch", body, "refs/heads/main", inputs=body["inputs"]), tmp_path)
    assert not jobs["plan"].ok and not jobs["destroy"].ran
    assert "pwned" not in json.dumps(jobs["plan"].outputs)


def test_a_failed_branch_listing_never_reads_as_a_deleted_branch(tmp_path) -> None:
    body = payload("pull_request_closed_unmerged")
    scenario = Scenario("pull_request", body, "refs/heads/main", head_ref=FEATURE, fakes={"git ls-remote": (128, "")})
    jobs = run("destroy", scenario, tmp_path)
    assert not jobs["plan"].ok and not jobs["destroy"].ran


def test_after_a_merged_pr_the_cleanup_check_looks_for_what_the_ref_owns(tmp_path) -> None:
    body = payload("pull_request_closed_merged")
    scenario = Scenario(
        "pull_request",
        body,
        "refs/heads/main",
        head_ref=FEATURE,
        fakes={"git ls-remote": ls_remote(FEATURE), "infra.lifecycle find": (0, "[]\n")},
    )
    check = run("destroy", scenario, tmp_path)["ensure-cleanup"]
    assert check.ran and check.ok and check.role == role("destroy")
    assert called(check, "python -m infra.lifecycle find") == [
        f"python -m infra.lifecycle find --owner refs/heads/{FEATURE}"
    ]
    left = Scenario(
        "pull_request",
        body,
        "refs/heads/main",
        head_ref=FEATURE,
        fakes={"git ls-remote": ls_remote(FEATURE), "infra.lifecycle find": (0, '["x-etl"]\n')},
    )
    assert not run("destroy", left, tmp_path / "left")["ensure-cleanup"].ok


# --- pull requests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "aws"),
    [
        ("pull_request_opened_feature", True),
        ("pull_request_opened_fork", False),
        ("pull_request_opened_release", False),
        ("pull_request_opened_hotfix_main", False),
    ],
)
def test_every_pr_passes_the_cleanup_check_using_aws_only_where_it_may(tmp_path, name, aws) -> None:
    body = payload(name)
    scenario = Scenario(
        "pull_request",
        body,
        "refs/pull/46/merge",
        head_ref=body["pull_request"]["head"]["ref"],
        fakes={"infra.lifecycle find": (0, "[]\n")},
    )
    check = run("cleanup-check", scenario, tmp_path)["ensure-cleanup"]
    assert check.ok
    assert check.role == (role("pr") if aws else None)
    assert bool(called(check, "python -m infra.lifecycle guard")) is aws
    assert "Ensure Workspace Cleanup: " in check.summary


# --- janitor ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "inputs", "destroys"),
    [
        ("schedule", {}, True),
        ("workflow_dispatch", {"destroy": False}, False),
        ("workflow_dispatch", {"destroy": True}, True),
    ],
)
def test_the_janitor_destroys_on_schedule_and_only_lists_by_hand(tmp_path, event, inputs, destroys) -> None:
    scenario = Scenario(
        event,
        {"inputs": inputs},
        "refs/heads/main",
        inputs=inputs,
        fakes={"gh api": (0, "main\n"), "infra.lifecycle orphans": (0, '{"orphans": []}\n')},
    )
    reap = run("janitor", scenario, tmp_path)["reap"]
    assert reap.ok and reap.environment == "destroy-feature-workspace" and reap.role == role("destroy")
    (orphans,) = called(reap, "python -m infra.lifecycle orphans")
    assert ("--destroy" in orphans.split()) is destroys


# --- the runner itself, and every script's syntax -----------------------------------------------------------


def test_expressions_follow_githubs_rules() -> None:
    context = {"needs": {"w": {"outputs": {"stage": "prd"}}}, "github": {"event": {"labels": [{"name": "A"}]}}}
    assert evaluate("needs.w.outputs.stage == 'prd' && 'deploy-prd' || 'deploy-int'", context) == "deploy-prd"
    assert evaluate("needs.w.outputs.stage == 'PRD'", context) is True, "strings compare ignoring case"
    assert evaluate("needs.w.outputs.missing == ''", context) is True, "null equals '' (both coerce to 0)"
    assert evaluate("!(needs.w.outputs.stage != 'prd')", context) is True
    assert evaluate("contains(github.event.labels.*.name, 'a')", context) is True


def as_pasted(script: str) -> str:
    """The script as the runner gets it: GitHub pastes each `${{ }}` value in as text (a word here)."""
    return re.sub(r"\$\{\{.*?\}\}", "gha_value", script)


def run_blocks() -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / ".github").rglob("*.yml")):
        document = yaml.safe_load(path.read_text())
        jobs = document.get("jobs") or {}
        steps = [s for job in jobs.values() for s in job.get("steps", [])] + (document.get("runs") or {}).get(
            "steps", []
        )
        found += [(f"{path.name}: {s.get('name', s['run'][:40])}", s["run"]) for s in steps if "run" in s]
    return found


def test_every_run_block_passes_shellcheck() -> None:
    """GitHub runs each block with `bash -e {0}`: shellcheck reads it as bash, expressions as variables,
    so each `# shellcheck disable=` in a workflow is a decision shellcheck actually sees."""
    for where, script in run_blocks():
        text = "#!/usr/bin/env bash\n" + as_pasted(script)
        checked = subprocess.run(
            [str(Path(sys.executable).parent / "shellcheck"), "-s", "bash", "-"],
            input=text,
            capture_output=True,
            text=True,
        )
        assert checked.returncode == 0, f"{where}:\n{checked.stdout}"


def test_every_run_block_is_valid_bash() -> None:
    blocks = run_blocks()
    assert len(blocks) > 20
    for where, script in blocks:
        checked = subprocess.run(["bash", "-n"], input=as_pasted(script), capture_output=True, text=True)
        assert checked.returncode == 0, f"{where}: {checked.stderr}"


# --- backfill ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "stage", "environment", "workspace"),
    [
        ("main", "int", "deploy-int", "int"),
        ("v1.4.0", "prd", "deploy-prd", "prd"),
        (FEATURE, "feature", "deploy-feature", "we-1234-add-x"),
    ],
)
def test_a_backfill_runs_in_its_stages_deploy_environment_with_that_role(
    tmp_path, ref: str, stage: str, environment: str, workspace: str
) -> None:
    """prd's deploy environment has required reviewers: a backfill of prd waits for one, as a deploy does."""
    inputs = {"ref": ref, "table": "diabetes/patients", "curated_only": False}
    jobs = run(
        "backfill", Scenario("workflow_dispatch", {"inputs": inputs}, "refs/heads/main", inputs=inputs), tmp_path
    )
    backfill = jobs["backfill"]
    assert backfill.ran and backfill.ok and backfill.environment == environment
    assert backfill.role == role("deploy", stage) and jobs["workspace"].outputs["workspace"] == workspace
    assert called(backfill, "python -m infra.backfill") == [
        f"python -m infra.backfill --branch {ref} --table diabetes/patients"
    ]
    assert ("actions/checkout", {"ref": ref}) in [(uses.split("@")[0], given) for uses, given in backfill.uses]


def test_a_curated_only_backfill_passes_its_flag(tmp_path) -> None:
    inputs = {"ref": "main", "table": "diabetes/patients", "curated_only": True}
    jobs = run(
        "backfill", Scenario("workflow_dispatch", {"inputs": inputs}, "refs/heads/main", inputs=inputs), tmp_path
    )
    assert called(jobs["backfill"], "python -m infra.backfill") == [
        "python -m infra.backfill --branch main --table diabetes/patients --curated-only"
    ]


# --- model alias -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "stage", "environment", "workspace", "action"),
    [
        ("v1.4.0", "prd", "deploy-prd", "prd", "approve"),
        ("v1.4.0", "prd", "deploy-prd", "prd", "rollback"),
        ("main", "int", "deploy-int", "int", "rollback"),
        (FEATURE, "feature", "deploy-feature", "we-1234-add-x", "approve"),
    ],
)
def test_a_person_moves_the_champion_in_the_stages_deploy_environment_with_that_role(
    tmp_path, ref: str, stage: str, environment: str, workspace: str, action: str
) -> None:
    """prd's deploy environment has required reviewers: an approval of prd's challenger waits for one."""
    inputs = {"ref": ref, "action": action}
    jobs = run(
        "model-alias", Scenario("workflow_dispatch", {"inputs": inputs}, "refs/heads/main", inputs=inputs), tmp_path
    )
    alias = jobs["alias"]
    assert alias.ran and alias.ok and alias.environment == environment
    assert alias.role == role("deploy", stage) and jobs["workspace"].outputs["workspace"] == workspace
    assert called(alias, "python -m infra.model_alias") == [f"python -m infra.model_alias {action} --branch {ref}"]
    assert ("actions/checkout", {"ref": ref}) in [(uses.split("@")[0], given) for uses, given in alias.uses]
