"""app.py as the CDK CLI runs it: context from CDK_CONTEXT_JSON, templates into CDK_OUTDIR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from infra.platform import feature_flags

ROOT = Path(__file__).resolve().parents[2]


def run_app(tmp_path: Path, **context: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CDK_OUTDIR": str(tmp_path), "CDK_CONTEXT_JSON": json.dumps({**feature_flags(), **context})}
    return subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_app_synthesises_the_named_branch_and_says_what_it_built(tmp_path: Path) -> None:
    run = run_app(tmp_path, branch="feature/WEDATAIN-9-from-the-cli")
    assert run.returncode == 0, run.stderr
    assert "stage:     feature" in run.stderr
    assert "workspace: we-9-from-the-cli" in run.stderr
    expected = [f"dataplat-we-9-from-the-cli-{c}" for c in ("storage", "monitoring", "etl", "ml", "model-service")]
    assert "stacks:    " + " ".join(expected) in run.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    stacks = {k for k, v in manifest["artifacts"].items() if v["type"] == "aws:cloudformation:stack"}
    assert stacks == set(expected)
    assert "missing" not in manifest, "synthesis must not need look-ups (the CLI would try AWS calls)"
    assert all((tmp_path / f"{name}.template.json").is_file() for name in expected)


def test_app_rejects_a_bad_branch_with_exit_2(tmp_path: Path) -> None:
    run = run_app(tmp_path, branch="refs/pull/7/merge")
    assert run.returncode == 2
    assert "error: cannot derive a workspace from ref 'refs/pull/7/merge'" in run.stderr
    assert "Traceback" not in run.stderr


def test_app_rejects_a_bad_config_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "project.yaml"
    bad.write_text("project: X\n")
    run = run_app(tmp_path, branch="main", config=str(bad))
    assert run.returncode == 2
    assert f"error: {bad}:" in run.stderr and "project: got 'X'" in run.stderr
