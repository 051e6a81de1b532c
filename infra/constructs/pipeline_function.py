"""A Python Lambda of the pipeline: repo code and Powertools bundled locally, its own log group, X-Ray
tracing, alarms on errors and throttles to the workspace topic, and the metrics its handler emits.

Powertools is configured by the environment set here and nowhere else (lambdas/observability.py holds no
namespace, service or workspace): the service is the function's name, and every metric carries the
workspace as a default dimension, so that the workspaces of one account do not mix in one namespace.
`metric()` reads a metric back with exactly those values, for the dashboard and any alarm.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.checkov import skip_checkov
from infra.construct_tree import cfn_resource, default_policy
from infra.constructs.alarms import alarm_above
from infra.constructs.bundling import REPO_ROOT, local_bundle
from infra.constructs.log_group import owned_log_group
from infra.nag import acknowledge, acknowledge_compliance
from infra.runtimes import LAMBDA_RUNTIME, LAMBDA_RUNTIME_DEPRECATION
from lambdas.telemetry import DEFAULT_DIMENSIONS_ENV, SERVICE_DIMENSION, TABLE_DIMENSION, TABLE_METRICS, Metric

BUNDLED_MODULES = ("aws_lambda_powertools", "typing_extensions", "aws_xray_sdk", "wrapt")
"""Powertools is bundled rather than taken from its public layer: the Lambda then runs the version the
tests ran, with no layer ARN per region to keep up to date. Its Tracer imports the X-Ray SDK (and the SDK
wrapt), which the Lambda runtime does not provide; wrapt's compiled extension is the one installed here,
built for the tests' Python on x86_64: the function's runtime and architecture (tests/infra/test_runtimes.py
imports each handler from its asset on the runtime's packages alone)."""
METRICS_NAMESPACE = "DataPlatform"
"""One namespace for the pipeline's metrics of every workspace; the `workspace` dimension tells them apart."""
WORKSPACE_DIMENSION = "workspace"
METRICS_PERIOD = Duration.minutes(5)
ENI_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)
"""What Lambda does with a function's role to place it in a VPC (AWS's AWSLambdaVPCAccessExecutionRole, listed
here rather than attached: a managed policy would also grant writing to every log group)."""
NOT_IN_A_VPC = (
    "It calls AWS APIs only (S3, Step Functions, SNS), over TLS with its role's credentials, and reaches "
    "no resource inside a VPC; in one it would need a NAT gateway or five interface endpoints per "
    "workspace."
)


@dataclass(frozen=True)
class Network:
    """Subnets and security groups of an existing VPC (from config: no look-ups at synth)."""

    subnet_ids: Sequence[str]
    security_group_ids: Sequence[str]


class PipelineFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        workspace: str,
        description: str,
        environment: Mapping[str, str],
        alarm_topic: sns.ITopic,
        log_retention_days: int,
        timeout: Duration | None = None,
        memory_mib: int = 256,
        dead_letter_queue: sqs.IQueue | None = None,
        log_key: kms.IKey | None = None,
        failures_return_to: str | None = None,
        modules: Sequence[str] = (),
        trees: Sequence[tuple[str, str]] = (),
        network: Network | None = None,
        outside_a_vpc: str = NOT_IN_A_VPC,
    ) -> None:
        """`name` is the handler's package under lambdas/ and the service of its metrics; `workspace` the
        default dimension of every metric it emits. `timeout` defaults to one minute. Without
        `dead_letter_queue` (the default) the function must only be invoked synchronously (by the state
        machine), where failures return to the caller, which retries, catches and alarms; `failures_return_to`
        says where else they go (an SQS event source: its queue, whose redrive policy ends in a dead-letter
        queue). `modules` and `trees` are installed packages and repository folders the handler needs beside
        Powertools, lambdas/ and pipeline/; `network` places it in a VPC, else `outside_a_vpc` says why not."""
        super().__init__(scope, construct_id)
        self.name = name
        self.metric_dimensions = {WORKSPACE_DIMENSION: workspace, SERVICE_DIMENSION: name}
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{description} (Lambda {name})",
        )
        self.log_group = owned_log_group(self, "Logs", log_retention_days, log_key)
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=LAMBDA_RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler=f"lambdas.{name}.handler.handler",
            code=lambda_.Code.from_asset(
                str(REPO_ROOT / "lambdas"),
                **local_bundle(
                    [("lambdas", "lambdas"), ("pipeline", "pipeline"), *trees], (*BUNDLED_MODULES, *modules)
                ),
            ),
            description=description,
            role=self.role,
            log_group=self.log_group,
            timeout=timeout or Duration.minutes(1),
            memory_size=memory_mib,
            environment={**powertools_environment(name, workspace), **environment},
            tracing=lambda_.Tracing.ACTIVE,
            dead_letter_queue=dead_letter_queue,
            retry_attempts=2 if dead_letter_queue else None,
        )
        if network:
            self._place_in(network)
        acknowledge(
            default_policy(self.role),
            "IAM5",
            finding="Resource::*",
            reason="Active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords, which CDK grants "
            "for Tracing.ACTIVE, accept no resource narrower than '*'"
            + (
                "; nor do the network interfaces Lambda creates for a function in a VPC (ec2:CreateNetworkInterface "
                "and the rest of AWSLambdaVPCAccessExecutionRole)."
                if network
                else "."
            ),
        )
        acknowledge(
            cfn_resource(self.function),
            "L1",
            reason=(
                f"Pinned to {LAMBDA_RUNTIME.name}, the Python the tests run (infra/runtimes.py), not the newest "
                f"runtime; Lambda deprecates it on {LAMBDA_RUNTIME_DEPRECATION}: upgrade tests and pin together."
            ),
        )
        self._acknowledge(
            synchronous=dead_letter_queue is None,
            failures_return_to=failures_return_to,
            outside_a_vpc=None if network else outside_a_vpc,
        )
        for metric, what in ((self.function.metric_errors, "errors"), (self.function.metric_throttles, "throttles")):
            alarm_above(
                self,
                f"{what.title()}Alarm",
                description=f"Lambda {name} reports {what}",
                metric=metric(period=Duration.minutes(5), statistic=cloudwatch.Stats.SUM),
                threshold=0,
                topic=alarm_topic,
            )

    def _place_in(self, network: Network) -> None:
        """The function's network interfaces in `network`'s subnets, with its security groups. Set on the
        resource: CDK's `vpc` wants the VPC itself (a look-up, or every attribute of it in config), and Lambda
        needs only these IDs; the role may manage the interfaces before the function is created (the function
        depends on its policy)."""
        cfn_resource(self.function).add_property_override(
            "VpcConfig",
            {"SubnetIds": list(network.subnet_ids), "SecurityGroupIds": list(network.security_group_ids)},
        )
        self.role.add_to_principal_policy(iam.PolicyStatement(actions=list(ENI_ACTIONS), resources=["*"]))
        skip_checkov(
            default_policy(self.role),
            CKV_AWS_111="The network interfaces Lambda creates for a function in a VPC (ec2:CreateNetworkInterface "
            "and the rest of AWSLambdaVPCAccessExecutionRole) accept no resource narrower than '*'.",
        )

    def _acknowledge(self, *, synchronous: bool, failures_return_to: str | None, outside_a_vpc: str | None) -> None:
        function = cfn_resource(self.function)
        if synchronous:
            reason = failures_return_to or (
                "Invoked synchronously by the pipeline's state machine: a failure returns to the state "
                "machine, which retries, catches and notifies the topic; a dead-letter queue applies to "
                "asynchronous calls only."
            )
            skip_checkov(function, CKV_AWS_116=reason)
            acknowledge_compliance(function, "LambdaDLQ", reason)
        if outside_a_vpc:
            acknowledge_compliance(function, "LambdaInsideVPC", reason=outside_a_vpc)
        acknowledge_compliance(
            function,
            "LambdaConcurrency",
            reason=(
                "Its callers bound it: the schedule (ingest), the state machine's executions (validate, gate), "
                "the queue's event source, at most two pollers (dispatch). "
                "Reserving concurrency fails in an account whose quota leaves less than 100 unreserved."
            ),
        )

    def metric(
        self,
        metric: Metric,
        *,
        statistic: str = cloudwatch.Stats.SUM,
        label: str | None = None,
        table: str | None = None,
    ) -> cloudwatch.Metric:
        """A metric the handler emits, with the namespace and dimensions its environment gives it, and the
        table's for a per-table metric (a sum over five minutes unless `statistic` says otherwise)."""
        if (table is None) is (metric in TABLE_METRICS):
            raise ValueError(f"{metric.value} is {'' if table is None else 'not '}a per-table metric: table={table!r}")
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=metric.value,
            dimensions_map=self.metric_dimensions | ({TABLE_DIMENSION: table} if table else {}),
            statistic=statistic,
            period=METRICS_PERIOD,
            label=label,
        )


def powertools_environment(name: str, workspace: str) -> dict[str, str]:
    """How lambdas/observability.py configures Powertools: service, namespace, default dimensions. The
    tracer leaves responses out of the trace: the logs hold them, and an ingest result listing 500 keys
    would come near X-Ray's 64 kB segment limit."""
    return {
        "POWERTOOLS_SERVICE_NAME": name,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        DEFAULT_DIMENSIONS_ENV: json.dumps({WORKSPACE_DIMENSION: workspace}),
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
    }
