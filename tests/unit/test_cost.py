"""The idle-cost calculator (infra/cost.py) against hand-worked figures, with a price table of round numbers
that the test owns; then the shipped table on the shipped stages."""

from __future__ import annotations

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
