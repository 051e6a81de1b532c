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


def test_mypy_follows_every_aws_cdk_module_the_app_imports() -> None:
    """pyproject.toml skips aws_cdk's modules (its root imports ~250) except those the app imports: a module the
    app starts to use unlisted would be checked as Any. The list is the app's imports, no more and no less."""
    import ast

    overrides = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["overrides"]
    skipped = [m for o in overrides if o.get("follow_imports") == "skip" for m in o["module"]]
    followed = [o for o in overrides if o.get("follow_imports") == "normal"]
    assert "aws_cdk.*" in skipped and len(followed) == 1
    imported = set()
    sources = [ROOT / "app.py", ROOT / "oidc_app.py", *(ROOT / "infra").rglob("*.py")]
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "aws_cdk":
                imported.add(node.module)
                if node.module == "aws_cdk":  # from aws_cdk import aws_s3 as s3: a module; App, Stack: the root's
                    imported |= {f"aws_cdk.{a.name}" for a in node.names if a.name.islower() and a.name != "aws_cdk"}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names if a.name.split(".")[0] == "aws_cdk"}
    assert set(followed[0]["module"]) == imported | {"aws_cdk"}
