"""MLflow and the SageMaker notebook of a workspace (the notebook only where config `components.notebook` is on).

MLflow is SageMaker managed MLflow: the serverless MLflow App by default, a tracking server when the
stage's config asks for it (prd), or a shared one named in config (a feature stage may trade isolation
for cost). Its artifact store is the workspace's artifacts bucket, under mlflow/; its role reaches only
that. The tracking ARN (the tracking URI of the sagemaker-mlflow plugin) is published as a stack output
and an SSM parameter for the notebook, training and the model service.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Fn
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.construct_tree import default_policy
from infra.constructs.bundling import REPO_ROOT
from infra.constructs.data_bucket import Access
from infra.constructs.notebook_lifecycle import PLATFORM, on_create, on_start
from infra.constructs.s3_prefix import grant_under_prefix
from infra.constructs.training_pipeline import TrainingPipeline
from infra.nag import acknowledge, acknowledge_asset_reads
from infra.naming import Component, resource_name, tracking_uri_parameter, training_job_prefix
from infra.stack_outputs import MLFLOW_TRACKING_OUTPUT
from infra.stacks.base import WorkspaceContext, WorkspaceStack
from infra.stacks.storage import StorageStack
from infra.workspace import Stage
from pipeline.registry import trained_model

MLFLOW_PREFIX = "mlflow"


class MlStack(WorkspaceStack):
    component = Component.ML

    def __init__(
        self, scope: Construct, ctx: WorkspaceContext, *, storage: StorageStack, alarm_topic: sns.ITopic
    ) -> None:
        super().__init__(scope, ctx)
        self._ml_settings = ctx.settings.ml
        self._storage = storage
        self.tracking_arn = self._mlflow(ctx, storage)
        ssm.StringParameter(
            self,
            "TrackingUri",
            parameter_name=tracking_uri_parameter(ctx.config.project, ctx.target.workspace),
            string_value=self.tracking_arn,
            description="MLflow tracking URI (ARN) of the workspace, for notebooks, training and the model service",
        )
        CfnOutput(self, MLFLOW_TRACKING_OUTPUT, value=self.tracking_arn)
        if ctx.settings.components.notebook:
            self._notebook(ctx)
        if self._ml_settings.training.enabled:
            self._training(ctx, alarm_topic)

    def _notebook(self, ctx: WorkspaceContext) -> None:
        """The notebook instance, its role and lifecycle (MLflow's tracking URI set, idle stop, notebooks in)."""
        ml, storage = self._ml_settings, self._storage
        self.notebook_role = iam.Role(
            self,
            "NotebookRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"SageMaker notebook of workspace {ctx.target.workspace}",
        )
        self.notebook_role.add_managed_policy(storage.curated.access_policy(Access.READ))
        self.grant_artifacts(self.notebook_role, Access.READ_WRITE)
        notebook_name = resource_name(ctx.config.project, ctx.target.workspace, "notebook")
        notebook_arn = f"arn:aws:sagemaker:{self.region}:{self.account}:notebook-instance/{notebook_name}"
        self.notebook_role.add_to_policy(
            iam.PolicyStatement(  # the idle stop stops its own instance only
                actions=["sagemaker:StopNotebookInstance", "sagemaker:DescribeNotebookInstance"],
                resources=[notebook_arn],
            )
        )
        self.grant_mlflow(self.notebook_role, "CreatePresignedMlflowAppUrl", "CreatePresignedMlflowTrackingServerUrl")
        notebooks = s3_assets.Asset(self, "Notebooks", path=str(REPO_ROOT / "notebooks"))
        notebooks.grant_read(self.notebook_role)

        lifecycle = sagemaker.CfnNotebookInstanceLifecycleConfig(
            self,
            "NotebookLifecycle",
            notebook_instance_lifecycle_config_name=notebook_name,
            on_create=[{"content": Fn.base64(on_create(notebooks.s3_object_url))}],
            on_start=[
                {
                    "content": Fn.base64(
                        on_start(
                            self.tracking_arn,
                            ml.notebook_idle_stop_minutes,
                            # int and prd download nothing at boot: a boot must not depend on PyPI
                            install_packages=ctx.target.stage is Stage.FEATURE and ml.notebook_direct_internet_access,
                        )
                    )
                }
            ],
        )
        self.notebook_key = kms.Key(
            self,
            "NotebookKey",
            enable_key_rotation=True,
            pending_window=Duration.days(7),
            description=f"Encrypts the notebook volume of workspace {ctx.target.workspace}",
        )
        self.notebook = sagemaker.CfnNotebookInstance(
            self,
            "Notebook",
            notebook_instance_name=notebook_name,
            platform_identifier=PLATFORM.identifier,
            instance_type=ml.notebook_instance_type,
            volume_size_in_gb=ml.notebook_volume_gb,
            role_arn=self.notebook_role.role_arn,
            lifecycle_config_name=lifecycle.attr_notebook_instance_lifecycle_config_name,
            root_access="Disabled",
            direct_internet_access="Enabled" if ml.notebook_direct_internet_access else "Disabled",
            subnet_id=ml.notebook_subnet_id,
            security_group_ids=[ml.notebook_security_group_id] if ml.notebook_security_group_id else None,
            kms_key_id=self.notebook_key.key_id,
            instance_metadata_service_configuration=sagemaker.CfnNotebookInstance.InstanceMetadataServiceConfigurationProperty(
                minimum_instance_metadata_service_version="2"
            ),
        )
        CfnOutput(self, "NotebookName", value=notebook_name)
        CfnOutput(self, "NotebookRoleArn", value=self.notebook_role.role_arn)
        self._acknowledge_notebook(ctx)

    def grant_mlflow(self, role: iam.IRole, *sagemaker_actions: str) -> None:
        """All of MLflow's API (runs, experiments, the registry and its aliases) on this workspace's MLflow only,
        and `sagemaker_actions` on it (the notebook's presigned UI links)."""
        role.add_to_principal_policy(iam.PolicyStatement(actions=["sagemaker-mlflow:*"], resources=[self.tracking_arn]))
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[f"sagemaker:{a}" for a in ("CallMlflowAppApi", *sagemaker_actions)],
                resources=[self.tracking_arn],
            )
        )

    def _training(self, ctx: WorkspaceContext, alarm_topic: sns.ITopic) -> None:
        """Training in AWS (config ml.training): infra/constructs/training_pipeline.py."""
        storage = self._storage
        self.training = TrainingPipeline(
            self,
            "Training",
            settings=self._ml_settings.training,
            state_machine_name=resource_name(ctx.config.project, ctx.target.workspace, "training"),
            job_prefix=training_job_prefix(ctx.config.project, ctx.target.workspace),
            workspace=ctx.target.workspace,
            model=trained_model(),
            tracking_arn=self.tracking_arn,
            curated=storage.curated,
            artifacts=storage.artifacts,
            alarm_topic=alarm_topic,
            log_retention_days=ctx.settings.monitoring.log_retention_days,
            log_key=storage.data_key,
        )
        self.grant_mlflow(self.training.role)
        self.grant_artifacts(self.training.role, Access.READ_WRITE)  # the model files it logs
        self._acknowledge_training()

    def _acknowledge_training(self) -> None:
        training = self.training
        acknowledge(
            default_policy(training.role),
            "IAM5",
            finding="Action::sagemaker-mlflow:*",
            reason="A training run logs runs, registers versions and moves aliases: MLflow's API on this "
            "workspace's MLflow only.",
        )
        acknowledge(
            default_policy(training.role),
            "IAM5",
            finding="Resource::*",
            reason="ecr:GetAuthorizationToken has no resource narrower than '*'; cloudwatch:PutMetricData is "
            "held by its condition to the platform's namespace and SageMaker's own job metrics.",
        )
        acknowledge(
            default_policy(training.role),
            "IAM5",
            finding=f"Resource::{training.job_logs_arn}",
            reason="SageMaker's log group of training jobs: streams named by job, created as each job starts.",
        )
        machine_policy = default_policy(training.state_machine.role)
        acknowledge(
            machine_policy,
            "IAM5",
            finding=f"Resource::{training.jobs_arn}",
            reason="This workspace's training jobs only: named by its prefix and a run's UUID, unknown until it "
            "starts.",
        )
        acknowledge(
            machine_policy,
            "IAM5",
            finding="Resource::*",
            reason="X-Ray tracing, CloudWatch Logs delivery for Step Functions and sagemaker:ListTags (what the "
            ".sync integration reads back from its job) accept no resource narrower than '*'.",
        )

    def grant_artifacts(self, role: iam.IRole, access: Access) -> None:
        """Reach to MLflow's artifact store (where model files are): this workspace's artifacts bucket, or
        the shared MLflow's store named in config (READ or READ_WRITE)."""
        store = self._ml_settings.shared_mlflow_artifact_store
        if store is None:
            role.add_managed_policy(self._storage.artifacts.access_policy(access))
            return
        actions = ["s3:GetObject"] + (["s3:PutObject"] if access is Access.READ_WRITE else [])
        grant_under_prefix(
            role,
            store,
            actions,
            reason="The shared MLflow's artifact store (config ml.shared_mlflow_artifact_store): model "
            "files are objects under it, named by run.",
        )

    def _mlflow(self, ctx: WorkspaceContext, storage: StorageStack) -> str:
        ml = ctx.settings.ml
        if ml.mlflow == "shared":
            if ml.shared_mlflow_arn is None:  # the config's validation requires it with `mlflow: shared`
                raise ValueError("ml.mlflow is 'shared' but ml.shared_mlflow_arn is not set")
            return ml.shared_mlflow_arn
        role = iam.Role(
            self,
            "MlflowRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"MLflow of workspace {ctx.target.workspace}: its artifact store only",
        )
        role.add_managed_policy(storage.artifacts.access_policy(Access.READ_WRITE))
        name = resource_name(ctx.config.project, ctx.target.workspace, "mlflow")
        store = f"s3://{storage.artifacts.bucket_name}/{MLFLOW_PREFIX}"
        if ml.mlflow == "app":
            app = sagemaker.CfnMlflowApp(
                self,
                "Mlflow",
                name=name,
                artifact_store_uri=store,
                role_arn=role.role_arn,
                model_registration_mode="AutoModelRegistrationDisabled",
            )
            app.node.add_dependency(role)
            return app.attr_arn
        server = sagemaker.CfnMlflowTrackingServer(
            self,
            "MlflowServer",
            tracking_server_name=name,
            artifact_store_uri=store,
            role_arn=role.role_arn,
            tracking_server_size=ml.mlflow_tracking_server_size,
            automatic_model_registration=False,
        )
        server.node.add_dependency(role)
        return server.attr_tracking_server_arn

    def _acknowledge_notebook(self, ctx: WorkspaceContext) -> None:
        notebook = self.notebook
        if ctx.settings.ml.notebook_direct_internet_access:
            acknowledge(
                notebook,
                "SM1",
                reason="This stage's notebook runs without a VPC (config "
                "ml.notebook_direct_internet_access): no NAT or endpoints per workspace; set a subnet "
                "and security group in config to put it in a network.",
            )
            acknowledge(
                notebook,
                "SM3",
                reason="Direct internet access is this stage's choice (config), so "
                "that kernels can install packages; root access is disabled.",
            )
        policy = default_policy(self.notebook_role)
        acknowledge(
            policy,
            "IAM5",
            finding="Action::sagemaker-mlflow:*",
            reason="All MLflow API actions (runs, experiments, registry) on this workspace's MLflow only.",
        )
        acknowledge_asset_reads(self.notebook_role, "the example notebooks' zip, copied in at instance creation")
