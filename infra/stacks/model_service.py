"""The model service: the `model_service` image on ECS Fargate behind an application load balancer, or, in
serverless mode (config `service.mode: serverless`, the feature stages' default), the same image on Lambda behind
a function URL that takes IAM-signed requests, with nothing running between them.

It follows the registry's champion alias in the workspace's MLflow, or, in a stage without MLflow (config
`components.mlflow: false`), serves the fixed model of `service.model_uri`, which its tasks may read and nothing
else of that bucket.

Feature stages stay cheap: no NAT gateway (public subnets, the task gets a public IP to pull its image
and reach MLflow; its security group admits only the load balancer), the smallest task, one of it.
prd (config `service.nat_gateways`) runs its tasks in private subnets behind NAT gateways.

Who reaches it is config (`service.endpoint`, infra/config.py): an internal load balancer in private
subnets that admits the VPC only (int and prd by default); a public one that serves HTTPS only, behind a
WAF web ACL, and validates a JWT on every request but /health; or, in a feature stage only, open.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from aws_cdk import Annotations, CfnOutput, Duration
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.checkov import skip_checkov
from infra.config import JwtClaim
from infra.construct_tree import cfn_resource, default_policy
from infra.constructs.alarms import alarm_above
from infra.constructs.bundling import REPO_ROOT
from infra.constructs.dashboard import DashboardSection, graph
from infra.constructs.data_bucket import Access
from infra.constructs.log_group import owned_log_group
from infra.constructs.s3_prefix import grant_under_prefix
from infra.constructs.serverless_service import IMAGE_PLATFORM, ServerlessService
from infra.nag import acknowledge, acknowledge_compliance
from infra.naming import Component, resource_name
from infra.stack_outputs import SERVICE_ENDPOINT_OUTPUT, SERVICE_TARGET_GROUP_OUTPUT, SERVICE_URL_OUTPUT
from infra.stacks.base import WorkspaceContext, WorkspaceStack
from infra.stacks.ml import MlStack
from infra.stacks.storage import StorageStack
from model_service.events import (
    FEATURE_DRIFT_FIELD,
    MODEL_LOAD_FAILED,
    PREDICTION_DRIFT,
    PREDICTION_DRIFT_FIELD,
    metric_filter_pattern,
)
from pipeline.registry import CHAMPION_ALIAS, trained_model

CONTAINER_PORT = 8080
SERVERLESS_LATENCY_ALARM_SECONDS = 10
"""Serverless: the p99 a request may take before it alarms. With little traffic most requests start a new
environment, whose first request loads the model; a cold start stays well under this (README)."""
MLFLOW_READ_ACTIONS = tuple(
    f"sagemaker-mlflow:{action}"
    for action in (
        "GetModelVersionByAlias",  # the alias check
        "GetRegisteredModel",
        "GetDownloadURIForModelVersionArtifacts",  # loading a version (then S3)
    )
)
"""What the service asks MLflow, read only: it can neither move an alias nor delete a model. The list is
what the service was seen to call (tests/model_service/test_image.py records it through a proxy)."""


class _Listener(TypedDict, total=False):
    """The service pattern's listener parameters that a certificate sets (none: its plain HTTP default)."""

    protocol: elbv2.ApplicationProtocol
    redirect_http: bool
    ssl_policy: elbv2.SslPolicy
    certificate: acm.ICertificate


class ModelServiceStack(WorkspaceStack):
    component = Component.MODEL_SERVICE

    def __init__(
        self,
        scope: Construct,
        ctx: WorkspaceContext,
        *,
        storage: StorageStack,
        ml: MlStack | None,
        alarm_topic: sns.ITopic,
    ) -> None:
        """`ml`: the workspace's MLflow, whose champion the service follows; None in a stage without MLflow,
        where it serves config's `service.model_uri`. Its section of the workspace dashboard is
        `dashboard_section` (infra/platform.py places the dashboard)."""
        super().__init__(scope, ctx)
        svc = ctx.settings.service
        retention = ctx.settings.monitoring.log_retention_days
        self.log_group = owned_log_group(self, "ServiceLogs", retention, storage.data_key)
        model = trained_model()  # the model and its table, as the contract that names the model says
        environment = {
            "MODEL_SERVICE_MODEL_NAME": str(model.model),
            "MODEL_SERVICE_CONTRACT": model.name,
            "MODEL_SERVICE_CONTRACT_VERSION": str(model.contract_version),
            "MODEL_SERVICE_REFRESH_SECONDS": str(svc.model_refresh_seconds),
            "MODEL_SERVICE_MAX_BATCH_SIZE": str(svc.max_batch_size),
            "MODEL_SERVICE_MAX_BODY_BYTES": str(svc.max_body_bytes),
            "MODEL_SERVICE_DRIFT_WINDOW": str(svc.drift_window_records),
            **self._model_source(ml, svc.model_uri),
        }
        if svc.mode == "serverless":
            self._serverless(ctx, environment, ml, alarm_topic)
        else:
            self._fargate(ctx, environment, storage, ml, alarm_topic)
        self._drift(ctx, alarm_topic)
        CfnOutput(self, SERVICE_ENDPOINT_OUTPUT, value=svc.endpoint)

    def _serverless(
        self, ctx: WorkspaceContext, environment: dict[str, str], ml: MlStack | None, alarm_topic: sns.ITopic
    ) -> None:
        """The image on Lambda behind a function URL (infra/constructs/serverless_service.py): no VPC, no load
        balancer, no task; the same environment, model grants, model-load alarm and log group."""
        svc = ctx.settings.service
        self.serverless = ServerlessService(
            self,
            "Service",
            function_name=resource_name(ctx.config.project, ctx.target.workspace, "service"),
            environment=environment,
            memory_mib=svc.lambda_memory_mib,
            log_group=self.log_group,
        )
        self._grant_model(self.serverless.role, ml, svc.model_uri, svc.model_kms_key_arn)
        function = self.serverless.function
        five_minutes = Duration.minutes(5)

        def url_metric(name: str, statistic: str, label: str | None = None) -> cloudwatch.Metric:
            return function.metric(name, period=five_minutes, statistic=statistic, label=label)

        # latency over two periods: with little traffic, one cold start is a period's whole p99
        for construct_id, (description, metric, threshold, periods) in {
            "Url5xx": ("The model service answers 5xx", url_metric("Url5xxCount", "Sum"), 5, 1),
            "FunctionErrors": (
                "The model service's function fails (its start, a timeout)",
                function.metric_errors(period=five_minutes, statistic="Sum"),
                0,
                1,
            ),
            "Throttles": (
                "Requests to the model service are throttled",
                function.metric_throttles(period=five_minutes, statistic="Sum"),
                0,
                1,
            ),
            "LatencyP99": (
                f"p99 latency of the model service is above {SERVERLESS_LATENCY_ALARM_SECONDS} s (a cold start "
                "loads the model in a few)",
                url_metric("UrlRequestLatency", "p99"),
                SERVERLESS_LATENCY_ALARM_SECONDS * 1000,
                2,
            ),
        }.items():
            self._alarm(construct_id, description, metric, threshold, periods, alarm_topic)
        failures = self._model_load_failures(ctx, alarm_topic)
        self.dashboard_section = DashboardSection(
            "Model service (serverless)",
            rows=[
                [
                    graph("Requests", [url_metric("UrlRequestCount", "Sum", "requests")], width=6),
                    graph(
                        "Request latency (ms)",
                        [url_metric("UrlRequestLatency", p, p) for p in ("p50", "p90", "p99")],
                        width=6,
                    ),
                    graph(
                        "4xx and 5xx",
                        [url_metric("Url4xxCount", "Sum", "4xx"), url_metric("Url5xxCount", "Sum", "5xx")],
                        width=6,
                    ),
                    graph(
                        "Health",
                        [
                            function.metric_errors(period=five_minutes, statistic="Sum", label="function errors"),
                            function.metric_throttles(period=five_minutes, statistic="Sum", label="throttles"),
                            failures.with_(label="champion failed to load"),
                        ],
                        width=6,
                    ),
                ]
            ],
        )
        CfnOutput(self, SERVICE_URL_OUTPUT, value=self.serverless.url.url)
        CfnOutput(
            self,
            "ServiceFunction",
            value=function.function_name,
            description="Grant callers lambda:InvokeFunctionUrl and lambda:InvokeFunction on it; they sign "
            "their requests (SigV4, service lambda)",
        )

    def _fargate(
        self,
        ctx: WorkspaceContext,
        environment: dict[str, str],
        storage: StorageStack,
        ml: MlStack | None,
        alarm_topic: sns.ITopic,
    ) -> None:
        """The image's tasks on Fargate behind an application load balancer (module docstring)."""
        svc = ctx.settings.service
        retention = ctx.settings.monitoring.log_retention_days
        private = svc.nat_gateways > 0
        internal = svc.endpoint == "internal"
        # with private tasks, the public subnets hold the NAT gateways (and a public load balancer) alone: nothing
        # placed there gets an address of its own
        subnets = [
            ec2.SubnetConfiguration(
                name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24, map_public_ip_on_launch=not private
            )
        ]
        if private:
            subnets.append(
                ec2.SubnetConfiguration(name="tasks", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22)
            )
        elif internal:  # the internal load balancer's subnets: no route to or from the internet
            subnets.append(
                ec2.SubnetConfiguration(name="balancer", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24)
            )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            availability_zones=list(ctx.settings.availability_zones),
            ip_addresses=ec2.IpAddresses.cidr(svc.vpc_cidr),
            nat_gateways=svc.nat_gateways,
            subnet_configuration=subnets,
            restrict_default_security_group=False,
        )
        self.vpc.add_flow_log(
            "FlowLogs",
            traffic_type=ec2.FlowLogTrafficType.REJECT,
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                owned_log_group(self, "FlowLogGroup", retention, storage.data_key)
            ),
        )
        insights = ecs.ContainerInsights.ENABLED if svc.container_insights else ecs.ContainerInsights.DISABLED
        cluster = ecs.Cluster(self, "Cluster", vpc=self.vpc, container_insights_v2=insights)
        if not svc.container_insights:
            reason = (
                "Container Insights is off by this stage's config (service.container_insights: false): its "
                "per-task metrics bill while a task runs; the service's logs, load-balancer metrics and alarms stay."
            )
            acknowledge(cfn_resource(cluster), "ECS4", reason=reason)
            skip_checkov(cfn_resource(cluster), CKV_AWS_65=reason)
        self.service = ecs_patterns.ApplicationLoadBalancedFargateService(
            self,
            "Service",
            cluster=cluster,
            cpu=svc.cpu,
            memory_limit_mib=svc.memory_mib,
            desired_count=svc.desired_count,
            min_healthy_percent=100,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            public_load_balancer=not internal,
            open_listener=not internal,
            **self._listener(svc.certificate_arn),
            assign_public_ip=not private,
            task_subnets=ec2.SubnetSelection(
                subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS if private else ec2.SubnetType.PUBLIC
            ),
            task_image_options=ecs_patterns.ApplicationLoadBalancedTaskImageOptions(
                # the tasks' platform (Fargate's default, X86_64), whatever machine builds the image
                image=ecs.ContainerImage.from_asset(
                    str(REPO_ROOT), file="model_service/Dockerfile", platform=IMAGE_PLATFORM
                ),
                container_port=CONTAINER_PORT,
                environment=environment,
                log_driver=ecs.LogDrivers.aws_logs(stream_prefix="service", log_group=self.log_group),
            ),
        )
        self.service.target_group.configure_health_check(
            path="/health", healthy_http_codes="200", interval=Duration.seconds(15), timeout=Duration.seconds(5)
        )
        self.service.load_balancer.log_access_logs(storage.access_logs, prefix="model-service-alb")
        self.service.load_balancer.set_attribute("routing.http.drop_invalid_header_fields.enabled", "true")
        if ctx.stage.is_persistent:  # int and prd: a stack update or a console click cannot delete it
            self.service.load_balancer.set_attribute("deletion_protection.enabled", "true")
        if internal:  # the listener (and the redirect to it, with a certificate): the VPC and what config names
            for cidr in (svc.vpc_cidr, *svc.allowed_cidrs):
                for port in (443, 80) if svc.certificate_arn else (80,):
                    self.service.load_balancer.connections.allow_from(
                        ec2.Peer.ipv4(cidr),
                        ec2.Port.tcp(port),
                        "An internal service: its VPC" if cidr == svc.vpc_cidr else "A network config allows",
                    )
        elif svc.endpoint == "public":
            self._authenticate(svc.jwt_issuer or "", svc.jwt_jwks_endpoint or "", svc.jwt_claims)
            self._web_acl(ctx, svc.waf_rate_limit)
        self._grant_model(self.service.task_definition.task_role, ml, svc.model_uri, svc.model_kms_key_arn)

        scaling = self.service.service.auto_scale_task_count(
            min_capacity=svc.min_capacity, max_capacity=svc.max_capacity
        )
        scaling.scale_on_cpu_utilization("CpuScaling", target_utilization_percent=60)
        scaling.scale_on_request_count(
            "RequestScaling", requests_per_target=600, target_group=self.service.target_group
        )
        self._alarms(alarm_topic)
        self.dashboard_section = self._dashboard_section(self._model_load_failures(ctx, alarm_topic))
        self._acknowledge(ctx)
        balancer_dns = self.service.load_balancer.load_balancer_dns_name
        scheme = "https" if svc.certificate_arn else "http"
        CfnOutput(self, SERVICE_URL_OUTPUT, value=f"{scheme}://{svc.domain_name or balancer_dns}")
        CfnOutput(
            self,
            "ServiceLoadBalancer",
            value=balancer_dns,
            description="Point service.domain_name here (a CNAME or alias record; in a private hosted zone when "
            "the endpoint is internal)",
        )
        CfnOutput(self, SERVICE_TARGET_GROUP_OUTPUT, value=self.service.target_group.target_group_arn)

    @staticmethod
    def _model_source(ml: MlStack | None, model_uri: str | None) -> dict[str, str]:
        """The service's variables that say which model it serves: a fixed one when config names it, else the
        registry's champion in the workspace's MLflow."""
        if model_uri is not None:
            return {"MODEL_SERVICE_MODEL_URI": model_uri}
        if ml is None:  # config validation requires MLflow or a model URI for the service
            raise ValueError("the model service needs the workspace's MLflow or service.model_uri")
        return {"MODEL_SERVICE_MODEL_ALIAS": CHAMPION_ALIAS, "MLFLOW_TRACKING_URI": ml.tracking_arn}

    def _grant_model(
        self, task_role: iam.IRole, ml: MlStack | None, model_uri: str | None, model_key: str | None
    ) -> None:
        """Read the model and nothing else: the fixed model's objects (and its bucket's key, through S3 only),
        or MLflow's alias and artifact store."""
        if model_uri is not None:
            grant_under_prefix(
                task_role,
                model_uri,
                ["s3:GetObject"],
                reason="The fixed model of config service.model_uri: its MLmodel file and artifacts, the "
                "objects under the model's directory, read only.",
                list_the_prefix_itself=True,
            )
            if model_key is not None:  # SSE-KMS with a customer-managed key: S3 decrypts for the reader
                task_role.add_to_principal_policy(
                    iam.PolicyStatement(
                        actions=["kms:Decrypt"],
                        resources=[model_key],
                        conditions={"StringEquals": {"kms:ViaService": f"s3.{self.region}.amazonaws.com"}},
                    )
                )
            return
        if ml is None:
            raise ValueError("the model service needs the workspace's MLflow or service.model_uri")
        ml.grant_artifacts(task_role, Access.READ)  # the model files, where MLflow keeps them
        task_role.add_to_principal_policy(
            iam.PolicyStatement(actions=list(MLFLOW_READ_ACTIONS), resources=[ml.tracking_arn])
        )
        task_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["sagemaker:CallMlflowAppApi"], resources=[ml.tracking_arn])
        )

    def _authenticate(self, issuer: str, jwks_endpoint: str, claims: Sequence[JwtClaim]) -> None:
        """Every request carries a JWT of `issuer`, with `claims`, that the load balancer validates (401
        otherwise) before it reaches a task; /health alone is forwarded without one (probes, the smoke check)."""
        forward = elbv2.ListenerAction.forward([self.service.target_group])
        listener = self.service.listener
        listener.add_action(
            "Authenticated",
            action=elbv2.ListenerAction.authenticate_jwt(issuer=issuer, jwks_endpoint=jwks_endpoint, next=forward),
        )
        Annotations.of(listener).acknowledge_warning(
            "@aws-cdk/aws-elbv2:listenerExistingDefaultActionReplaced",
            "On purpose: the pattern's default action forwards every request; this one validates the JWT first.",
        )
        # CDK's action has no parameter for them: the claims go on the first default action, the validation
        cfn_listener = listener.node.default_child
        if not isinstance(cfn_listener, elbv2.CfnListener):
            raise TypeError(f"the service's listener is a {type(cfn_listener).__name__}, not a CfnListener")
        cfn_listener.add_property_override(
            "DefaultActions.0.JwtValidationConfig.AdditionalClaims",
            [{"Name": claim.name, "Format": claim.format, "Values": list(claim.values)} for claim in claims],
        )
        listener.add_action(
            "Health", priority=1, action=forward, conditions=[elbv2.ListenerCondition.path_patterns(["/health"])]
        )

    def _web_acl(self, ctx: WorkspaceContext, rate_limit: int) -> None:
        """AWS's managed rules (common exploits, known bad inputs, addresses with a bad reputation) and a
        rate limit per client address, on the public load balancer. Two rules of the common set only count:
        its 8 KB body limit (a full batch is larger; the service answers 413 above its own limit), and its
        block of requests without a User-Agent (machine clients often send none; the JWT decides)."""
        name = resource_name(ctx.config.project, ctx.target.workspace, "service-acl")

        def visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
            )

        def managed(priority: int, group: str, counted: Sequence[str] = ()) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=group,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS",
                        name=group,
                        rule_action_overrides=[
                            wafv2.CfnWebACL.RuleActionOverrideProperty(
                                name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                            )
                            for rule in counted
                        ]
                        or None,
                    )
                ),
                visibility_config=visibility(group),
            )

        acl = wafv2.CfnWebACL(
            self,
            "ServiceWebAcl",
            name=name,
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility(name),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="RatePerClient",
                    priority=0,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            limit=rate_limit, aggregate_key_type="IP"
                        )
                    ),
                    visibility_config=visibility("RatePerClient"),
                ),
                managed(1, "AWSManagedRulesAmazonIpReputationList"),
                managed(2, "AWSManagedRulesCommonRuleSet", counted=["SizeRestrictions_BODY", "NoUserAgent_HEADER"]),
                managed(3, "AWSManagedRulesKnownBadInputsRuleSet"),
            ],
        )
        wafv2.CfnWebACLAssociation(
            self,
            "ServiceWebAclAssociation",
            web_acl_arn=acl.attr_arn,
            resource_arn=self.service.load_balancer.load_balancer_arn,
        )

    def _listener(self, certificate_arn: str | None) -> _Listener:
        """HTTPS (and a redirect from HTTP) when config names a certificate; plain HTTP otherwise."""
        if certificate_arn is None:
            return {}
        return {
            "protocol": elbv2.ApplicationProtocol.HTTPS,
            "redirect_http": True,
            "ssl_policy": elbv2.SslPolicy.RECOMMENDED_TLS,
            "certificate": acm.Certificate.from_certificate_arn(self, "Certificate", certificate_arn),
        }

    def _alarms(self, topic: sns.ITopic) -> None:
        target_group = self.service.target_group
        five_minutes = Duration.minutes(5)
        alarms = {
            "Target5xx": (
                "The model service answers 5xx",
                self.service.load_balancer.metrics.http_code_target(
                    elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=five_minutes, statistic="Sum"
                ),
                5,
                1,
            ),
            "LoadBalancer5xx": (
                "The load balancer answers 5xx (no healthy target?)",
                self.service.load_balancer.metrics.http_code_elb(
                    elbv2.HttpCodeElb.ELB_5XX_COUNT, period=five_minutes, statistic="Sum"
                ),
                5,
                1,
            ),
            "UnhealthyTargets": (
                "Model service tasks fail their health check",
                target_group.metrics.unhealthy_host_count(period=Duration.minutes(1), statistic="Maximum"),
                0,
                3,
            ),
            "LatencyP99": (
                "p99 latency of the model service is above 1 s",
                target_group.metrics.target_response_time(period=five_minutes, statistic="p99"),
                1,
                2,
            ),
            "Cpu": (
                "The model service's CPU stays above 85%",
                self.service.service.metric_cpu_utilization(period=five_minutes),
                85,
                3,
            ),
        }
        for construct_id, (description, metric, threshold, periods) in alarms.items():
            self._alarm(construct_id, description, metric, threshold, periods, topic)

    def _alarm(
        self,
        construct_id: str,
        description: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        periods: int,
        topic: sns.ITopic,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> None:
        """A service alarm (`<construct_id>Alarm`) to the workspace topic: `metric` above `threshold` for `periods`
        (`missing`: alarms.alarm_above's)."""
        alarm_above(
            self,
            f"{construct_id}Alarm",
            description=description,
            metric=metric,
            threshold=threshold,
            periods=periods,
            topic=topic,
            missing=missing,
        )

    def _log_metric_namespace(self, ctx: WorkspaceContext) -> str:
        """Where the metric filters on the service's log lines put their metrics."""
        return f"{ctx.config.project}/{ctx.target.workspace}/model-service"

    def _model_load_failures(self, ctx: WorkspaceContext, topic: sns.ITopic) -> cloudwatch.Metric:
        """The service keeps the old model when a new champion fails to load; its log line is the only
        trace, so a metric filter counts those lines and an alarm tells the topic. Returns the metric."""
        metric = self.log_group.add_metric_filter(
            "ModelLoadFailures",
            filter_pattern=logs.FilterPattern.literal(metric_filter_pattern(MODEL_LOAD_FAILED)),
            metric_namespace=self._log_metric_namespace(ctx),
            metric_name="ModelLoadFailures",
            metric_value="1",
            default_value=0,
        ).metric(period=Duration.minutes(5), statistic="Sum")
        alarm_above(
            self,
            "ModelLoadFailedAlarm",
            description="The model service could not load the version "
            "the champion alias points to (it keeps serving the previous one; the reason is in its log)",
            metric=metric,
            threshold=0,
            topic=topic,
        )
        return metric

    def _drift(self, ctx: WorkspaceContext, topic: sns.ITopic) -> None:
        """The service logs each window's distances from its model's training profile (model_service/api.py
        DriftMonitor); metric filters turn them into metrics, and an alarm fires on either beyond config
        service.drift_max_distance. Aggregates only: no request's values reach the log."""
        svc, period = ctx.settings.service, Duration.hours(1)
        for construct_id, field, what in (
            ("FeatureDrift", FEATURE_DRIFT_FIELD, "a feature's mean"),
            ("PredictionDrift", PREDICTION_DRIFT_FIELD, "the predictions' mean"),
        ):
            metric = self.log_group.add_metric_filter(
                construct_id,
                filter_pattern=logs.FilterPattern.literal(metric_filter_pattern(PREDICTION_DRIFT)),
                metric_namespace=self._log_metric_namespace(ctx),
                metric_name=construct_id,
                metric_value=f"$.{field}",
            ).metric(period=period, statistic="Maximum")
            self._alarm(
                construct_id,
                f"Over {svc.drift_window_records} served records, {what} moved more than "
                f"{svc.drift_max_distance:g} standard deviations from the model's training data (config "
                "service.drift_max_distance): the inputs changed, or the model no longer fits them",
                metric,
                svc.drift_max_distance,
                1,
                topic,
                missing=cloudwatch.TreatMissingData.IGNORE,  # an hour without a full window says nothing new
            )

    def _dashboard_section(self, model_load_failures: cloudwatch.Metric) -> DashboardSection:
        """The service on the workspace dashboard: requests, target response time (p50, p90), 5xx, health."""
        five_minutes = Duration.minutes(5)
        balancer, targets = self.service.load_balancer.metrics, self.service.target_group.metrics
        return DashboardSection(
            "Model service",
            rows=[
                [
                    graph(
                        "Requests",
                        [balancer.request_count(period=five_minutes, statistic="Sum", label="requests")],
                        width=6,
                    ),
                    graph(
                        "Target response time (s)",
                        [
                            targets.target_response_time(period=five_minutes, statistic=p, label=p)
                            for p in ("p50", "p90")
                        ],
                        width=6,
                    ),
                    graph(
                        "5xx",
                        [
                            balancer.http_code_target(
                                elbv2.HttpCodeTarget.TARGET_5XX_COUNT,
                                period=five_minutes,
                                statistic="Sum",
                                label="from the service",
                            ),
                            balancer.http_code_elb(
                                elbv2.HttpCodeElb.ELB_5XX_COUNT,
                                period=five_minutes,
                                statistic="Sum",
                                label="from the load balancer",
                            ),
                        ],
                        width=6,
                    ),
                    graph(
                        "Health",
                        [
                            targets.unhealthy_host_count(
                                period=Duration.minutes(1), statistic="Maximum", label="unhealthy tasks"
                            ),
                            model_load_failures.with_(label="champion failed to load"),
                        ],
                        width=6,
                    ),
                ]
            ],
        )

    def _acknowledge(self, ctx: WorkspaceContext) -> None:
        svc = ctx.settings.service
        if svc.certificate_arn is None:
            reason = (
                "No certificate in this stage's config (service.certificate_arn): the endpoint is plain HTTP; "
                "set one and the listener becomes HTTPS with TLS 1.2+ and a redirect from HTTP."
            )
            if svc.endpoint == "internal":
                reason = (
                    "An internal load balancer (service.endpoint: internal) that admits the VPC alone; set "
                    "service.certificate_arn for TLS inside the VPC too."
                )
            skip_checkov(cfn_resource(self.service.listener), CKV_AWS_2=reason, CKV_AWS_103=reason)
        if svc.endpoint != "internal":
            lb_group = cfn_resource(self.service.load_balancer.connections.security_groups[0])
            guarded = (
                "behind a WAF web ACL and a JWT validated at the load balancer"
                if svc.endpoint == "public"
                else "open by this feature stage's explicit config (service.endpoint: open)"
            )
            skip_checkov(
                lb_group,
                CKV_AWS_260=f"The service's public endpoint, {guarded}: the "
                "load balancer admits its listener port from anywhere; the tasks admit only the balancer.",
            )
            acknowledge(
                lb_group,
                "EC23",
                reason=f"The service's public endpoint, {guarded}: "
                "the load balancer admits its listener from anywhere; the tasks admit only the load balancer.",
            )
        if ctx.stage.is_persistent:
            self._acknowledge_compliance(svc.endpoint == "internal", private=svc.nat_gateways > 0)
        task_definition = self.service.task_definition
        acknowledge(
            cfn_resource(task_definition),
            "ECS2",
            reason="The environment holds no secret: the "
            "model URI, the MLflow tracking ARN and the batch limit. Credentials come from the task role.",
        )
        if task_definition.execution_role is None:  # the pattern gives the task one, to pull the image
            raise ValueError(f"{task_definition.node.path} has no execution role")
        execution_policy = default_policy(task_definition.execution_role)
        acknowledge(
            execution_policy,
            "IAM5",
            finding="Resource::*",
            reason="ecr:GetAuthorizationToken, which "
            "the task execution role needs to pull the image, accepts no resource narrower than '*'.",
        )

    def _acknowledge_compliance(self, internal: bool, *, private: bool) -> None:
        """What the HIPAA Security and NIST 800-53 packs find in int and prd and is so on purpose."""
        acknowledge_compliance(
            cfn_resource(self.vpc),
            "VPCDefaultSecurityGroupClosed",
            reason=(
                "Nothing uses the VPC's default security group: the load balancer and the tasks have groups of their "
                "own (tests/infra/test_model_service.py); closing it would take a custom-resource Lambda per VPC."
            ),
        )
        if private:
            for subnet in self.vpc.public_subnets:
                acknowledge_compliance(
                    subnet.node.find_child("DefaultRoute"),
                    "VPCNoUnrestrictedRouteToIGW",
                    reason=(
                        "The public subnets hold the NAT gateway that the private tasks reach ECR, MLflow and S3 "
                        "through; they assign no public address, and no task or notebook runs in them."
                    ),
                )
        redirect = self.service.load_balancer.node.try_find_child("PublicRedirectListener")
        if redirect is not None:
            acknowledge_compliance(
                cfn_resource(redirect),
                "ELBv2ACMCertificateRequired",
                reason=(
                    "The HTTP listener only redirects to HTTPS (301): it serves no content, so it has no "
                    "certificate; the HTTPS listener has the stage's ACM certificate."
                ),
            )
        if internal:
            acknowledge(
                cfn_resource(self.service.load_balancer),
                "ALBWAFEnabled",
                pack="NIST.800.53.R5",
                reason=(
                    "An internal load balancer, reachable from the VPC and configured ranges only; the "
                    "WAF web ACL is attached where the endpoint is public (service.endpoint: public)."
                ),
            )
