"""What a workspace costs at rest, per month, computed from its synthesised templates (the pricing; the
command line is infra/cost_cli.py, which synthesises):

    python -m infra.cost <ref>... [--config F] [--check]     (make cost: the three stages)
    python -m infra.cost --compare NAME AGAINST BEFORE AFTER ...  (the PR comment's lines)

At rest means no traffic, no runs and no data beyond what the templates create: what a workspace bills for
existing. Each resource is priced by its type's rule (count x unit price x hours), from the region's dated
price table in infra/prices/<region>.yaml, which names where every figure comes from. A type that bills per
use only is free at rest (FREE_AT_REST, each with why); any other type is "not priced", never silently zero,
and `--check` fails when a feature workspace has one (a branch's cost must be known).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.pr_diff import BASELINES_FILE, Baselines, assembly_templates, read_baselines

PRICES_DIR = Path(__file__).resolve().parent / "prices"
HOURS_PER_MONTH = 730
"""AWS's own convention for a month of hourly charges (365 x 24 / 12)."""

FREE_AT_REST: dict[str, str] = {
    "AWS::ApplicationAutoScaling::ScalableTarget": "no charge",
    "AWS::Athena::WorkGroup": "per TB scanned",
    "AWS::CDK::Metadata": "not a resource",
    "AWS::EC2::FlowLog": "per GB of logs delivered (no traffic, no logs)",
    "AWS::EC2::InternetGateway": "no charge",
    "AWS::EC2::Route": "no charge",
    "AWS::EC2::RouteTable": "no charge",
    "AWS::EC2::SecurityGroup": "no charge",
    "AWS::EC2::SecurityGroupEgress": "no charge",
    "AWS::EC2::SecurityGroupIngress": "no charge",
    "AWS::EC2::Subnet": "no charge",
    "AWS::EC2::SubnetRouteTableAssociation": "no charge",
    "AWS::EC2::VPC": "no charge",
    "AWS::EC2::VPCGatewayAttachment": "no charge",
    "AWS::ECS::TaskDefinition": "no charge (its tasks priced with the service)",
    "AWS::ElasticLoadBalancingV2::Listener": "no charge (priced with the load balancer)",
    "AWS::ElasticLoadBalancingV2::ListenerRule": "no charge",
    "AWS::ElasticLoadBalancingV2::TargetGroup": "no charge",
    "AWS::Glue::Database": "Data Catalog: first million objects and requests free",
    "AWS::Glue::Job": "per DPU-hour of a run",
    "AWS::Glue::Table": "Data Catalog: first million objects and requests free",
    "AWS::IAM::ManagedPolicy": "no charge",
    "AWS::IAM::Policy": "no charge",
    "AWS::IAM::Role": "no charge",
    "AWS::KMS::Alias": "no charge",
    "AWS::Lambda::EventInvokeConfig": "no charge",
    "AWS::Lambda::EventSourceMapping": "SQS polling: requests within the free tier at rest",
    "AWS::Lambda::Function": "per request and GB-second",
    "AWS::Lambda::Permission": "no charge",
    "AWS::Lambda::Url": "no charge of its own: the function's requests and duration",
    "AWS::Logs::LogGroup": "per GB ingested and stored (none at rest)",
    "AWS::S3::Bucket": "per GB stored and request (empty at rest)",
    "AWS::S3::BucketPolicy": "no charge",
    "AWS::SageMaker::NotebookInstanceLifecycleConfig": "no charge",
    "AWS::SNS::Subscription": "per notification delivered",
    "AWS::SNS::Topic": "per request and delivery",
    "AWS::SNS::TopicPolicy": "no charge",
    "AWS::SQS::Queue": "per request (the pollers' empty receives: within the free tier)",
    "AWS::SQS::QueuePolicy": "no charge",
    "AWS::SSM::Parameter": "standard tier: no charge",
    "AWS::StepFunctions::StateMachine": "per state transition",
    "AWS::WAFv2::WebACLAssociation": "no charge (the web ACL is priced)",
    "Custom::S3AutoDeleteObjects": "a Lambda-backed custom resource: runs at deploy and destroy only",
    "Custom::S3BucketNotifications": "a Lambda-backed custom resource: runs at deploy only",
}
"""Types that bill per use only, and why; everything else is priced by a rule or reported as not priced."""


class CostError(ValueError):
    """A price table or template that cannot be priced as asked; names the file and the fix."""


@dataclass(frozen=True)
class Price:
    value: float
    unit: str
    source: str


@dataclass(frozen=True)
class PriceTable:
    region: str
    checked: str
    prices: Mapping[str, Price]

    def __getitem__(self, key: str) -> float:
        if key not in self.prices:
            raise CostError(f"infra/prices/{self.region}.yaml has no price {key!r}: add it with its source")
        return self.prices[key].value


def load_prices(region: str, directory: Path = PRICES_DIR) -> PriceTable:
    path = directory / f"{region}.yaml"
    if not path.is_file():
        raise CostError(f"no price table for {region}: add {path} (copy eu-west-1.yaml, with that region's figures)")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    prices = {
        key: Price(float(entry["price"]), str(entry["unit"]), str(entry["source"]))
        for key, entry in raw["prices"].items()
    }
    return PriceTable(str(raw["region"]), str(raw["checked"]), prices)


@dataclass(frozen=True)
class Item:
    """One resource at rest: its monthly figure (None: not priced) and how it was worked out."""

    stack: str
    logical_id: str
    kind: str
    monthly: float | None
    basis: str


Resources = Mapping[str, Mapping[str, Any]]
Rule = Callable[[Mapping[str, Any], Resources, PriceTable], tuple[float, str]]


def _hourly(rate: float, count: float = 1) -> float:
    return rate * count * HOURS_PER_MONTH


def _load_balancer(props: Mapping[str, Any], _: Resources, prices: PriceTable) -> tuple[float, str]:
    cost, basis = _hourly(prices["alb_hour"]), f"{HOURS_PER_MONTH} h x ${prices['alb_hour']}/h"
    if props.get("Scheme", "internet-facing") == "internet-facing":  # one public address per zone's subnet
        zones = len(props.get("Subnets") or props.get("SubnetMappings") or [])
        cost += _hourly(prices["public_ipv4_hour"], zones)
        basis += f" + {zones} public IPv4 x ${prices['public_ipv4_hour']}/h"
    return cost, basis


def _fargate_service(props: Mapping[str, Any], resources: Resources, prices: PriceTable) -> tuple[float, str]:
    """The tasks that run at rest: the desired count, or autoscaling's minimum where that is higher."""
    tasks = max(int(props.get("DesiredCount", 1)), _scaling_minimum(props, resources))
    definition = resources.get(str(props.get("TaskDefinition", {}).get("Ref")), {}).get("Properties", {})
    vcpu, memory_gb = int(definition.get("Cpu", 256)) / 1024, int(definition.get("Memory", 512)) / 1024
    per_task = vcpu * prices["fargate_vcpu_hour"] + memory_gb * prices["fargate_gb_hour"]
    cost, basis = _hourly(per_task, tasks), f"{tasks} task(s) of {vcpu:g} vCPU and {memory_gb:g} GB, always on"
    network = props.get("NetworkConfiguration", {}).get("AwsvpcConfiguration", {})
    if network.get("AssignPublicIp") == "ENABLED":
        cost += _hourly(prices["public_ipv4_hour"], tasks)
        basis += f" + {tasks} public IPv4"
    return cost, basis


def _cluster(props: Mapping[str, Any], resources: Resources, prices: PriceTable) -> tuple[float, str]:
    """Container Insights (enhanced): CloudWatch metrics per service, billed per metric-month while tasks run."""
    settings = {s.get("Name"): s.get("Value") for s in props.get("ClusterSettings", [])}
    insights = settings.get("containerInsights", "disabled")
    if insights == "disabled":
        return 0.0, "no Container Insights"
    kind = {"enabled": "classic", "enhanced": "enhanced"}.get(str(insights))
    if kind is None:
        raise CostError(f"Container Insights {insights!r} has no price rule (infra/cost.py _cluster)")
    services = sum(1 for r in resources.values() if r.get("Type") == "AWS::ECS::Service")
    suffix = "" if kind == "enhanced" else "_classic"
    metrics = prices[f"container_insights_ecs{suffix}_metrics_per_service"] * services
    rate = prices[f"container_insights_ecs{suffix}_metric_month"]
    return metrics * rate, f"{kind} Container Insights: {metrics:g} metrics x ${rate}"


def _scaling_policy(props: Mapping[str, Any], _: Resources, prices: PriceTable) -> tuple[float, str]:
    """Target tracking: Application Auto Scaling creates two alarms of its own (out and in), outside the template."""
    if "TargetTrackingScalingPolicyConfiguration" not in props:
        return 0.0, "a step policy: its alarms are in the template"
    return 2 * prices["cloudwatch_alarm_month"], "target tracking: 2 alarms it creates"


def _metric_filter(props: Mapping[str, Any], _: Resources, prices: PriceTable) -> tuple[float, str]:
    """A custom metric, published whenever its log group gets events (with a default value, even 0)."""
    count = len(props.get("MetricTransformations", [])) or 1
    return count * prices["cloudwatch_custom_metric_month"], f"{count} custom metric(s)"


def _schedule(props: Mapping[str, Any], resources: Resources, prices: PriceTable) -> tuple[float, str]:
    """A schedule that runs one of the pipeline's functions: the custom metrics its handler emits on every run
    (lambdas/<name>/handler.py's `metrics.add_metric` calls) exist all month. Events themselves are free."""
    if "ScheduleExpression" not in props:
        return 0.0, "an event rule: per event, none at rest"
    metrics = 0
    for target in props.get("Targets", []):
        arn = target.get("Arn")
        function = arn.get("Fn::GetAtt", [None])[0] if isinstance(arn, dict) else None
        handler = str(resources.get(str(function), {}).get("Properties", {}).get("Handler"))  # "None": no handler
        metrics += _metrics_every_run(handler)
    if not metrics:
        return 0.0, "a schedule: its runs are per use"
    return metrics * prices["cloudwatch_custom_metric_month"], f"{metrics} custom metrics its function emits each run"


def _metrics_every_run(handler: str) -> int:
    """How many metrics `lambdas.<name>.handler.handler` adds on every invocation (0 for any other handler)."""
    parts = handler.split(".")
    if len(parts) != 4 or parts[0] != "lambdas":
        return 0
    source = Path(__file__).resolve().parent.parent / "lambdas" / parts[1] / f"{parts[2]}.py"
    if not source.is_file():
        return 0
    from lambdas import telemetry

    text = source.read_text(encoding="utf-8")
    per_table = re.findall(r"emit_per_table\([^)]*?\b([A-Z_]+_TABLE_METRICS)\b", text)  # one table a run
    return text.count("metrics.add_metric(") + sum(len(getattr(telemetry, name)) for name in per_table)


def _scaling_minimum(service: Mapping[str, Any], resources: Resources) -> int:
    """The MinCapacity of the ECS scalable target of the template's one service (0 without one; with several
    services a target cannot be told apart here, and the desired counts stand)."""
    services = [r for r in resources.values() if r.get("Type") == "AWS::ECS::Service"]
    if len(services) != 1 or services[0].get("Properties") is not service:
        return 0
    return max(
        (
            int(r["Properties"].get("MinCapacity", 0))  # it has properties: its namespace is ecs
            for r in resources.values()
            if r.get("Type") == "AWS::ApplicationAutoScaling::ScalableTarget"
            and r.get("Properties", {}).get("ServiceNamespace") == "ecs"
        ),
        default=0,
    )


def _table(props: Mapping[str, Any], _: Resources, prices: PriceTable) -> tuple[float, str]:
    """On demand, a table bills per request and stored GB: none at rest. Provisioned capacity bills by the hour."""
    if props.get("BillingMode") != "PAY_PER_REQUEST":
        raise CostError("provisioned capacity bills at rest: no price rule (infra/cost.py _table)")
    return 0.0, "on-demand: per request and stored GB (none at rest)"


def _notebook(props: Mapping[str, Any], _: Resources, prices: PriceTable) -> tuple[float, str]:
    size = int(props.get("VolumeSizeInGB", 5))
    return size * prices["sagemaker_ml_storage_gb_month"], f"stopped by its idle check: its {size} GB volume only"


def _tracking_server(props: Mapping[str, Any], _: Resources, prices: PriceTable) -> tuple[float, str]:
    size = str(props.get("TrackingServerSize", "small")).lower()
    return _hourly(prices[f"mlflow_tracking_server_{size}_hour"]), f"{size} tracking server, always on"


def _web_acl(props: Mapping[str, Any], _: Resources, prices: PriceTable) -> tuple[float, str]:
    rules = len(props.get("Rules", []))
    return prices["waf_web_acl_month"] + rules * prices["waf_rule_month"], f"1 web ACL + {rules} rules"


RULES: dict[str, Rule] = {
    "AWS::ElasticLoadBalancingV2::LoadBalancer": _load_balancer,
    "AWS::EC2::NatGateway": lambda p, r, prices: (_hourly(prices["nat_gateway_hour"]), "always on"),
    "AWS::EC2::EIP": lambda p, r, prices: (_hourly(prices["public_ipv4_hour"]), "a public IPv4 address"),
    "AWS::ECS::Service": _fargate_service,
    "AWS::ECS::Cluster": _cluster,
    "AWS::ApplicationAutoScaling::ScalingPolicy": _scaling_policy,
    "AWS::Logs::MetricFilter": _metric_filter,
    "AWS::Events::Rule": _schedule,
    "AWS::DynamoDB::Table": _table,
    "AWS::KMS::Key": lambda p, r, prices: (
        prices["kms_key_month"],
        "a customer-managed key, its first year (each yearly rotation adds $1 a month, twice at most)",
    ),
    "AWS::CloudWatch::Alarm": lambda p, r, prices: (prices["cloudwatch_alarm_month"], "a standard alarm"),
    "AWS::CloudWatch::Dashboard": lambda p, r, prices: (
        prices["cloudwatch_dashboard_month"],
        "beyond the account's 3 free dashboards",
    ),
    "AWS::SageMaker::NotebookInstance": _notebook,
    "AWS::SageMaker::MlflowApp": lambda p, r, prices: (prices["mlflow_app_month"], "serverless MLflow at rest"),
    "AWS::SageMaker::MlflowTrackingServer": _tracking_server,
    "AWS::WAFv2::WebACL": _web_acl,
    "AWS::SecretsManager::Secret": lambda p, r, prices: (
        prices["secretsmanager_secret_month"],
        "a database source's connection (config etl.database_sources)",
    ),
}


def price_template(stack: str, template: Mapping[str, Any], prices: PriceTable) -> list[Item]:
    """Every resource of one template, priced at rest."""
    resources: Resources = template.get("Resources", {})
    items = []
    for logical_id, resource in resources.items():
        kind = str(resource["Type"])
        rule = RULES.get(kind)
        if rule is not None:
            try:
                monthly, basis = rule(resource.get("Properties", {}), resources, prices)
            except CostError as exc:  # a price the table lacks (a size nobody priced yet): said, not zero
                items.append(Item(stack, logical_id, kind, None, f"not priced: {exc}"))
                continue
            items.append(Item(stack, logical_id, kind, round(monthly, 4), basis))
        elif kind in FREE_AT_REST:
            items.append(Item(stack, logical_id, kind, 0.0, FREE_AT_REST[kind]))
        else:
            items.append(Item(stack, logical_id, kind, None, "not priced"))
    return items


@dataclass(frozen=True)
class RunCost:
    """What one run of a per-use step costs at most (None: not priced), and how it was worked out."""

    stack: str
    logical_id: str
    per_run: float | None
    basis: str


TRAINING_JOB = "createTrainingJob.sync"


def _definition(props: Mapping[str, Any]) -> dict[str, Any]:
    """A state machine's definition, its tokens (Fn::Join parts that are not text) as placeholders."""
    body = props["DefinitionString"]
    if isinstance(body, dict):
        separator, parts = body["Fn::Join"]
        body = separator.join(part if isinstance(part, str) else "TOKEN" for part in parts)
    return dict(json.loads(body))


def training_runs(stack: str, template: Mapping[str, Any], prices: PriceTable) -> list[RunCost]:
    """Each SageMaker training job a state machine runs (config ml.training): at most its instances for its
    MaxRuntimeInSeconds at the on-demand rate (spot bills less, by how much depends on the day). Nothing of it
    runs at rest."""
    runs = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource["Type"] != "AWS::StepFunctions::StateMachine":
            continue
        for state in _definition(resource["Properties"])["States"].values():
            if state["Type"] != "Task" or not state["Resource"].endswith(TRAINING_JOB):
                continue
            job = state["Parameters"]
            instance, count = job["ResourceConfig"]["InstanceType"], int(job["ResourceConfig"]["InstanceCount"])
            minutes = int(job["StoppingCondition"]["MaxRuntimeInSeconds"]) / 60
            spot = "; spot: less" if job.get("EnableManagedSpotTraining") else ""
            try:
                rate = prices[f"sagemaker_training_{instance}_hour"]
            except CostError as exc:
                runs.append(RunCost(stack, logical_id, None, f"not priced: {exc}"))
                continue
            basis = f"{minutes:g} min x {count} {instance} at ${rate}/h on demand{spot}"
            runs.append(RunCost(stack, logical_id, round(rate * count * minutes / 60, 4), basis))
    return runs


@dataclass(frozen=True)
class Estimate:
    region: str
    checked: str
    items: list[Item]
    runs: list[RunCost] = field(default_factory=list)

    @property
    def total(self) -> float:
        return round(sum(item.monthly or 0.0 for item in self.items), 2)

    @property
    def not_priced(self) -> list[Item]:
        return [item for item in self.items if item.monthly is None]

    def by_type(self) -> list[tuple[str, int, float]]:
        """(type, count, monthly) of the priced types that cost something, dearest first."""
        sums: dict[str, tuple[int, float]] = {}
        for item in self.items:
            if item.monthly:
                count, total = sums.get(item.kind, (0, 0.0))
                sums[item.kind] = (count + 1, total + item.monthly)
        return sorted(((k, c, round(t, 2)) for k, (c, t) in sums.items()), key=lambda row: -row[2])


def estimate(templates: Mapping[str, Mapping[str, Any]], prices: PriceTable) -> Estimate:
    """`templates`: stack name -> its template."""
    items = [item for stack, template in sorted(templates.items()) for item in price_template(stack, template, prices)]
    runs = [run for stack, template in sorted(templates.items()) for run in training_runs(stack, template, prices)]
    return Estimate(prices.region, prices.checked, items, runs)


def templates_in(directory: Path) -> dict[str, dict[str, Any]]:
    """The templates of a cloud assembly (a `cdk.out`, by its manifest) or of a folder of baselines (as
    infra/pr_diff.py writes them, by its BASELINES_FILE); none where neither is (nothing synthesised)."""
    files = assembly_templates(directory)
    if files is None:
        if not (directory / BASELINES_FILE).is_file():
            return {}
        files = {stack: directory / f"{stack}.json" for stack in read_baselines(directory)["stacks"]}
    return {stack: json.loads(path.read_text(encoding="utf-8")) for stack, path in files.items()}


def change_line(name: str, before: Estimate, after: Estimate, against: str) -> str:
    """One markdown item: the figure after, and the change from before."""
    delta = after.total - before.total
    unpriced = f" ({len(after.not_priced)} resources not priced)" if after.not_priced else ""
    return f"- {name}: **${after.total:,.2f}/month**{unpriced} ({delta:+,.2f} against {against})"


def render(name: str, result: Estimate) -> str:
    lines = [f"{name}: ${result.total:,.2f}/month at rest ({result.region} prices of {result.checked})"]
    lines += [f"  {kind:<45} {count:>3} x  ${monthly:>8,.2f}" for kind, count, monthly in result.by_type()]
    lines += [f"  not priced: {item.stack}/{item.logical_id} ({item.kind})" for item in result.not_priced]
    for run in result.runs:
        figure = run.basis if run.per_run is None else f"at most ${run.per_run:,.2f} ({run.basis})"
        lines.append(f"  per training run: {figure}")
    return "\n".join(lines)


def compare_line(name: str, against: str, before: Path, after: Path, prices: PriceTable) -> str:
    """The PR comment's line of `name`: its cost in `after` (a cloud assembly) and its change from `before` (an
    assembly or a baseline folder, which `against` names), or why there is no figure or no change."""
    if not after.is_dir():
        return f"- {name}: not synthesised in this run"
    known: Baselines | dict[str, Any] = (
        read_baselines(before) if (before / BASELINES_FILE).is_file() else {}
    )  # for int: whether its base is known, and which stacks are gone
    now = estimate(templates_in(after), prices)
    if known.get("int_known") is False:
        return f"- {name}: **${now.total:,.2f}/month** ({against} could not be synthesised: no change shown)"
    line = change_line(name, estimate(templates_in(before), prices), now, against)
    gone = known.get("gone") or []
    return line + (f"; {len(gone)} stack(s) no longer defined, not counted" if gone else "")


if __name__ == "__main__":  # python -m infra.cost: the command line, which imports this module
    from infra.cost_cli import main

    sys.exit(main())
