"""The model-service stack: on Fargate (int, prd, and a feature branch configured so), sizes and health,
rollback, autoscaling, the network per stage, security groups, who reaches the endpoint (internal, public
behind WAF and JWT); in serverless mode (feature stages), the same image on Lambda behind an IAM-authenticated
function URL with nothing always on; in both, the model's grants and alarms to the topic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.naming import Component
from infra.workspace import Stage
from tests.infra.conftest import service_environment

FARGATE = ("int", "prd", "feature-public")
"""The workspaces whose service runs on Fargate: int and prd, and a feature branch configured with mode: fargate
(tests/infra/conftest.py PUBLIC_SERVICE_REF, whose endpoint is public)."""


@pytest.fixture(params=FARGATE)
def fargate(request, workspaces, public_service, config):
    """(its config, the workspace) of a service on Fargate."""
    if request.param == "feature-public":
        return public_service
    return config, workspaces[Stage(request.param)]


@pytest.fixture
def fargate_all(workspaces, public_service, config):
    return [(config, workspaces[Stage.INT]), (config, workspaces[Stage.PRD]), public_service]


def resources(workspace, kind: str) -> dict[str, dict]:
    template = workspace.templates[Component.MODEL_SERVICE]
    return {lid: r["Properties"] for lid, r in template.find_resources(kind).items()}


def test_task_and_service_follow_config(fargate) -> None:
    config, workspace = fargate
    svc = config.stage(workspace.target.stage).service
    (task,) = resources(workspace, "AWS::ECS::TaskDefinition").values()
    assert task["Cpu"] == str(svc.cpu) and task["Memory"] == str(svc.memory_mib)
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    (container,) = task["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert (env["MODEL_SERVICE_MODEL_NAME"], env["MODEL_SERVICE_MODEL_ALIAS"]) == ("diabetes-progression", "champion")
    assert env["MODEL_SERVICE_CONTRACT"] == "diabetes/patients", "the table whose contract names the model"
    assert env["MODEL_SERVICE_REFRESH_SECONDS"] == str(svc.model_refresh_seconds) == "60"
    assert env["MODEL_SERVICE_MAX_BATCH_SIZE"] == str(svc.max_batch_size)
    assert env["MODEL_SERVICE_MAX_BODY_BYTES"] == str(svc.max_body_bytes)
    tracking = env["MLFLOW_TRACKING_URI"]
    ml = config.stage(workspace.target.stage).ml
    assert (
        tracking == ml.shared_mlflow_arn
        if ml.mlflow == "shared"
        else (tracking["Fn::GetStackOutput"]["StackName"] == workspace.stacks[Component.ML].stack_name)
    )
    assert "dkr.ecr" in json.dumps(container["Image"]), "the image is a CDK Docker image asset on ECR"
    assert container["PortMappings"] == [{"ContainerPort": 8080, "Protocol": "tcp"}]
    assert container["LogConfiguration"]["Options"]["awslogs-group"]["Ref"].startswith("ServiceLogs")
    (service,) = resources(workspace, "AWS::ECS::Service").values()
    assert service["DesiredCount"] == svc.desired_count and service["LaunchType"] == "FARGATE"
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}


def test_health_check_is_on_health(fargate) -> None:
    _, workspace = fargate
    (group,) = resources(workspace, "AWS::ElasticLoadBalancingV2::TargetGroup").values()
    assert group["HealthCheckPath"] == "/health" and group["Matcher"] == {"HttpCode": "200"}


def test_autoscaling_on_cpu_and_request_count(fargate) -> None:
    config, workspace = fargate
    svc = config.stage(workspace.target.stage).service
    (target,) = resources(workspace, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert (target["MinCapacity"], target["MaxCapacity"]) == (svc.min_capacity, svc.max_capacity)
    policies = resources(workspace, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    metrics = sorted(
        p["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]["PredefinedMetricType"]
        for p in policies
    )
    assert metrics == ["ALBRequestCountPerTarget", "ECSServiceAverageCPUUtilization"]


def test_tasks_get_a_public_address_only_without_nat_and_prd_runs_them_privately(fargate_all) -> None:
    for config, workspace in fargate_all:
        nat = resources(workspace, "AWS::EC2::NatGateway")
        (service,) = resources(workspace, "AWS::ECS::Service").values()
        public_ip = service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"]
        assert len(nat) == config.stage(workspace.target.stage).service.nat_gateways
        assert public_ip == ("DISABLED" if nat else "ENABLED")
    assert not resources(fargate_all[2][1], "AWS::EC2::NatGateway"), "a feature branch on Fargate: no NAT"
    assert resources(fargate_all[1][1], "AWS::EC2::NatGateway")


def test_only_the_load_balancer_reaches_the_tasks(fargate) -> None:
    _, workspace = fargate
    groups = resources(workspace, "AWS::EC2::SecurityGroup")
    ingress = resources(workspace, "AWS::EC2::SecurityGroupIngress")
    task_group = next(k for k in groups if k.startswith("ServiceSecurityGroup"))
    rules = [r for r in ingress.values() if r["GroupId"]["Fn::GetAtt"][0] == task_group]
    assert rules and all(
        r["SourceSecurityGroupId"]["Fn::GetAtt"][0].startswith("ServiceLBSecurityGroup") for r in rules
    )
    assert not [r for r in groups[task_group].get("SecurityGroupIngress", []) if r.get("CidrIp")]


def test_the_task_environment_is_what_the_service_reads(fargate) -> None:
    """Every variable the task sets is a setting the service knows (a typo would be refused at start)."""
    _, workspace = fargate
    from model_service.settings import settings_from_env

    (task,) = resources(workspace, "AWS::ECS::TaskDefinition").values()
    env = {e["Name"]: e["Value"] for e in task["ContainerDefinitions"][0]["Environment"]}
    settings = settings_from_env({k: v if isinstance(v, str) else "arn:aws:sagemaker:x" for k, v in env.items()})
    assert settings.source == "models:/diabetes-progression@champion" and settings.refresh_seconds == 60
    assert settings.max_body_bytes == 1 << 20, "the body limit set in config reaches the service"


def _service_role(workspace) -> str:
    """The role the service runs as: the Fargate task's, or the Lambda function's (serverless)."""
    (role,) = [
        k for k in resources(workspace, "AWS::IAM::Role") if k.startswith(("ServiceTaskDefTaskRole", "ServiceRole"))
    ]
    return role


def test_the_service_role_reads_mlflow_and_cannot_change_it(workspace) -> None:
    from infra.stacks.model_service import MLFLOW_READ_ACTIONS

    role = _service_role(workspace)
    actions = set()
    policies = {**resources(workspace, "AWS::IAM::Policy"), **resources(workspace, "AWS::IAM::ManagedPolicy")}
    for policy in policies.values():  # inline in feature stages, managed in int and prd
        if {"Ref": role} in policy.get("Roles", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                found = statement["Action"]
                actions.update([found] if isinstance(found, str) else found)
    mlflow = {a for a in actions if a.startswith("sagemaker-mlflow:")}
    assert (
        mlflow
        == {
            "sagemaker-mlflow:GetModelVersionByAlias",
            "sagemaker-mlflow:GetRegisteredModel",
            "sagemaker-mlflow:GetDownloadURIForModelVersionArtifacts",
        }
        == set(MLFLOW_READ_ACTIONS)
    )
    logs = {"logs:CreateLogStream", "logs:PutLogEvents"}  # the Lambda's own log group (serverless)
    assert actions - mlflow - logs == {"sagemaker:CallMlflowAppApi"}, "no write, no wildcard"


def test_a_model_that_fails_to_load_reaches_the_topic(workspace) -> None:
    from model_service.events import MODEL_LOAD_FAILED, metric_filter_pattern

    (metric_filter,) = [
        f for f in resources(workspace, "AWS::Logs::MetricFilter").values() if "load_failed" in f["FilterPattern"]
    ]
    # the pattern the service's own failure lines match (tests/model_service/test_image.py runs that)
    assert metric_filter["FilterPattern"] == metric_filter_pattern(MODEL_LOAD_FAILED)
    assert metric_filter["LogGroupName"]["Ref"].startswith("ServiceLogs")
    (transformation,) = metric_filter["MetricTransformations"]
    alarm = next(
        a
        for a in resources(workspace, "AWS::CloudWatch::Alarm").values()
        if a["MetricName"] == transformation["MetricName"]
    )
    assert alarm["Namespace"] == transformation["MetricNamespace"] and alarm["Threshold"] == 0
    topic_stack = workspace.stacks[Component.MONITORING].stack_name
    assert alarm["AlarmActions"][0]["Fn::GetStackOutput"]["StackName"] == topic_stack


def test_alarms_on_5xx_unhealthy_targets_latency_and_cpu(fargate) -> None:
    _, workspace = fargate
    alarms = resources(workspace, "AWS::CloudWatch::Alarm")
    metrics = {
        (a["Namespace"], a["MetricName"], a.get("ExtendedStatistic") or a.get("Statistic"))
        for a in alarms.values()
        if a["MetricName"]
        not in ("ModelLoadFailures", "FeatureDrift", "PredictionDrift")  # the log-based alarms: their own tests
    }
    assert metrics == {
        ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "Sum"),
        ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "Sum"),
        ("AWS/ApplicationELB", "UnHealthyHostCount", "Maximum"),
        ("AWS/ApplicationELB", "TargetResponseTime", "p99"),
        ("AWS/ECS", "CPUUtilization", "Average"),
    }
    topic_stack = workspace.stacks[Component.MONITORING].stack_name
    for alarm in alarms.values():
        assert alarm["AlarmActions"][0]["Fn::GetStackOutput"]["StackName"] == topic_stack


def test_logs_are_owned_and_kept_as_configured(fargate) -> None:
    config, workspace = fargate
    days = config.stage(workspace.target.stage).monitoring.log_retention_days
    groups = resources(workspace, "AWS::Logs::LogGroup")
    assert len(groups) == 2 and all(g["RetentionInDays"] == days for g in groups.values())
    (load_balancer,) = resources(workspace, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    attributes = {a["Key"]: a["Value"] for a in load_balancer["LoadBalancerAttributes"]}
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"


def _balancer(workspace) -> tuple[dict, list[dict]]:
    """(the load balancer's properties, its security group's ingress rules)."""
    (balancer,) = resources(workspace, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    groups = resources(workspace, "AWS::EC2::SecurityGroup")
    (group,) = [g for lid, g in groups.items() if lid.startswith("ServiceLBSecurityGroup")]
    return balancer, group.get("SecurityGroupIngress", [])


def _public_subnets(workspace) -> set[str]:
    """Subnets with a route to the internet gateway (CDK tags them by type)."""
    return {
        lid
        for lid, s in resources(workspace, "AWS::EC2::Subnet").items()
        if {"Key": "aws-cdk:subnet-type", "Value": "Public"} in s["Tags"]
    }


def test_int_and_prd_serve_https_only_from_private_subnets_and_keep_their_load_balancer(fargate_all) -> None:
    """HIPAA Security and NIST 800-53 in int and prd: HTTPS with the stage's certificate (HTTP only redirects),
    deletion protection, no public address for anything but the NAT gateway. A feature stage's may be deleted."""
    for config, workspace in fargate_all:
        stage = workspace.target.stage
        balancer, _ = _balancer(workspace)
        attributes = {a["Key"]: a["Value"] for a in balancer["LoadBalancerAttributes"]}
        listeners = {
            (props["Protocol"], props["Port"]): props
            for props in resources(workspace, "AWS::ElasticLoadBalancingV2::Listener").values()
        }
        public = _public_subnets(workspace)
        subnets = resources(workspace, "AWS::EC2::Subnet")
        if not stage.is_persistent:
            assert attributes["deletion_protection.enabled"] == "false"
            continue
        assert attributes["deletion_protection.enabled"] == "true", stage
        assert set(listeners) == {("HTTPS", 443), ("HTTP", 80)}, stage
        https = listeners[("HTTPS", 443)]
        assert https["Certificates"] == [{"CertificateArn": config.stage(stage).service.certificate_arn}]
        (redirect,) = listeners[("HTTP", 80)]["DefaultActions"]
        assert redirect["Type"] == "redirect" and redirect["RedirectConfig"]["Protocol"] == "HTTPS"
        assert public and not any(subnets[lid].get("MapPublicIpOnLaunch") for lid in public), stage
        (service,) = resources(workspace, "AWS::ECS::Service").values()
        task_subnets = {s["Ref"] for s in service["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"]}
        assert task_subnets and not task_subnets & public, "tasks never in the NAT gateway's subnets"
        groups = [
            g
            for s in (service, balancer)
            for g in (
                s.get("NetworkConfiguration", {}).get("AwsvpcConfiguration", {}).get("SecurityGroups")
                or s.get("SecurityGroups", [])
            )
        ]
        assert groups and all("Fn::GetAtt" in g for g in groups), "own security groups: the default one unused"


def _outputs(workspace) -> dict[str, object]:
    outputs = workspace.templates[Component.MODEL_SERVICE].to_json()["Outputs"]
    return {key: value["Value"] for key, value in outputs.items()}


def test_int_and_prd_serve_from_an_internal_load_balancer_that_admits_the_vpc_only(workspaces, config) -> None:
    for stage in (Stage.INT, Stage.PRD):
        workspace = workspaces[stage]
        assert config.stage(stage).service.endpoint == "internal"
        balancer, ingress = _balancer(workspace)
        assert balancer["Scheme"] == "internal"
        cidr = config.stage(stage).service.vpc_cidr
        assert {r["CidrIp"] for r in ingress} == {cidr}, "the VPC's range, nothing wider"
        (vpc,) = resources(workspace, "AWS::EC2::VPC").values()
        assert vpc["CidrBlock"] == cidr
        assert not {s["Ref"] for s in balancer["Subnets"]} & _public_subnets(workspace), "in subnets with no route in"
        assert not resources(workspace, "AWS::WAFv2::WebACL"), "no WAF needed where no one outside can call"
        assert _outputs(workspace)["ServiceEndpoint"] == "internal"
        assert "ServiceTargetGroup" in _outputs(workspace), "the smoke check reads its health"


def test_a_feature_stage_serves_from_lambda_with_nothing_always_on(workspaces, config) -> None:
    """Serverless (the feature stages' config): the image on Lambda behind a function URL that takes IAM-signed
    requests only; no VPC, load balancer, task, NAT gateway or public address."""
    from infra.constructs.serverless_service import LAMBDA_ENTRYPOINT, LAMBDA_HANDLER
    from infra.naming import resource_name

    feature = workspaces[Stage.FEATURE]
    svc = config.stage(Stage.FEATURE).service
    assert (svc.mode, svc.endpoint) == ("serverless", "iam")
    kinds = {r["Type"] for r in feature.templates[Component.MODEL_SERVICE].to_json()["Resources"].values()}
    always_on = {k for k in kinds if k.startswith(("AWS::EC2::", "AWS::ECS::", "AWS::ElasticLoadBalancingV2::"))}
    assert not always_on, always_on
    (function_id, function), *others = [
        (lid, f) for lid, f in resources(feature, "AWS::Lambda::Function").items() if f.get("PackageType") == "Image"
    ]
    assert not others
    assert function["FunctionName"] == resource_name(config.project, feature.target.workspace, "service")
    assert function["ImageConfig"] == {"Command": [LAMBDA_HANDLER], "EntryPoint": list(LAMBDA_ENTRYPOINT)}
    assert (function["MemorySize"], function["Timeout"]) == (svc.lambda_memory_mib, 60)
    assert function["LoggingConfig"]["LogGroup"]["Ref"].startswith("ServiceLogs")
    (url,) = resources(feature, "AWS::Lambda::Url").values()
    assert url["AuthType"] == "AWS_IAM" and url["TargetFunctionArn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert not resources(feature, "AWS::Lambda::Permission"), "no resource policy: IAM principals of the account"
    outputs = _outputs(feature)
    assert outputs["ServiceUrl"] == {"Fn::GetAtt": [next(iter(resources(feature, "AWS::Lambda::Url"))), "FunctionUrl"]}
    assert outputs["ServiceEndpoint"] == "iam" and "ServiceTargetGroup" not in outputs


def test_both_modes_run_one_image_with_one_environment(workspaces) -> None:
    """The Lambda runs the image the Fargate tasks run (one asset), with the settings they get; what differs
    is the MLflow reference (each stage's own) and HOME (Lambda writes only under /tmp)."""
    from model_service.settings import settings_from_env

    (function,) = [
        f for f in resources(workspaces[Stage.FEATURE], "AWS::Lambda::Function").values() if "ImageConfig" in f
    ]
    (task,) = resources(workspaces[Stage.INT], "AWS::ECS::TaskDefinition").values()
    (container,) = task["ContainerDefinitions"]
    image = json.dumps(container["Image"])
    assert json.dumps(function["Code"]["ImageUri"]).split(":")[-1] == image.split(":")[-1], "the same image asset"
    lambda_env = function["Environment"]["Variables"]
    task_env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert lambda_env.pop("HOME") == "/tmp"
    assert lambda_env.keys() == task_env.keys()
    assert {k: v for k, v in lambda_env.items() if isinstance(v, str)} == {
        k: v for k, v in task_env.items() if isinstance(v, str)
    }
    settings = settings_from_env({k: v if isinstance(v, str) else "arn:aws:sagemaker:x" for k, v in lambda_env.items()})
    assert settings.source == "models:/diabetes-progression@champion"


def test_a_serverless_service_alarms_on_5xx_errors_throttles_and_latency(workspaces) -> None:
    from infra.stacks.model_service import SERVERLESS_LATENCY_ALARM_SECONDS

    feature = workspaces[Stage.FEATURE]
    alarms = resources(feature, "AWS::CloudWatch::Alarm")
    metrics = {
        (a["Namespace"], a["MetricName"], a.get("ExtendedStatistic") or a.get("Statistic"), a["Threshold"])
        for a in alarms.values()
        if a["MetricName"]
        not in ("ModelLoadFailures", "FeatureDrift", "PredictionDrift")  # the log-based alarms: their own tests
    }
    assert metrics == {
        ("AWS/Lambda", "Url5xxCount", "Sum", 5),
        ("AWS/Lambda", "Errors", "Sum", 0),
        ("AWS/Lambda", "Throttles", "Sum", 0),
        ("AWS/Lambda", "UrlRequestLatency", "p99", SERVERLESS_LATENCY_ALARM_SECONDS * 1000),
    }
    (function_id,) = [lid for lid, f in resources(feature, "AWS::Lambda::Function").items() if "ImageConfig" in f]
    topic_stack = feature.stacks[Component.MONITORING].stack_name
    for alarm in alarms.values():
        assert alarm["AlarmActions"][0]["Fn::GetStackOutput"]["StackName"] == topic_stack
        if alarm["Namespace"] == "AWS/Lambda":
            assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function_id}}]


def test_the_lambda_handler_is_the_module_the_image_holds() -> None:
    import importlib.util

    from infra.constructs.serverless_service import LAMBDA_HANDLER

    module, attribute = LAMBDA_HANDLER.rsplit(".", 1)
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None and attribute == "handler"
    source = Path(spec.origin).read_text()  # importing it would build the service from this process's environment
    assert "\nhandler = build()" in source


def test_a_public_service_is_https_only_behind_waf_and_a_jwt(public_service) -> None:
    public_config, workspace = public_service
    svc = public_config.stage(Stage.FEATURE).service
    balancer, ingress = _balancer(workspace)
    assert balancer["Scheme"] == "internet-facing"
    assert {(r["CidrIp"], r["FromPort"]) for r in ingress} == {("0.0.0.0/0", 443), ("0.0.0.0/0", 80)}
    by_port = {
        listener["Port"]: listener
        for listener in resources(workspace, "AWS::ElasticLoadBalancingV2::Listener").values()
    }
    assert set(by_port) == {80, 443}
    assert by_port[80]["DefaultActions"] == [
        {"RedirectConfig": {"Port": "443", "Protocol": "HTTPS", "StatusCode": "HTTP_301"}, "Type": "redirect"}
    ]
    https = by_port[443]
    assert https["Protocol"] == "HTTPS" and https["Certificates"] == [{"CertificateArn": svc.certificate_arn}]
    assert https["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    jwt, forward = sorted(https["DefaultActions"], key=lambda a: a["Order"])
    assert jwt == {
        "Type": "jwt-validation",
        "Order": 1,
        "JwtValidationConfig": {
            "Issuer": svc.jwt_issuer,
            "JwksEndpoint": svc.jwt_jwks_endpoint,
            "AdditionalClaims": [
                {"Name": "aud", "Format": "single-string", "Values": ["api://model-service"]},
                {"Name": "scope", "Format": "space-separated-values", "Values": ["model-service/predict"]},
            ],
        },
    }, "every request carries a valid JWT of the issuer, made for this service"
    assert forward["Type"] == "forward"
    (rule,) = resources(workspace, "AWS::ElasticLoadBalancingV2::ListenerRule").values()
    assert rule["Conditions"] == [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/health"]}}]
    assert [a["Type"] for a in rule["Actions"]] == ["forward"], "only /health is served without a token"

    (acl,) = resources(workspace, "AWS::WAFv2::WebACL").values()
    assert acl["Scope"] == "REGIONAL" and acl["DefaultAction"] == {"Allow": {}}
    rules = {r["Name"]: r for r in acl["Rules"]}
    rate = rules["RatePerClient"]
    assert rate["Action"] == {"Block": {}}
    assert rate["Statement"]["RateBasedStatement"] == {"Limit": svc.waf_rate_limit, "AggregateKeyType": "IP"}
    groups = {name: r["Statement"]["ManagedRuleGroupStatement"] for name, r in rules.items() if name != "RatePerClient"}
    assert set(groups) == {
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
    }
    assert all(r["OverrideAction"] == {"None": {}} for name, r in rules.items() if name in groups), "they block"
    assert groups["AWSManagedRulesCommonRuleSet"]["RuleActionOverrides"] == [
        {"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}},  # a full batch is over its 8 KB
        {"Name": "NoUserAgent_HEADER", "ActionToUse": {"Count": {}}},
    ], "what a machine client sends passes"
    (association,) = resources(workspace, "AWS::WAFv2::WebACLAssociation").values()
    assert association["ResourceArn"]["Ref"].startswith("ServiceLB")
    assert association["WebACLArn"]["Fn::GetAtt"][0].startswith("ServiceWebAcl")
    assert _outputs(workspace)["ServiceUrl"] == f"https://{svc.domain_name}", "the name its certificate covers"
    assert _outputs(workspace)["ServiceEndpoint"] == "public"


def test_container_insights_follow_the_stage_config(fargate_all) -> None:
    """Off in feature stages (per-task metrics bill while a task runs), on in int and prd."""
    for config, workspace in fargate_all:
        (cluster,) = resources(workspace, "AWS::ECS::Cluster").values()
        settings = {s["Name"]: s["Value"] for s in cluster.get("ClusterSettings", [])}
        wanted = "enabled" if config.stage(workspace.target.stage).service.container_insights else "disabled"
        assert settings.get("containerInsights") == wanted, workspace.target.stage
    assert [c.stage(w.target.stage).service.container_insights for c, w in fargate_all] == [True, True, False]


def test_the_services_drift_reports_alarm_beyond_configs_distance(workspace, config) -> None:
    """The lines the service logs for each window (model_service/api.py DriftMonitor; tests/model_service/test_api.py
    runs it) become two metrics, each alarmed above config service.drift_max_distance, to the workspace topic."""
    from model_service.events import (
        FEATURE_DRIFT_FIELD,
        PREDICTION_DRIFT,
        PREDICTION_DRIFT_FIELD,
        metric_filter_pattern,
    )

    service = config.stage(workspace.target.stage).service
    filters = {
        f["MetricTransformations"][0]["MetricName"]: f
        for f in resources(workspace, "AWS::Logs::MetricFilter").values()
        if f["FilterPattern"] == metric_filter_pattern(PREDICTION_DRIFT)
    }
    assert set(filters) == {"FeatureDrift", "PredictionDrift"}
    for name, field in (("FeatureDrift", FEATURE_DRIFT_FIELD), ("PredictionDrift", PREDICTION_DRIFT_FIELD)):
        (transformation,) = filters[name]["MetricTransformations"]
        assert transformation["MetricValue"] == f"$.{field}" and "DefaultValue" not in transformation
        assert filters[name]["LogGroupName"]["Ref"].startswith("ServiceLogs")
        (alarm,) = [a for a in resources(workspace, "AWS::CloudWatch::Alarm").values() if a["MetricName"] == name]
        assert alarm["Namespace"] == transformation["MetricNamespace"] and alarm["Statistic"] == "Maximum"
        assert alarm["Threshold"] == service.drift_max_distance and alarm["Period"] == 3600
        assert alarm["TreatMissingData"] == "ignore", "an hour with no full window keeps the last state"
        topic_stack = workspace.stacks[Component.MONITORING].stack_name
        assert alarm["AlarmActions"][0]["Fn::GetStackOutput"]["StackName"] == topic_stack
    assert service_environment(workspace.templates[Component.MODEL_SERVICE])["MODEL_SERVICE_DRIFT_WINDOW"] == str(
        service.drift_window_records
    )
