"""The README's `make local-deploy` / `local-status` / `local-destroy`, as the user runs them (the module
CLI the Makefile calls, in a subprocess, with its state in a temporary folder): about 45 s."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from infra.emulator.server import REPO_ROOT, Emulator

BRANCH = "fix/local-commands"


def run(state_dir, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.emulator", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "EMULATOR_STATE_DIR": str(state_dir)},
    )


def test_deploy_inspect_and_destroy_a_branch_with_the_local_commands(tmp_path) -> None:
    deployed = run(tmp_path, "up", "--branch", BRANCH)
    state = json.loads((tmp_path / "state.json").read_text(encoding="utf-8")) if deployed.returncode == 0 else {}
    emulator = Emulator.from_dict(state["emulator"]) if state else None
    try:
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert emulator is not None and emulator.running()
        for component in ("storage", "monitoring", "etl", "ml", "model-service"):
            assert f"dataplat-local-commands-{component}  CREATE_COMPLETE" in deployed.stdout
        assert "buckets (8)" in deployed.stdout and "left running for inspection" in deployed.stdout

        status = run(tmp_path, "status")
        assert status.returncode == 0 and "dataplat-local-commands-etl" in status.stdout

        again = run(tmp_path, "up", "--branch", "feature/another")
        assert again.returncode == 2 and "make local-destroy" in again.stderr

        destroyed = run(tmp_path, "down")
        assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
        assert "nothing of it is left" in destroyed.stdout
        assert not emulator.running() and not (tmp_path / "state.json").exists()
    finally:
        if emulator is not None:
            emulator.stop()
