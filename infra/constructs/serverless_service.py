"""The model service with no compute running at rest (config `service.mode: serverless`): the service's own
image on Lambda, behind a function URL that takes IAM-signed requests only.

The image is the one Fargate runs (model_service/Dockerfile, the same asset); Lambda replaces its entry point
by the runtime interface client and the handler (model_service/lambda_entry.py), which serves the same FastAPI
app through Mangum. A caller needs `lambda:InvokeFunctionUrl` and `lambda:InvokeFunction` on the function
(both, for function URLs created since October 2025) and signs its requests (SigV4, service `lambda`).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.checkov import skip_checkov
from infra.construct_tree import cfn_resource
from infra.constructs.bundling import REPO_ROOT
from infra.nag import acknowledge_compliance

IMAGE_PLATFORM = ecr_assets.Platform.LINUX_AMD64
"""The image's platform in both modes (the function's architecture, the tasks' default), whatever machine builds
it: one asset, one image."""
LAMBDA_ENTRYPOINT = ("python", "-m", "awslambdaric")
LAMBDA_HANDLER = "model_service.lambda_entry.handler"
TIMEOUT = Duration.seconds(60)
"""A request's longest run: the first of a new environment loads the model (MLflow, then S3) before it
answers; a function URL waits for the function's timeout."""
WRITABLE_HOME = "/tmp"  # noqa: S108 (Lambda's only writable directory: libraries that write under ~ write there)


class ServerlessService(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function_name: str,
        environment: Mapping[str, str],
        memory_mib: int,
        log_group: logs.ILogGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="The model service on Lambda (serverless mode)",
        )
        log_group.grant_write(self.role)
        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            function_name=function_name,
            description="The model service: its image, on request (service.mode: serverless)",
            code=lambda_.DockerImageCode.from_image_asset(
                str(REPO_ROOT),
                file="model_service/Dockerfile",
                entrypoint=list(LAMBDA_ENTRYPOINT),
                cmd=[LAMBDA_HANDLER],
                platform=IMAGE_PLATFORM,
            ),
            architecture=lambda_.Architecture.X86_64,
            memory_size=memory_mib,
            timeout=TIMEOUT,
            role=self.role,
            log_group=log_group,
            environment={"HOME": WRITABLE_HOME, **environment},
        )
        self.url = self.function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)
        self._acknowledge()

    def _acknowledge(self) -> None:
        function = cfn_resource(self.function)
        reason = (
            "Invoked synchronously through its function URL: a failure is the caller's HTTP error, and its "
            "errors and 5xx alarm; a dead-letter queue applies to asynchronous calls only."
        )
        skip_checkov(function, CKV_AWS_116=reason)
        acknowledge_compliance(function, "LambdaDLQ", reason)
        acknowledge_compliance(
            function,
            "LambdaInsideVPC",
            reason="It calls MLflow and S3 over TLS with its role's credentials and reaches no resource inside a "
            "VPC; in one it would need a NAT gateway or interface endpoints, the always-on cost this mode avoids.",
        )
        acknowledge_compliance(
            function,
            "LambdaConcurrency",
            reason="Reserving concurrency fails in an account whose quota leaves less than 100 unreserved; the "
            "callers are IAM principals this workspace's owners grant, and throttles alarm.",
        )
