"""Training in AWS (config ml.training; README: Training in AWS): a state machine that runs `python -m
training.train` on the model's curated table as a SageMaker training job of the training image, after each new
curated build of the table and/or on a schedule.

Why a SageMaker training job: it needs no VPC, NAT or cluster (an ECS task would), bills per second of the run only,
caps the run (MaxRuntimeInSeconds) and offers spot capacity; and why a custom image: AWS's scikit-learn framework
images ship an older scikit-learn than the service loads, while training/Dockerfile installs the pins exported
from the same lock as the service's image. The job's entry point is the command a laptop runs, with the arguments
config sets.

At most one run at a time: a run first lists its state machine's running executions and goes on only where it is
the oldest (the list is newest first); a later one ends at once, saying so. The run itself decides whether
`champion` moves (training/promotion.py), so a failed or worse run leaves it alone.
"""

from __future__ import annotations

import json

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.config import TrainingSettings
from infra.constructs.alarms import alarm_above
from infra.constructs.bundling import REPO_ROOT
from infra.constructs.data_bucket import Access, DataBucket
from infra.constructs.log_group import owned_log_group
from infra.constructs.pipeline_function import METRICS_NAMESPACE, WORKSPACE_DIMENSION
from infra.constructs.serverless_service import IMAGE_PLATFORM
from pipeline.contract import Contract
from pipeline.layout import current_build_key, table_prefix
from training.promotion import CHAMPION_AGE_METRIC, MODEL_DIMENSION

TRAINING_ENTRYPOINT = ("python", "-m", "training.train")
"""What the job runs: the command of `make train` (training/Dockerfile's ENTRYPOINT too)."""
OUTPUT_PREFIX = "training-output"
"""Where SageMaker puts a job's (empty) output archive, in the artifacts bucket; the model goes to MLflow."""
SAGEMAKER_EVENTS_RULE = "StepFunctionsGetEventsForSageMakerTrainingJobsRule"
"""The managed rule through which Step Functions waits for a training job (.sync)."""
OLDEST_RUNNING = "$.running.oldest[0].ExecutionArn"
JOB_LOGS = "/aws/sagemaker/TrainingJobs"
"""SageMaker's log group of every training job of the account (streams named by job): not the workspace's, so
not deleted with it; its streams expire only as the account's settings say (README: Training in AWS)."""
JOB_METRICS_NAMESPACE = "/aws/sagemaker/TrainingJobs"
"""Where SageMaker puts a training job's own metrics (CPU, memory), with the job's role: spelled as the log group."""
_COLON = ArnFormat.COLON_RESOURCE_NAME


class TrainingPipeline(Construct):
    """The training image, the job's role, the state machine, its triggers and its alarms. The caller grants the
    role MLflow and its artifact store (infra/stacks/ml.py)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: TrainingSettings,
        state_machine_name: str,
        job_prefix: str,
        workspace: str,
        model: Contract,
        tracking_arn: str,
        curated: DataBucket,
        artifacts: DataBucket,
        alarm_topic: sns.ITopic,
        log_retention_days: int,
        log_key: kms.IKey | None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.image = ecr_assets.DockerImageAsset(
            self, "Image", directory=str(REPO_ROOT), file="training/Dockerfile", platform=IMAGE_PLATFORM
        )
        self.job_logs_arn = stack.format_arn(
            service="logs", resource="log-group", resource_name=f"{JOB_LOGS}:*", arn_format=_COLON
        )
        self.jobs_arn = stack.format_arn(service="sagemaker", resource="training-job", resource_name=f"{job_prefix}-*")
        self.role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Training jobs of workspace {workspace}: the curated table, MLflow, its own image and logs",
        )
        table = table_prefix(model.dataset, model.table).rstrip("/")
        self.role.add_managed_policy(curated.read_under_policy(table))  # its table only
        self.role.add_managed_policy(artifacts.access_policy(Access.READ_WRITE))  # the job's output archive
        self.image.repository.grant_pull(self.role)
        self.role.add_to_policy(
            iam.PolicyStatement(  # SageMaker writes the job's stdout and stderr with the job's role
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[self.job_logs_arn, self.job_logs_arn.removesuffix(":*")],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(  # the champion's age (training/train.py), and SageMaker's own job metrics
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": [METRICS_NAMESPACE, JOB_METRICS_NAMESPACE]}},
            )
        )
        dimensions = {WORKSPACE_DIMENSION: workspace}
        arguments = training_arguments(settings, f"s3://{curated.bucket_name}/{table}", dimensions)
        train = sfn.CustomState(
            self,
            "Train",
            state_json={
                "Type": "Task",
                "Resource": f"arn:{stack.partition}:states:::sagemaker:createTrainingJob.sync",
                "Parameters": {
                    "TrainingJobName.$": f"States.Format('{job_prefix}-{{}}', States.UUID())",
                    "RoleArn": self.role.role_arn,
                    "AlgorithmSpecification": {
                        "TrainingImage": self.image.image_uri,
                        "TrainingInputMode": "File",
                        "ContainerEntrypoint": list(TRAINING_ENTRYPOINT),
                        "ContainerArguments": arguments,
                    },
                    "Environment": {"MLFLOW_TRACKING_URI": tracking_arn, "AWS_DEFAULT_REGION": stack.region},
                    "OutputDataConfig": {"S3OutputPath": f"s3://{artifacts.bucket_name}/{OUTPUT_PREFIX}/"},
                    "ResourceConfig": {
                        "InstanceType": settings.instance_type,
                        "InstanceCount": 1,
                        "VolumeSizeInGB": settings.volume_gb,
                    },
                    "StoppingCondition": stopping_condition(settings),
                    "EnableManagedSpotTraining": settings.spot,
                },
                "ResultSelector": {"job.$": "$.TrainingJobName", "status.$": "$.TrainingJobStatus"},
                "ResultPath": "$.training",
            },
        )
        machine_arn = stack.format_arn(
            service="states", resource="stateMachine", resource_name=state_machine_name, arn_format=_COLON
        )
        running = tasks.CallAwsService(
            self,
            "RunningNow",
            service="sfn",
            action="listExecutions",
            iam_action="states:ListExecutions",
            iam_resources=[machine_arn],
            parameters={"StateMachineArn": machine_arn, "StatusFilter": "RUNNING"},
            result_selector={"oldest": sfn.JsonPath.string_at("$.Executions[-1:]")},
            result_path="$.running",
        )
        running.add_retry(errors=["States.ALL"], max_attempts=3, interval=Duration.seconds(5), backoff_rate=2)
        another = sfn.Succeed(
            self, "AnotherRunIsTraining", comment="An older run of this model is training: this one ends"
        )
        definition = running.next(
            sfn.Choice(self, "OldestRun?")
            .when(sfn.Condition.is_not_present(OLDEST_RUNNING), train)  # not listed yet: nothing older is either
            .when(sfn.Condition.string_equals_json_path(OLDEST_RUNNING, "$$.Execution.Id"), train)
            .otherwise(another)
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=state_machine_name,
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=Duration.seconds(run_cap_seconds(settings) + 15 * 60),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=owned_log_group(self, "Logs", log_retention_days, log_key),
                level=sfn.LogLevel.ALL,
                include_execution_data=True,
            ),
        )
        self._may_run_jobs(stack)
        self._triggers(settings, curated, model)
        self._alarms(settings, workspace, model, alarm_topic)

    def _may_run_jobs(self, stack: Stack) -> None:
        """What `.sync` of CreateTrainingJob needs (CDK's task would add it; a CustomState does not): its own
        jobs, the job role passed to SageMaker only, and the managed rule that reports the job's end."""
        role = self.state_machine.role
        role.add_to_principal_policy(
            iam.PolicyStatement(  # Step Functions tags the jobs it starts (AddTags), and reads them back
                actions=[
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:AddTags",
                ],
                resources=[self.jobs_arn],
            )
        )
        role.add_to_principal_policy(iam.PolicyStatement(actions=["sagemaker:ListTags"], resources=["*"]))
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[stack.format_arn(service="events", resource="rule", resource_name=SAGEMAKER_EVENTS_RULE)],
            )
        )

    def _triggers(self, settings: TrainingSettings, curated: DataBucket, model: Contract) -> None:
        target = targets.SfnStateMachine(self.state_machine)
        if settings.after_promotion:  # the promotion writes the table's pointer last: its build is then whole
            events.Rule(
                self,
                "AfterPromotion",
                description=f"Train when a new curated build of {model.name} becomes current",
                event_pattern=events.EventPattern(
                    source=["aws.s3"],
                    detail_type=["Object Created"],
                    detail={
                        "bucket": {"name": [curated.bucket_name]},
                        "object": {"key": [current_build_key(model.dataset, model.table)]},
                    },
                ),
                targets=[target],
            )
        if settings.schedule is not None:
            events.Rule(
                self,
                "Schedule",
                description=f"Train {model.model} on {model.name} on a schedule (config ml.training.schedule)",
                schedule=events.Schedule.expression(settings.schedule),
                targets=[target],
            )

    def _alarms(self, settings: TrainingSettings, workspace: str, model: Contract, topic: sns.ITopic) -> None:
        period = Duration.minutes(5)
        alarm_above(
            self,
            "RunFailedAlarm",
            description=f"A training run of {model.model} failed or timed out: the champion stays; the run's "
            "record (MLflow) and the job's logs say why",
            metric=cloudwatch.MathExpression(
                expression="FILL(failed, 0) + FILL(timedOut, 0)",
                using_metrics={
                    "failed": self.state_machine.metric_failed(period=period, statistic=cloudwatch.Stats.SUM),
                    "timedOut": self.state_machine.metric_timed_out(period=period, statistic=cloudwatch.Stats.SUM),
                },
                period=period,
            ),
            threshold=0,
            topic=topic,
        )
        if settings.champion_max_age_days is None:
            return
        alarm_above(
            self,
            "StaleChampionAlarm",
            description=f"The champion of {model.model} is older than {settings.champion_max_age_days} days while "
            f"{model.name} has newer data (config ml.training.champion_max_age_days): no run beat it or was approved",
            metric=cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=CHAMPION_AGE_METRIC,
                dimensions_map={WORKSPACE_DIMENSION: workspace, MODEL_DIMENSION: str(model.model)},
                statistic=cloudwatch.Stats.MAXIMUM,
                period=Duration.days(1),
            ),
            threshold=settings.champion_max_age_days,
            topic=topic,
            missing=cloudwatch.TreatMissingData.IGNORE,  # runs report it; between runs the last state holds
        )


def training_arguments(settings: TrainingSettings, data: str, dimensions: dict[str, str]) -> list[str]:
    """The job's arguments to `python -m training.train`: the table at its current build, the guards and decision
    of config, and where the champion's age goes."""
    arguments = [
        "--data",
        data,
        "--min-new-rows",
        str(settings.min_new_rows),
        "--min-improvement",
        str(settings.min_improvement),
        "--metrics-namespace",
        METRICS_NAMESPACE,
        "--metric-dimensions",
        json.dumps(dimensions, sort_keys=True),
    ]
    return arguments + (["--require-approval"] if settings.require_approval else [])


def run_cap_seconds(settings: TrainingSettings) -> int:
    """The longest a run may take: its runtime, and with spot as long again waiting for capacity."""
    runtime = settings.max_runtime_minutes * 60
    return runtime * 2 if settings.spot else runtime


def stopping_condition(settings: TrainingSettings) -> dict[str, int]:
    runtime = settings.max_runtime_minutes * 60
    if settings.spot:
        return {"MaxRuntimeInSeconds": runtime, "MaxWaitTimeInSeconds": run_cap_seconds(settings)}
    return {"MaxRuntimeInSeconds": runtime}
