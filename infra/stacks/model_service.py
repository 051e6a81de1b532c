"""The model service on ECS Fargate.

For now it holds the service's log group, owned by the stack with the stage's retention; the
model-service issue adds the image, the cluster, the service and its load balancer.
"""

from __future__ import annotations

from constructs import Construct

from infra.constructs.log_group import owned_log_group
from infra.naming import Component
from infra.stacks.base import WorkspaceContext, WorkspaceStack


class ModelServiceStack(WorkspaceStack):
    component = Component.MODEL_SERVICE

    def __init__(self, scope: Construct, ctx: WorkspaceContext) -> None:
        super().__init__(scope, ctx)
        self.log_group = owned_log_group(self, "ServiceLogs", ctx.settings.monitoring.log_retention_days)
