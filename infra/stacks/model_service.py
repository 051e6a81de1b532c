"""The model service on ECS Fargate (the model-service issue fills it)."""

from __future__ import annotations

from constructs import Construct

from infra.naming import Component
from infra.stacks.base import WorkspaceContext, WorkspaceStack


class ModelServiceStack(WorkspaceStack):
    component = Component.MODEL_SERVICE

    def __init__(self, scope: Construct, ctx: WorkspaceContext) -> None:
        super().__init__(scope, ctx)
