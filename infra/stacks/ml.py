"""The SageMaker notebook and MLflow (the ML issue fills it)."""

from __future__ import annotations

from constructs import Construct

from infra.naming import Component
from infra.stacks.base import WorkspaceContext, WorkspaceStack


class MlStack(WorkspaceStack):
    component = Component.ML

    def __init__(self, scope: Construct, ctx: WorkspaceContext) -> None:
        super().__init__(scope, ctx)
