"""Synthesise feature, int and prd once per session, in one app (extra workspaces cost little)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from infra.config import ProjectConfig
from infra.naming import Component
from infra.platform import build_workspace, create_app
from infra.stacks.base import WorkspaceStack
from infra.workspace import Stage, Target, resolve

SAMPLE_REFS = {
    Stage.FEATURE: "feature/WEDATAIN-1234-some-feature",
    Stage.INT: "main",
    Stage.PRD: "refs/tags/v1.2.3",
}


@dataclass
class SynthesisedWorkspace:
    target: Target
    stacks: dict[Component, WorkspaceStack]
    templates: dict[Component, Template]


@pytest.fixture(scope="session")
def app_and_workspaces(config: ProjectConfig, tmp_path_factory: pytest.TempPathFactory
                       ) -> tuple[App, dict[Stage, SynthesisedWorkspace]]:
    app = create_app(outdir=str(tmp_path_factory.mktemp("cdk.out")))
    built = {}
    for stage, ref in SAMPLE_REFS.items():
        target = resolve(ref, config.naming_rules)
        built[stage] = (target, build_workspace(app, config, target))
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag or CDK's own validation: print every finding
        pytest.fail(f"synthesis failed validation (fix it, or acknowledge it with a reason):\n{exc}")
    return app, {
        stage: SynthesisedWorkspace(target, stacks, {c: Template.from_stack(s) for c, s in stacks.items()})
        for stage, (target, stacks) in built.items()
    }


@pytest.fixture(scope="session")
def cdk_out(app_and_workspaces) -> Path:
    return Path(app_and_workspaces[0].outdir)


@pytest.fixture(scope="session")
def workspaces(app_and_workspaces) -> dict[Stage, SynthesisedWorkspace]:
    return app_and_workspaces[1]


@pytest.fixture(params=list(Stage), ids=lambda s: s.value)
def workspace(request: pytest.FixtureRequest, workspaces) -> SynthesisedWorkspace:
    return workspaces[request.param]
