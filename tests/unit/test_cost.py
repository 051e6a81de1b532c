"""The idle-cost calculator (infra/cost.py) against hand-worked figures, with a price table of round numbers
that the test owns; then the shipped table on the shipped stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from infra import cost, cost_cli
from infra.cost import CostError, estimate, load_prices

TEST_PRICES = {
    "alb_hour": 0.02,
    "public_ipv4_hour": 0.005,
    "fargate_vcpu_hour": 0.04,
    "fargate_gb_hour": 0.004,
    "nat_gateway_hour": 0.05,
    "kms_key_month": 1.0,
    "cloudwatch_alarm_month": 0.1,
    "cloudwatch_dashboard_month": 3.0,
    "sagemaker_ml_storage_gb_month": 0.14,
    "mlflow_app_month": 0.0,
    "mlflow_tracking_server_small_hour": 0.6,
    "waf_web_acl_month": 5.0,
    "waf_rule_month": 1.0,
    "container_insights_ecs_classic_metric_month": 0.3,
    "container_insights_ecs_classic_metrics_per_service": 48,
    "cloudwatch_custom_metric_month": 0.3,
    "secretsmanager_secret_month": 0.4,
    "sagemaker_training_ml.m5.large_hour": 0.12,
}


@pytest.fixture
def prices(tmp_path: Path):
    entries = {key: {"price": value, "unit": "test", "source": "the test"} for key, value in TEST_PRICES.items()}
    (tmp_path / "test-1.yaml").write_text(
        yaml.safe_dump({"region": "test-1", "checked": "2026-12-03", "prices": entries})
    )
    return load_prices("test-1", tmp_path)


TEMPLATE = {
    "Resources": {
        "Balancer": {
            "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "Properties": {"Scheme": "internet-facing", "Subnets": [{"Ref": "A"}, {"Ref": "B"}]},
        },
        "Internal": {
            "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "Properties": {"Scheme": "internal", "Subnets": [{"Ref": "A"}, {"Ref": "B"}]},
        },
        "Task": {"Type": "AWS::ECS::TaskDefinition", "Properties": {"Cpu": "512", "Memory": "1024"}},
        "Service": {
            "Type": "AWS::ECS::Service",
            "Properties": {
                "DesiredCount": 2,
                "TaskDefinition": {"Ref": "Task"},
                "NetworkConfiguration": {"AwsvpcConfiguration": {"AssignPublicIp": "ENABLED"}},
            },
        },
        "Nat": {"Type": "AWS::EC2::NatGateway"},
        "NatAddress": {"Type": "AWS::EC2::EIP"},
        **{f"Alarm{i}": {"Type": "AWS::CloudWatch::Alarm"} for i in range(3)},
        "Key": {"Type": "AWS::KMS::Key"},
        "Board": {"Type": "AWS::CloudWatch::Dashboard"},
        "Notebook": {"Type": "AWS::SageMaker::NotebookInstance", "Properties": {"VolumeSizeInGB": 10}},
        "Mlflow": {"Type": "AWS::SageMaker::MlflowTrackingServer", "Properties": {"TrackingServerSize": "Small"}},
        "Acl": {"Type": "AWS::WAFv2::WebACL", "Properties": {"Rules": [{}, {}, {}]}},
        "Function": {"Type": "AWS::Lambda::Function"},
        "Promote": {"Type": "AWS::Lambda::Function", "Properties": {"Handler": "lambdas.promote.handler.handler"}},
        "Every15": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "ScheduleExpression": "rate(15 minutes)",
                "Targets": [{"Arn": {"Fn::GetAtt": ["Promote", "Arn"]}, "Id": "t"}],
            },
        },
        "OnEvent": {"Type": "AWS::Events::Rule", "Properties": {"EventPattern": {"source": ["aws.s3"]}}},
        "Scaling": {
            "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
            "Properties": {"TargetTrackingScalingPolicyConfiguration": {"TargetValue": 60}},
        },
        "LoadFailures": {"Type": "AWS::Logs::MetricFilter", "Properties": {"MetricTransformations": [{}]}},
        "Cluster": {
            "Type": "AWS::ECS::Cluster",
            "Properties": {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]},
        },
        "Ledger": {"Type": "AWS::DynamoDB::Table", "Properties": {"BillingMode": "PAY_PER_REQUEST"}},
    }
}
# by hand, 730 hours a month:
#   balancer 730 x 0.02 = 14.60, + 2 zones' public IPv4 2 x 0.005 x 730 = 7.30        -> 21.90
#   internal balancer: no public address                                                  -> 14.60
#   service: 2 tasks x (0.5 vCPU x 0.04 + 1 GB x 0.004) x 730 = 35.04, + 2 IPv4 7.30     -> 42.34
#   NAT 730 x 0.05 = 36.50; its address 730 x 0.005 = 3.65
#   3 alarms 0.30, a key 1.00, a dashboard 3.00, a stopped notebook's 10 GB x 0.14 = 1.40
#   a Small tracking server 730 x 0.6 = 438.00; a web ACL with 3 rules 5 + 3 = 8.00
#   classic Container Insights on the cluster of 1 service: 48 metrics x 0.3 = 14.40
#   a 15-minute schedule of the promote function, whose handler adds 3 metrics each run: 3 x 0.3 = 0.90;
#   an event-pattern rule: 0; a target-tracking policy's 2 alarms 0.20; a metric filter's metric 0.30
#   the functions and the on-demand table: free at rest
HAND_WORKED = (
    21.90 + 14.60 + 42.34 + 36.50 + 3.65 + 0.30 + 1.00 + 3.00 + 1.40 + 438.00 + 8.00 + 14.40 + 0.90 + 0.20 + 0.30
)


def test_the_calculator_gives_the_hand_worked_figure(prices) -> None:
    result = estimate({"s": TEMPLATE}, prices)
    assert result.total == pytest.approx(HAND_WORKED, abs=0.005)
    by_id = {item.logical_id: item for item in result.items}
    assert by_id["Balancer"].monthly == pytest.approx(21.90)
    assert by_id["Internal"].monthly == pytest.approx(14.60)
    assert by_id["Service"].monthly == pytest.approx(42.34)
    assert by_id["Service"].basis == "2 task(s) of 0.5 vCPU and 1 GB, always on + 2 public IPv4"
    assert by_id["Function"].monthly == 0.0 and by_id["Ledger"].monthly == 0.0
    assert (by_id["Every15"].monthly, by_id["OnEvent"].monthly) == (pytest.approx(0.90), 0.0)
    assert by_id["Every15"].basis == "3 custom metrics its function emits each run"
    assert result.not_priced == []
    assert result.by_type()[0] == ("AWS::SageMaker::MlflowTrackingServer", 1, 438.0), "dearest first"


def test_a_service_runs_at_least_its_scaling_minimum(prices) -> None:
    template = {
        "Resources": {
            "Task": {"Type": "AWS::ECS::TaskDefinition", "Properties": {"Cpu": "1024", "Memory": "2048"}},
            "Service": {
                "Type": "AWS::ECS::Service",
                "Properties": {"DesiredCount": 1, "TaskDefinition": {"Ref": "Task"}},
            },
            "Scaling": {
                "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
                "Properties": {"ServiceNamespace": "ecs", "MinCapacity": 3, "MaxCapacity": 6},
            },
        }
    }
    # 3 tasks x (1 vCPU x 0.04 + 2 GB x 0.004) x 730 = 105.12
    (service,) = [i for i in estimate({"s": template}, prices).items if i.logical_id == "Service"]
    assert service.monthly == pytest.approx(105.12)
    assert service.basis.startswith("3 task(s) of 1 vCPU and 2 GB")


def test_an_unknown_type_is_not_priced_never_zero(prices) -> None:
    template = {
        "Resources": {
            "Thing": {"Type": "AWS::Redshift::Cluster"},
            "Provisioned": {"Type": "AWS::DynamoDB::Table", "Properties": {"BillingMode": "PROVISIONED"}},
        }
    }
    result = estimate({"s": template}, prices)
    assert [(i.logical_id, i.monthly) for i in result.not_priced] == [("Thing", None), ("Provisioned", None)]
    assert "not priced: s/Thing (AWS::Redshift::Cluster)" in cost.render("x", result)


def test_a_size_or_setting_without_a_price_is_not_priced_and_says_why(prices) -> None:
    template = {
        "Resources": {
            "Big": {"Type": "AWS::SageMaker::MlflowTrackingServer", "Properties": {"TrackingServerSize": "Large"}},
            "Odd": {
                "Type": "AWS::ECS::Cluster",
                "Properties": {"ClusterSettings": [{"Name": "containerInsights", "Value": "turbo"}]},
            },
            "Plain": {"Type": "AWS::ECS::Cluster"},
        }
    }
    result = estimate({"s": template}, prices)
    big, odd = result.not_priced
    assert "has no price 'mlflow_tracking_server_large_hour'" in big.basis
    assert "Container Insights 'turbo' has no price rule" in odd.basis
    assert [i.monthly for i in result.items if i.logical_id == "Plain"] == [0.0]


def test_a_missing_price_or_table_names_the_file(prices, tmp_path: Path) -> None:
    with pytest.raises(CostError, match=r"infra/prices/test-1.yaml has no price 'nat_gateway_hour2'"):
        prices["nat_gateway_hour2"]
    with pytest.raises(CostError, match=r"no price table for xx-east-9: add"):
        load_prices("xx-east-9", tmp_path)


def test_every_rule_has_its_prices_in_the_shipped_table() -> None:
    shipped = load_prices("eu-west-1")
    assert shipped.checked and all(p.source for p in shipped.prices.values()), "every figure says where it is from"
    assert set(TEST_PRICES) <= set(shipped.prices) | {"mlflow_tracking_server_small_hour"}
    assert "mlflow_tracking_server_small_hour" in shipped.prices, "prd's size (config)"


def write_assembly(folder: Path, templates: dict[str, dict]) -> None:
    """A cloud assembly as `cdk synth` leaves it: a template per stack, named by its manifest."""
    import json

    folder.mkdir(exist_ok=True)
    artifacts = {}
    for stack, template in templates.items():
        (folder / f"{stack}.template.json").write_text(json.dumps(template))
        artifacts[stack] = {
            "type": "aws:cloudformation:stack",
            "properties": {"templateFile": f"{stack}.template.json", "stackName": stack},
        }
    (folder / "manifest.json").write_text(json.dumps({"artifacts": artifacts}))


def test_the_pr_lines_give_each_figure_and_its_change(prices, tmp_path: Path, monkeypatch, capsys) -> None:
    """int: the merge result's assembly against the base's baselines; the workspace: against what is deployed
    (a baseline folder of `<stack>.json`, an empty template where nothing is)."""
    import json

    base, merged, deployed = tmp_path / "baselines-int", tmp_path / "cdk.out.int", tmp_path / "baselines-ws"
    for folder in (base, deployed):
        folder.mkdir()
    key = {"Resources": {"Key": {"Type": "AWS::KMS::Key"}}}
    two_keys = {"Resources": {"Key": {"Type": "AWS::KMS::Key"}, "Other": {"Type": "AWS::KMS::Key"}}}
    (base / "p-int-storage.json").write_text(json.dumps(key))
    (base / "baselines.json").write_text(json.dumps({"stacks": {"p-int-storage": "base"}}))  # not a template
    write_assembly(merged, {"p-int-storage": two_keys})
    (deployed / "p-ws-storage.json").write_text(json.dumps({"Resources": {}}))
    (deployed / "baselines.json").write_text(json.dumps({"stacks": {"p-ws-storage": "nothing (not deployed yet)"}}))
    monkeypatch.setattr(cost_cli, "load_prices", lambda region: prices)
    assert (
        cost_cli.main(
            [
                "--compare",
                "int",
                "before this PR",
                str(base),
                str(merged),
                "--compare",
                "workspace `ws`",
                "what is deployed",
                str(deployed),
                str(tmp_path / "cdk.out"),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines() == [
        "**Cost at rest** (`make cost`, test-1 prices of 2026-12-03):",
        "- int: **$2.00/month** (+1.00 against before this PR)",
        "- workspace `ws`: not synthesised in this run",
    ]
    write_assembly(tmp_path / "cdk.out", {"p-ws-storage": key})
    cost_cli.main(["--compare", "workspace", "what is deployed", str(deployed), str(tmp_path / "cdk.out")])
    assert capsys.readouterr().out.splitlines()[1] == "- workspace: **$1.00/month** (+1.00 against what is deployed)"
    (base / "baselines.json").write_text(json.dumps({"stacks": {}, "int_known": False, "gone": []}))
    cost_cli.main(["--compare", "int", "the base commit", str(base), str(merged)])
    assert capsys.readouterr().out.splitlines()[1] == (
        "- int: **$2.00/month** (the base commit could not be synthesised: no change shown)"
    )
    (base / "baselines.json").write_text(json.dumps({"stacks": {}, "int_known": True, "gone": ["p-int-ml"]}))
    cost_cli.main(["--compare", "int", "the base commit", str(base), str(merged)])
    assert capsys.readouterr().out.splitlines()[1].endswith("; 1 stack(s) no longer defined, not counted")


# ---- each rule's figure and basis, CloudFormation's defaults where a property is absent, the report's parts


def priced(prices, resources: dict) -> dict[str, tuple[float | None, str]]:
    """Each resource's (monthly, basis), by logical id."""
    return {i.logical_id: (i.monthly, i.basis) for i in estimate({"s": {"Resources": resources}}, prices).items}


def test_every_item_says_how_it_was_worked_out(prices) -> None:
    by_id = priced(prices, TEMPLATE["Resources"])
    assert by_id["Balancer"][1] == "730 h x $0.02/h + 2 public IPv4 x $0.005/h"
    assert by_id["Internal"][1] == "730 h x $0.02/h"
    assert by_id["Nat"] == (pytest.approx(36.5), "always on")
    assert by_id["NatAddress"] == (pytest.approx(3.65), "a public IPv4 address")
    assert by_id["Key"][1].startswith("a customer-managed key, its first year")
    assert by_id["Alarm0"] == (pytest.approx(0.1), "a standard alarm")
    assert by_id["Board"] == (3.0, "beyond the account's 3 free dashboards")
    assert by_id["Notebook"] == (pytest.approx(1.4), "stopped by its idle check: its 10 GB volume only")
    assert by_id["Mlflow"] == (pytest.approx(438.0), "small tracking server, always on")
    assert by_id["Acl"] == (8.0, "1 web ACL + 3 rules")
    assert by_id["Cluster"] == (pytest.approx(14.4), "classic Container Insights: 48 metrics x $0.3")
    assert by_id["Scaling"] == (pytest.approx(0.2), "target tracking: 2 alarms it creates")
    assert by_id["LoadFailures"] == (pytest.approx(0.3), "1 custom metric(s)")
    assert by_id["OnEvent"] == (0.0, "an event rule: per event, none at rest")
    assert by_id["Ledger"] == (0.0, "on-demand: per request and stored GB (none at rest)")
    assert by_id["Function"] == (0.0, "per request and GB-second")
    assert by_id["Task"] == (0.0, "no charge (its tasks priced with the service)")
    result = estimate({"s": TEMPLATE}, prices)
    kinds = {logical_id: resource["Type"] for logical_id, resource in TEMPLATE["Resources"].items()}
    assert [(i.stack, i.kind) for i in result.items] == [("s", kinds[i.logical_id]) for i in result.items]
    assert (result.region, result.checked) == ("test-1", "2026-12-03")
    assert ("AWS::CloudWatch::Alarm", 3, 0.3) in result.by_type(), "counted and summed per type"


def test_absent_properties_are_priced_at_cloudformations_defaults(prices) -> None:
    by_id = priced(
        prices,
        {
            "Balancer": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer"},  # internet-facing, no subnets
            "Service": {"Type": "AWS::ECS::Service"},  # 1 task of 0.25 vCPU and 0.5 GB
            "Notebook": {"Type": "AWS::SageMaker::NotebookInstance"},  # 5 GB
            "Mlflow": {"Type": "AWS::SageMaker::MlflowTrackingServer"},  # Small
            "Filter": {"Type": "AWS::Logs::MetricFilter"},  # one metric
            "Acl": {"Type": "AWS::WAFv2::WebACL"},  # no rules
            "Schedule": {"Type": "AWS::Events::Rule", "Properties": {"ScheduleExpression": "rate(1 hour)"}},
            "Target": {"Type": "AWS::ApplicationAutoScaling::ScalableTarget"},  # no namespace: not the service's
        },
    )
    assert by_id["Balancer"] == (pytest.approx(14.6), "730 h x $0.02/h + 0 public IPv4 x $0.005/h")
    assert by_id["Service"] == (pytest.approx(8.76), "1 task(s) of 0.25 vCPU and 0.5 GB, always on")  # 0.012 x 730
    assert by_id["Notebook"] == (pytest.approx(0.7), "stopped by its idle check: its 5 GB volume only")
    assert by_id["Mlflow"] == (pytest.approx(438.0), "small tracking server, always on")
    assert by_id["Filter"] == (pytest.approx(0.3), "1 custom metric(s)")
    assert by_id["Acl"] == (5.0, "1 web ACL + 0 rules")
    assert by_id["Schedule"] == (0.0, "a schedule: its runs are per use")
    assert by_id["Target"] == (0.0, "no charge")


def test_the_service_runs_its_desired_count_or_its_one_scalable_targets_minimum(prices) -> None:
    service = {"Type": "AWS::ECS::Service", "Properties": {"DesiredCount": 0}}
    target = {"Type": "AWS::ApplicationAutoScaling::ScalableTarget"}
    assert priced(prices, {"S": service})["S"][1].startswith("0 task(s)"), "no target: the desired count"
    ecs_target = target | {"Properties": {"ServiceNamespace": "ecs", "MinCapacity": 2}}
    assert priced(prices, {"S": service, "T": ecs_target})["S"][1].startswith("2 task(s)")
    assert priced(prices, {"S": service, "T": target})["S"][1].startswith("0 task(s)"), "a target without properties"
    no_minimum = target | {"Properties": {"ServiceNamespace": "ecs"}}
    assert priced(prices, {"S": service, "T": no_minimum})["S"][1].startswith("0 task(s)"), "MinCapacity 0"
    other = target | {"Properties": {"ServiceNamespace": "dynamodb", "MinCapacity": 5}}
    assert priced(prices, {"S": service, "T": other})["S"][1].startswith("0 task(s)"), "another service's target"
    both = priced(prices, {"S": service, "S2": service, "T": ecs_target})
    assert both["S"][1].startswith("0 task(s)") and both["S2"][1].startswith("0 task(s)"), (
        "with two services a target is nobody's in particular: the desired counts stand"
    )


def test_enhanced_container_insights_count_every_service(prices, tmp_path: Path) -> None:
    entries = dict(TEST_PRICES, container_insights_ecs_metrics_per_service=10, container_insights_ecs_metric_month=0.5)
    table = {k: {"price": v, "unit": "u", "source": "s"} for k, v in entries.items()}
    (tmp_path / "t-2.yaml").write_text(yaml.safe_dump({"region": "t-2", "checked": "today", "prices": table}))
    enhanced = {"ClusterSettings": [{"Name": "containerInsights", "Value": "enhanced"}]}
    service = {"Type": "AWS::ECS::Service", "Properties": {"DesiredCount": 0}}
    by_id = priced(
        load_prices("t-2", tmp_path),
        {"C": {"Type": "AWS::ECS::Cluster", "Properties": enhanced}, "S1": service, "S2": service},
    )
    assert by_id["C"] == (pytest.approx(10.0), "enhanced Container Insights: 20 metrics x $0.5")
    disabled = {"ClusterSettings": [{"Name": "containerInsights", "Value": "disabled"}]}
    assert priced(prices, {"C": {"Type": "AWS::ECS::Cluster", "Properties": disabled}})["C"] == (
        0.0,
        "no Container Insights",
    )


def test_a_schedule_counts_the_metrics_of_the_handler_module_it_runs(prices) -> None:
    def schedule(*targets: dict) -> dict:
        return {
            "Type": "AWS::Events::Rule",
            "Properties": {"ScheduleExpression": "rate(1 hour)", "Targets": list(targets)},
        }

    def function(handler: str | None) -> dict:
        return {"Type": "AWS::Lambda::Function", **({"Properties": {"Handler": handler}} if handler else {})}

    cases = {
        "lambdas.promote.handler.main": 3,  # the module's file is what is read, whatever the function
        "lambdas.extract.handler.handler": 2,  # its table's two metrics (emit_per_table of EXTRACT_TABLE_METRICS)
        "lambdas.gate.handler.handler": 1 + 4,  # passed or failed, and the table's four
        "lambdas.promote.handler": 0,  # not lambdas.<name>.<module>.<function>
        "other.promote.handler.handler": 0,  # not one of the pipeline's functions
        "lambdas.nowhere.handler.handler": 0,  # no such file
        None: 0,  # no handler (a container image)
    }
    for handler, metrics in cases.items():
        by_id = priced(prices, {"F": function(handler), "R": schedule({"Arn": {"Fn::GetAtt": ["F", "Arn"]}})})
        assert by_id["R"][0] == pytest.approx(0.3 * metrics), handler
    odd_targets = schedule({"Arn": "arn:aws:lambda:eu-west-1:1:function:f"}, {"Arn": {"Ref": "F"}}, {"Id": "none"})
    missing = schedule({"Arn": {"Fn::GetAtt": ["Gone", "Arn"]}})
    assert priced(prices, {"R": odd_targets, "M": missing})["R"][0] == 0.0
    two = schedule({"Arn": {"Fn::GetAtt": ["F", "Arn"]}}, {"Arn": {"Fn::GetAtt": ["F", "Arn"]}})
    assert priced(prices, {"F": function("lambdas.promote.handler.handler"), "R": two})["R"] == (
        pytest.approx(1.8),
        "6 custom metrics its function emits each run",
    )


def test_a_metric_filter_counts_its_metrics_and_a_web_acl_its_rules(prices, tmp_path: Path) -> None:
    two = {"Type": "AWS::Logs::MetricFilter", "Properties": {"MetricTransformations": [{}, {}]}}
    assert priced(prices, {"F": two})["F"] == (pytest.approx(0.6), "2 custom metric(s)")
    entries = dict(TEST_PRICES, waf_rule_month=2.0, kms_key_month=1.23456)
    table = {k: {"price": v, "unit": "u", "source": "s"} for k, v in entries.items()}
    (tmp_path / "t-3.yaml").write_text(yaml.safe_dump({"region": "t-3", "checked": "today", "prices": table}))
    acl = {"Type": "AWS::WAFv2::WebACL", "Properties": {"Rules": [{}, {}, {}]}}
    by_id = priced(load_prices("t-3", tmp_path), {"A": acl, "K": {"Type": "AWS::KMS::Key"}})
    assert by_id["A"] == (11.0, "1 web ACL + 3 rules")
    assert by_id["K"][0] == 1.2346, "rounded to 4 places"
    keys = estimate({"s": {"Resources": {"K": {"Type": "AWS::KMS::Key"}}}}, load_prices("t-3", tmp_path))
    assert keys.by_type() == [("AWS::KMS::Key", 1, 1.23)], "the report's figures in cents"


def test_what_cannot_be_priced_says_why(prices) -> None:
    by_id = priced(
        prices,
        {
            "Provisioned": {"Type": "AWS::DynamoDB::Table"},  # PROVISIONED is the default
            "Thing": {"Type": "AWS::Redshift::Cluster"},
            "Step": {"Type": "AWS::ApplicationAutoScaling::ScalingPolicy"},
        },
    )
    assert by_id["Provisioned"] == (
        None,
        "not priced: provisioned capacity bills at rest: no price rule (infra/cost.py _table)",
    )
    assert by_id["Thing"] == (None, "not priced")
    unpriced = estimate({"s": {"Resources": {"P": {"Type": "AWS::DynamoDB::Table"}}}}, prices).items
    assert [(i.stack, i.kind) for i in unpriced] == [("s", "AWS::DynamoDB::Table")]
    assert by_id["Step"] == (0.0, "a step policy: its alarms are in the template")
    assert estimate({"s": {}}, prices).items == [], "a template without resources costs nothing"


def test_a_price_table_is_read_with_each_figures_unit_and_source(prices) -> None:
    assert prices.prices["alb_hour"] == cost.Price(0.02, "test", "the test")
    assert (prices.region, prices.checked, prices["alb_hour"]) == ("test-1", "2026-12-03", 0.02)


def test_the_report_lists_each_type_dearest_first_then_what_is_not_priced(prices) -> None:
    template = {
        "Resources": {
            "A1": {"Type": "AWS::CloudWatch::Alarm"},
            "A2": {"Type": "AWS::CloudWatch::Alarm"},
            "Key": {"Type": "AWS::KMS::Key"},
            "Thing": {"Type": "AWS::Redshift::Cluster"},
        }
    }
    result = estimate({"s": template}, prices)
    assert result.by_type() == [("AWS::KMS::Key", 1, 1.0), ("AWS::CloudWatch::Alarm", 2, 0.2)]
    assert cost.render("feature/x (feature)", result).splitlines() == [
        "feature/x (feature): $1.20/month at rest (test-1 prices of 2026-12-03)",
        f"  {'AWS::KMS::Key':<45}   1 x  $    1.00",
        f"  {'AWS::CloudWatch::Alarm':<45}   2 x  $    0.20",
        "  not priced: s/Thing (AWS::Redshift::Cluster)",
    ]
    before = estimate({"s": {"Resources": {"Key": {"Type": "AWS::KMS::Key"}}}}, prices)
    assert cost.change_line("int", before, result, "main") == (
        "- int: **$1.20/month** (1 resources not priced) (+0.20 against main)"
    )
    assert cost.change_line("int", result, before, "main") == "- int: **$1.00/month** (-0.20 against main)"


def test_a_pr_line_compares_two_assemblies_as_well_as_baselines(prices, tmp_path: Path) -> None:
    write_assembly(tmp_path / "before", {"p-int-storage": {"Resources": {"K": {"Type": "AWS::KMS::Key"}}}})
    write_assembly(tmp_path / "after", {"p-int-storage": {"Resources": {}}})
    line = cost.compare_line("int", "main", tmp_path / "before", tmp_path / "after", prices)
    assert line == "- int: **$0.00/month** (-1.00 against main)"
    assert cost.templates_in(tmp_path / "empty") == {}, "nothing synthesised: no templates"


def test_a_database_sources_secret_bills_each_month(prices) -> None:
    secret = {"Type": "AWS::SecretsManager::Secret", "Properties": {}}
    assert priced(prices, {"S": secret})["S"] == (
        pytest.approx(0.4),
        "a database source's connection (config etl.database_sources)",
    )


def training_machine(instance: str, runtime_seconds: int, *, spot: bool, count: int = 1) -> dict:
    """A state machine as infra/constructs/training_pipeline.py writes it: its definition an Fn::Join with tokens."""
    train = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync",
        "Parameters": {
            "RoleArn": "@@",
            "ResourceConfig": {"InstanceType": instance, "InstanceCount": count, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": runtime_seconds},
            "EnableManagedSpotTraining": spot,
        },
        "End": True,
    }
    other = {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:sfn:listExecutions", "Next": "Train"}
    text = json.dumps({"StartAt": "Other", "States": {"Other": other, "Train": train}})
    before, after = text.split("@@")
    return {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {"DefinitionString": {"Fn::Join": ["", [before, {"Fn::GetAtt": ["Role", "Arn"]}, after]]}},
    }


def test_a_training_run_is_priced_per_run_at_its_cap_and_nothing_at_rest(prices) -> None:
    template = {
        "Resources": {
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
            "Plain": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {"DefinitionString": '{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}'},
            },
            "Training": training_machine("ml.m5.large", 1800, spot=True, count=2),
        }
    }
    result = estimate({"s": template}, prices)
    assert result.total == 0, "a state machine bills per transition, a training job per run"
    (run,) = result.runs
    assert (run.stack, run.logical_id) == ("s", "Training")
    assert run.per_run == pytest.approx(0.12 * 2 * 0.5)  # 2 instances for at most 30 minutes
    assert run.basis == "30 min x 2 ml.m5.large at $0.12/h on demand; spot: less"
    on_demand = estimate({"s": {"Resources": {"T": training_machine("ml.m5.large", 5400, spot=False)}}}, prices)
    assert on_demand.runs[0].per_run == pytest.approx(0.18) and "spot" not in on_demand.runs[0].basis
    text = cost.render("main (int)", on_demand)
    assert text.endswith("  per training run: at most $0.18 (90 min x 1 ml.m5.large at $0.12/h on demand)")


def test_a_training_instance_without_a_price_is_not_priced_and_says_why(prices) -> None:
    result = estimate({"s": {"Resources": {"T": training_machine("ml.c5.xlarge", 600, spot=False)}}}, prices)
    (run,) = result.runs
    assert run.per_run is None and (run.stack, run.logical_id) == ("s", "T")
    missing = "sagemaker_training_ml.c5.xlarge_hour"
    assert run.basis == f"not priced: infra/prices/test-1.yaml has no price {missing!r}: add it with its source"
    assert cost.render("x", result).endswith(f"  per training run: {run.basis}")


def test_each_training_state_is_priced_and_a_runs_ceiling_is_rounded_to_four_places(prices) -> None:
    machine = training_machine("ml.c5.xlarge", 600, spot=False)
    definition = json.loads(
        "".join(p if isinstance(p, str) else "x" for p in machine["Properties"]["DefinitionString"]["Fn::Join"][1])
    )
    second = json.loads(json.dumps(definition["States"]["Train"]))
    second["Parameters"]["ResourceConfig"]["InstanceType"] = "ml.m5.large"
    second["Parameters"]["StoppingCondition"]["MaxRuntimeInSeconds"] = 100
    definition["States"]["Train"]["Next"], definition["States"]["Again"] = "Again", second
    del definition["States"]["Train"]["End"]
    both = {"Type": "AWS::StepFunctions::StateMachine", "Properties": {"DefinitionString": json.dumps(definition)}}
    runs = estimate({"s": {"Resources": {"T": both}}}, prices).runs
    assert [run.per_run for run in runs] == [None, 0.0033], "an unpriced state does not hide the next; 0.12 x 100/3600"
