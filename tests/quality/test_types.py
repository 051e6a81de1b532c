"""mypy, strict, over the pipeline, the Lambdas, the service and the CDK app (pyproject.toml [tool.mypy]): a
type error, an untyped def or an unused `# type: ignore` fails `make test`."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_strict_finds_nothing() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    checked = {"pipeline", "lambdas", "model_service", "infra", "app.py", "oidc_app.py"}
    assert config["strict"] is True and checked <= set(config["files"])
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-4000:]
