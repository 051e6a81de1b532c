"""The pre-commit hooks run what `make test` runs on the code (ruff format, ruff with the security rules,
mypy strict, actionlint), with the locked tools of this clone: a hook that fetched its own version could pass
a commit the suite then fails."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".pre-commit-config.yaml"


def _hooks() -> dict[str, dict[str, object]]:
    repos = yaml.safe_load(CONFIG.read_text())["repos"]
    assert [r["repo"] for r in repos] == ["local"], "every hook runs a locked tool of this clone, nothing fetched"
    return {hook["id"]: hook for repo in repos for hook in repo["hooks"]}


def test_the_config_is_one_pre_commit_accepts() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "pre-commit"), "validate-config", str(CONFIG)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_check_of_the_suite_has_its_hook_with_the_locked_tool() -> None:
    hooks = _hooks()
    assert set(hooks) == {"ruff-format", "ruff", "mypy", "actionlint"}
    for hook in hooks.values():
        assert hook["language"] == "system", f"{hook['id']} must run the tool installed by make install"
        program = shlex.split(str(hook["entry"]))[0]
        if program == "node":
            assert (ROOT / shlex.split(str(hook["entry"]))[1]).is_file()
        else:
            assert program.startswith(".venv/bin/") and (ROOT / program).is_file(), f"{hook['id']}: {program}"
    assert shlex.split(str(hooks["ruff-format"]["entry"]))[1:] == ["format"]
    assert shlex.split(str(hooks["ruff"]["entry"]))[1] == "check"


def test_mypy_and_actionlint_check_the_whole_configured_set_not_the_staged_files() -> None:
    """mypy takes its files from pyproject.toml, actionlint lints every workflow: a change can break a file it
    does not touch."""
    hooks = _hooks()
    for name in ("mypy", "actionlint"):
        assert hooks[name]["pass_filenames"] is False, name
    assert shlex.split(str(hooks["mypy"]["entry"])) == [".venv/bin/mypy"]
