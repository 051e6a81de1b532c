"""A Python Lambda of the pipeline: repo code and Powertools bundled locally, its own log group, and
alarms on errors and throttles to the workspace topic."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.checkov import skip_checkov
from infra.constructs.alarms import alarm_above
from infra.constructs.bundling import REPO_ROOT, local_bundle
from infra.constructs.log_group import owned_log_group
from infra.nag import acknowledge
from infra.runtimes import LAMBDA_RUNTIME, LAMBDA_RUNTIME_DEPRECATION

BUNDLED_MODULES = ("aws_lambda_powertools", "typing_extensions")
"""Powertools is bundled (pure Python) rather than taken from its public layer: the Lambda then runs the
version the tests ran, on any Python runtime, with no layer ARN per region to keep up to date."""


class PipelineFunction(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, name: str, description: str,
                 environment: Mapping[str, str], alarm_topic: sns.ITopic, log_retention_days: int,
                 timeout: Duration | None = None,
                 dead_letter_queue: sqs.IQueue | None = None) -> None:
        """Without `dead_letter_queue` the function must only be invoked synchronously (by the state
        machine), where failures return to the caller, which retries, catches and alarms."""
        super().__init__(scope, construct_id)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description=f"{description} (Lambda {name})")
        self.log_group = owned_log_group(self, "Logs", log_retention_days)
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self, "Function",
            runtime=LAMBDA_RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler=f"lambdas.{name}.handler.handler",
            code=lambda_.Code.from_asset(str(REPO_ROOT / "lambdas"),
                                         **local_bundle([("lambdas", "lambdas"), ("pipeline", "pipeline")],
                                                        BUNDLED_MODULES)),
            description=description,
            role=self.role,
            log_group=self.log_group,
            timeout=timeout or Duration.minutes(1),
            memory_size=256,
            environment={"POWERTOOLS_SERVICE_NAME": name, "POWERTOOLS_METRICS_NAMESPACE": "DataPlatform",
                         "METRICS_NAMESPACE": "DataPlatform", **environment},
            dead_letter_queue=dead_letter_queue,
            retry_attempts=2 if dead_letter_queue else None,
        )
        acknowledge(self.function.node.default_child, "L1", reason=(
            f"Pinned to {LAMBDA_RUNTIME.name}, the Python the tests run (infra/runtimes.py), not the newest "
            f"runtime; Lambda deprecates it on {LAMBDA_RUNTIME_DEPRECATION}: upgrade tests and pin together."))
        if dead_letter_queue is None:
            skip_checkov(self.function.node.default_child, CKV_AWS_116=(
                "Invoked synchronously by the pipeline's state machine: a failure returns to the state machine, "
                "which retries, catches and notifies the topic; a dead-letter queue applies to async calls only."))
        for metric, what in ((self.function.metric_errors, "errors"), (self.function.metric_throttles, "throttles")):
            alarm_above(self, f"{what.title()}Alarm", description=f"Lambda {name} reports {what}",
                        metric=metric(period=Duration.minutes(5), statistic=cloudwatch.Stats.SUM), threshold=0,
                        topic=alarm_topic)
