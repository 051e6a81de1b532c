"""The workspace CLI the workflows call (`python -m infra.workspace`): what it prints, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from infra.config import DEFAULT_CONFIG_PATH, load_config
from infra.constructs.bundling import REPO_ROOT
from infra.workspace import resolve
from infra.workspace.cli import configured_target, main


def test_configured_target_prints_the_error_and_gives_none(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    found = configured_target("feature/x", DEFAULT_CONFIG_PATH)
    assert found is not None and found[1] == resolve("feature/x", found[0].naming_rules)
    assert configured_target("refs/pull/1", DEFAULT_CONFIG_PATH) is None
    assert capsys.readouterr().err.startswith("error: cannot derive a workspace from ref 'refs/pull/1': ")
    missing = tmp_path / "none.yaml"
    assert configured_target("main", missing) is None
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err


def test_the_cli_prints_stacks_json_and_exits_2_on_a_bad_ref(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(DEFAULT_CONFIG_PATH)
    assert main(["--stacks", "main"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "dataplat-int-storage",
        "dataplat-int-monitoring",
        "dataplat-int-etl",
        "dataplat-int-ml",
        "dataplat-int-model-service",
    ]
    assert main(["--json", "feature/x"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {k: printed[k] for k in ("ref", "ref_type", "name", "stage", "workspace", "project")} == {
        "ref": "feature/x",
        "ref_type": "branch",
        "name": "feature/x",
        "stage": "feature",
        "workspace": "x",
        "project": config.project,
    }
    assert printed["deploy_role"].endswith(":role/dataplat-github-deploy-feature")
    assert main(["refs/pull/1/merge"]) == 2
    assert capsys.readouterr().out == ""
    copied = tmp_path / "project.yaml"
    copied.write_text(DEFAULT_CONFIG_PATH.read_text().replace("project: dataplat", "project: other"))
    assert main(["--config", str(copied), "--stacks", "main"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("other-int-")


def test_the_stacks_are_the_stages_components(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """deploy-feature.yml deploys exactly these names: a component switched off is not among them."""
    copied = tmp_path / "project.yaml"
    copied.write_text(
        DEFAULT_CONFIG_PATH.read_text().replace(
            '    account: "111111111111"\n',
            '    account: "111111111111"\n    components: {notebook: false, mlflow: false, model_service: false}\n',
        )
    )
    assert main(["--config", str(copied), "--stacks", "feature/x"]) == 0
    assert capsys.readouterr().out.split() == ["dataplat-x-storage", "dataplat-x-monitoring", "dataplat-x-etl"]
    assert main(["--config", str(copied), "--stacks", "main"]) == 0, "int keeps every component"
    assert len(capsys.readouterr().out.split()) == 5


def test_python_dash_m_runs_the_cli() -> None:
    """What the workflows run: the package's __main__, with the exit code of a bad ref."""
    good = subprocess.run(
        [sys.executable, "-m", "infra.workspace", "main"], capture_output=True, text=True, cwd=REPO_ROOT, check=False
    )
    assert (good.returncode, good.stdout.splitlines()[:2]) == (0, ["stage=int", "workspace=int"])
    bad = subprocess.run(
        [sys.executable, "-m", "infra.workspace", "refs/pull/1/merge"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")


def test_cli_prints_stage_and_workspace(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["feature/WEDATAIN-1234-some-feature"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "stage=feature",
        "workspace=we-1234-some-feature",
        "account=111111111111",
        "region=eu-west-1",
        "deploy_role=arn:aws:iam::111111111111:role/dataplat-github-deploy-feature",
        "pr_role=arn:aws:iam::111111111111:role/dataplat-github-pr",
        "destroy_role=arn:aws:iam::111111111111:role/dataplat-github-destroy",
    ]


def test_cli_json_lists_the_stacks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "refs/tags/v2.0.0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stage"] == "prd" and out["workspace"] == "prd" and out["ref_type"] == "tag"
    assert out["stacks"] == [
        f"{out['project']}-prd-{c}" for c in ("storage", "monitoring", "etl", "ml", "model-service")
    ]


def test_cli_exits_2_with_the_error_on_bad_input() -> None:
    run = subprocess.run([sys.executable, "-m", "infra.workspace", "refs/pull/1/merge"], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stdout == ""
    assert "refs/pull/1/merge" in run.stderr and "accepted:" in run.stderr
