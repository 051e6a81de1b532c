"""ruff runs in `make test`, security rules (the bandit set, `S`) included: a finding fails the suite, and
every ignore says why (pyproject.toml, or the `# noqa` comment itself). The code is kept in ruff's format, so a
diff shows what changed and never how someone's editor wraps lines."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:]


def test_the_code_is_in_ruff_format() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"run `ruff format .` ({done.stdout[-4000:]})"


def test_the_security_rules_are_on_and_each_ignore_has_its_reason() -> None:
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert "S" in lint["select"]
    assert set(lint.get("ignore", [])) <= {"S603"}, "a rule switched off everywhere needs a very good reason"
    for path in [
        *ROOT.glob("*.py"),
        *(
            p
            for d in ("infra", "pipeline", "lambdas", "model_service", "glue", "training", "scripts")
            for p in (ROOT / d).rglob("*.py")
        ),
    ]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = re.search(r"# noqa: (S\d+)(.*)", line)
            if match:
                assert match[2].strip().startswith("("), f"{path.relative_to(ROOT)}:{number}: say why after {match[1]}"
