"""The SageMaker notebook and MLflow.

For now it holds the notebook's execution role, scoped to the workspace's own data: it reads the
curated bucket and reads/writes the artifacts bucket, nothing more. The ML issue adds the notebook
instance, its lifecycle configuration and MLflow.
"""

from __future__ import annotations

from aws_cdk import CfnOutput
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.constructs.data_bucket import Access
from infra.naming import Component
from infra.stacks.base import WorkspaceContext, WorkspaceStack
from infra.stacks.storage import StorageStack


class MlStack(WorkspaceStack):
    component = Component.ML

    def __init__(self, scope: Construct, ctx: WorkspaceContext, *, storage: StorageStack) -> None:
        super().__init__(scope, ctx)
        self.notebook_role = iam.Role(
            self,
            "NotebookRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"SageMaker notebook of workspace {ctx.target.workspace}",
        )
        self.notebook_role.add_managed_policy(storage.curated.access_policy(Access.READ))
        self.notebook_role.add_managed_policy(storage.artifacts.access_policy(Access.READ_WRITE))
        CfnOutput(self, "NotebookRoleArn", value=self.notebook_role.role_arn)
