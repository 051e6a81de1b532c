"""cfn-lint on every synthesised template: no errors, no warnings beyond those listed with a reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Checks ignored, each with its reason.
IGNORED_CHECKS = {
    "W3005": "CDK writes explicit DependsOn that duplicate an implied dependency; harmless and generated.",
    "W3010": "Availability zones come from config on purpose: synthesis makes no look-ups (config "
    "stages.<stage>.availability_zones).",
}
CFN_LINT = str(Path(sys.executable).parent / "cfn-lint")


@pytest.fixture(scope="session")
def templates(cdk_out) -> list[Path]:
    return sorted(cdk_out.glob("*.template.json"))


def test_every_template_is_linted(templates, workspaces, public_service, combinations) -> None:
    """The three stages', the public-service variant's and the component combinations' (tests/infra/conftest.py)
    templates."""
    linted = [*workspaces.values(), public_service[1], *combinations.values()]
    assert len(templates) == sum(len(w.stacks) for w in linted)


def test_no_lint_findings(templates) -> None:
    # One process for all templates: the rules load once (about 4x faster than cfnlint.api per file).
    run = subprocess.run(
        [
            CFN_LINT,
            "--format",
            "json",
            "--regions",
            "eu-west-1",
            "--ignore-checks",
            *IGNORED_CHECKS,
            "--",
            *map(str, templates),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    findings = json.loads(run.stdout or "[]")
    listed = [f"{Path(f['Filename']).name}: {f['Rule']['Id']} {f['Message']}" for f in findings]
    assert listed == [], "\n".join(listed)
    assert run.returncode == 0, run.stderr
