"""Builds a workspace's stacks into an app; shared by app.py and the tests so both synthesise alike."""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from aws_cdk import App, Stack

from infra.config import ProjectConfig
from infra.constructs.dashboard import WorkspaceDashboard
from infra.managed_policies import inline_policies_to_managed
from infra.nag import add_nag
from infra.naming import Component, resource_name
from infra.stacks.base import WorkspaceContext, WorkspaceStack
from infra.stacks.etl import EtlStack
from infra.stacks.ml import MlStack
from infra.stacks.model_service import ModelServiceStack
from infra.stacks.monitoring import MonitoringStack
from infra.stacks.storage import StorageStack
from infra.workspace import Target

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def feature_flags() -> dict[str, Any]:
    """cdk.json's context (feature flags). The CLI passes it to app.py; tests must pass it too,
    or they would synthesise different templates from the ones that deploy."""
    context = json.loads(CDK_JSON.read_text(encoding="utf-8"))["context"]
    if not isinstance(context, dict):
        raise ValueError(f"{CDK_JSON}: `context` is not an object")
    return context


def create_app(outdir: str | None = None, context: dict[str, Any] | None = None) -> App:
    """An app with the project's feature flags and cdk-nag: every synth is checked, locally and in CI."""
    app = App(outdir=outdir, context={**feature_flags(), **(context or {})})
    add_nag(app, holds_patient_data=_holds_patient_data)
    return app


def _holds_patient_data(stack: Stack) -> bool:
    """A stack of int or prd: the HIPAA Security and NIST 800-53 packs hold it (infra/nag.py)."""
    return isinstance(stack, WorkspaceStack) and stack.ctx.stage.is_persistent


def dashboard_home(components: Collection[Component]) -> Component | None:
    """The stack that holds the workspace dashboard: the model service's, else etl's (what the dashboard
    shows); none without either. infra/constructs/dashboard.py says why the last of them."""
    return next((c for c in (Component.MODEL_SERVICE, Component.ETL) if c in components), None)


def build_workspace(app: App, config: ProjectConfig, target: Target) -> dict[Component, WorkspaceStack]:
    """The stacks of one workspace's components (config `components`), named <project>-<workspace>-<component>.
    A component that is off is not built, so nothing of it is synthesised."""
    ctx = WorkspaceContext(config=config, target=target)
    wanted = ctx.settings.components.stacks
    storage = StorageStack(app, ctx)
    monitoring = MonitoringStack(app, ctx)
    built: dict[Component, WorkspaceStack] = {Component.STORAGE: storage, Component.MONITORING: monitoring}
    sections = []
    if Component.ETL in wanted:
        etl = built[Component.ETL] = EtlStack(app, ctx, storage=storage, alarm_topic=monitoring.alarm_topic)
        sections.append(etl.dashboard_section)
    ml = MlStack(app, ctx, storage=storage, alarm_topic=monitoring.alarm_topic) if Component.ML in wanted else None
    if ml is not None:
        built[Component.ML] = ml
    if Component.MODEL_SERVICE in wanted:
        service = ModelServiceStack(app, ctx, storage=storage, ml=ml, alarm_topic=monitoring.alarm_topic)
        built[Component.MODEL_SERVICE] = service
        sections.append(service.dashboard_section)
    home = dashboard_home(wanted)
    if home is not None:
        holder = built[home]
        WorkspaceDashboard(
            holder,
            "Dashboard",
            dashboard_name=resource_name(config.project, target.workspace, "dashboard"),
            sections=sections,
        )
        # deployed after every other stack: when a switch moves the dashboard here, its old stack lets go of
        # the name first (one name: CloudFormation would refuse a second)
        for other in built.values():
            if other is not holder:
                holder.add_stack_dependency(other)
    stacks = [built[c] for c in wanted]
    if ctx.stage.is_persistent:  # after every grant: the roles' policies are complete
        for stack in stacks:
            inline_policies_to_managed(stack)
    return {stack.component: stack for stack in stacks}
