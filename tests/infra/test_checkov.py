"""checkov on the synthesised templates: no failed check that is not skipped with a reason."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CONFIG = ROOT / ".checkov.yaml"
CDK_HANDLERS = (
    "AWS::Lambda::Function.CustomS3AutoDeleteObjectsCustomResourceProviderHandler",
    "AWS::Lambda::Function.BucketNotificationsHandler",
)


def test_checkov_finds_nothing_unskipped(cdk_out) -> None:
    assert CHECKOV.exists(), "checkov is installed by `make test` into .venv-checkov (it pins an old boto3)"
    run = subprocess.run(
        [str(CHECKOV), "-d", str(cdk_out), "--config-file", str(CONFIG), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    reports = json.loads(run.stdout)
    (report,) = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{f['check_id']} {f['check_name']}: {f['resource']} in {f['file_path']}"
        for f in report["results"]["failed_checks"]
    ]
    assert failed == [], "\n".join(failed)
    assert report["summary"]["passed"] > 50, "checkov really looked at the templates"
    resource_level = {
        "CKV_AWS_18": ("AWS::S3::Bucket.AccessLogs",),
        "CKV_AWS_115": CDK_HANDLERS,
        "CKV_AWS_117": CDK_HANDLERS,
        "CKV_AWS_116": (
            *CDK_HANDLERS,
            "AWS::Lambda::Function.Dispatch",
            "AWS::Lambda::Function.Validate",
            "AWS::Lambda::Function.Gate",
            "AWS::Lambda::Function.ServiceFunction",  # serverless: invoked through its function URL
        ),
        "CKV_AWS_195": ("AWS::Glue::Job.RawToStaging", "AWS::Glue::Job.StagingToCurated"),
        "CKV_AWS_2": ("AWS::ElasticLoadBalancingV2::Listener.ServiceLBPublicListener",),
        "CKV_AWS_103": ("AWS::ElasticLoadBalancingV2::Listener.ServiceLBPublicListener",),
        "CKV_AWS_260": ("AWS::EC2::SecurityGroup.ServiceLBSecurityGroup",),
        "CKV_AWS_119": ("AWS::DynamoDB::Table.Ledger",),  # the run ledger: DynamoDB's own key, no data values
        "CKV_AWS_65": ("AWS::ECS::Cluster.Cluster",),  # Container Insights off by config (feature stages: cost)
        "CKV_AWS_26": ("AWS::SNS::Topic.AlarmTopic",),  # no topic key by config (feature stages: cost)
        # an extractor in a VPC: the network interfaces Lambda manages take no narrower resource
        "CKV_AWS_111": ("AWS::IAM::ManagedPolicy.ExtractorClinicAppointmentsExtractRoleDefaultPolicy",),
        # a feature stage's created secret: no customer-managed key there (cost, deletion window)
        "CKV_AWS_149": ("AWS::SecretsManager::Secret.ExtractorClinicAppointmentsSecret",),
    }
    for skipped in report["results"]["skipped_checks"]:
        assert skipped["resource"].startswith(resource_level[skipped["check_id"]]), skipped


def test_every_resource_level_skip_carries_a_reason(cdk_out) -> None:
    skips = [
        skip
        for path in cdk_out.glob("*.template.json")
        for resource in json.loads(path.read_text())["Resources"].values()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for skip in skips:
        assert len(skip["comment"]) >= 60, skip


def test_every_configured_skip_carries_a_reason() -> None:
    lines = CONFIG.read_text().splitlines()
    configured = yaml.safe_load(CONFIG.read_text())["skip-check"]
    for check in configured:
        index = next(i for i, line in enumerate(lines) if line.strip() == f"- {check}")
        assert lines[index - 1].strip().startswith("#"), f"{check} has no reason above it in .checkov.yaml"
