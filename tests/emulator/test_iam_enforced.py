"""The lifecycle as AWS would allow it: a feature workspace and its account's OIDC stack (the workflow
roles) deployed by the real CDK CLI to the emulator (the provider imported: the custom resource that
ensures it makes moto's CreateStack answer malformed XML), then IAM enforcement switched on (moto's
`reset-auth`, the server form of INITIAL_NO_AUTH_ACTION_COUNT) and the workflows' Python steps run with
the credentials of the role that runs them in GitHub, assumed as GitHub does (AssumeRoleWithWebIdentity):
the PR role's guard, find and diff baselines, then the destroy role's destroy of the whole workspace
(versioned buckets, log groups, bootstrap assets). The first destroy meets a stack that will not go (a
subnet that is not the stack's keeps its VPC in use): the destroy role reads why (stack events), retries,
and raises the workspace alarm (sns:Publish); with the subnet gone, a second destroy as the same role
finishes. A missing action fails with its name; the PR and deploy roles are refused a delete.

moto checks actions only (infra/emulator/iam_gaps.py); resources and conditions are the static test's
(tests/workflows/test_role_calls.py)."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from infra import pr_diff
from infra.config import DEFAULT_CONFIG_PATH
from infra.emulator.inventory import workspace_resources
from infra.lifecycle.destroy import destroy_workspace
from infra.lifecycle.stacks import find_workspace, guard_deploy
from infra.naming import deploy_role_name, destroy_role_name, pr_role_name
from tests.emulator.conftest import Deployed, deployed_workspace, fargate_feature_config, physical_id

BRANCH = "feature/WEDATAIN-77-iam-enforced"
UNLIMITED = 10**9


def set_enforcement(deployed: Deployed, unchecked_calls: int) -> None:
    """After `unchecked_calls` more requests, every request is authenticated and authorised."""
    request = urllib.request.Request(
        f"{deployed.emulator.endpoint}/moto-api/reset-auth",
        data=str(unchecked_calls).encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )  # not a form: moto reads the raw body
    with urllib.request.urlopen(request, timeout=10):
        pass


def as_role(deployed: Deployed, role_name: str) -> Callable[[str], Any]:
    """A client factory with the role's credentials, assumed with a (GitHub OIDC) web identity."""
    emulator = deployed.emulator
    sts = boto3.client("sts", endpoint_url=emulator.endpoint, region_name=emulator.region)
    credentials = sts.assume_role_with_web_identity(
        RoleArn=f"arn:aws:iam::{emulator.account}:role/{role_name}",
        RoleSessionName="github-job",
        WebIdentityToken="a-github-oidc-token",
    )["Credentials"]
    session = boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=emulator.region,
    )
    return lambda service: session.client(service, endpoint_url=emulator.endpoint)


def deploy_oidc_stack(deployed: Deployed, config, workdir) -> None:
    """The feature account's one-time OIDC stack, by the CDK CLI, with the provider imported."""
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["defaults"]["github_oidc_provider"] = "import"
    imported = workdir / "project-import.yaml"
    imported.write_text(yaml.safe_dump(raw))
    deployed.cdk.run(
        "deploy",
        "--app",
        ".venv/bin/python oidc_app.py",
        "-c",
        f"config={imported}",
        "--output",
        str(workdir / "oidc.out"),
        f"{config.project}-github-oidc-feature",
        "--method=direct",
        "--require-approval",
        "never",
    )


@pytest.fixture(scope="module")
def enforced(config, tmp_path_factory) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("iam-enforced")
    # the service on Fargate: its VPC is what a subnet that is not the stack's keeps (the stack that will not go)
    fargate, path = fargate_feature_config(workdir)
    with deployed_workspace(fargate, BRANCH, workdir, path) as deployed:
        deploy_oidc_stack(deployed, config, workdir)
        s3 = deployed.emulator.client("s3")
        buckets = [
            r["PhysicalResourceId"]
            for r in deployed.emulator.client("cloudformation").describe_stack_resources(
                StackName=f"{config.project}-{deployed.target.workspace}-storage"
            )["StackResources"]
            if r["ResourceType"] == "AWS::S3::Bucket"
        ]
        for bucket in buckets:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            s3.put_object(Bucket=bucket, Key="diabetes/patients/a.csv", Body=b"v1")
            s3.put_object(Bucket=bucket, Key="diabetes/patients/a.csv", Body=b"v2")
        ec2 = deployed.emulator.client("ec2")
        vpc = physical_id(deployed, "model-service", "AWS::EC2::VPC", "Vpc")
        blocker = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.240.0/24")["Subnet"]["SubnetId"]
        found: dict[str, Any] = {"deployed": deployed, "buckets": buckets, "vpc": vpc}
        set_enforcement(deployed, 0)
        try:
            pr = as_role(deployed, pr_role_name(config.project))
            workspace = deployed.target.workspace
            found["guard"] = guard_deploy(pr("cloudformation"), config.project, workspace, BRANCH)
            found["find"] = find_workspace(pr("cloudformation"), config.project, workspace)
            found["baselines"] = pr_diff.write_deployed_baselines(
                pr("cloudformation"), deployed.stack_names(), workdir / "baselines"
            )
            found["refused"] = []
            for role, call in (
                (
                    pr_role_name(config.project),
                    lambda c: c("cloudformation").delete_stack(StackName=deployed.stack_names()[-1]),
                ),
                (
                    deploy_role_name(config.project, "feature"),
                    lambda c: c("s3").delete_object(Bucket=buckets[0], Key="diabetes/patients/a.csv"),
                ),
            ):
                with pytest.raises(ClientError) as caught:
                    call(as_role(deployed, role))
                found["refused"].append((role, caught.value.response["Error"]["Code"]))
            # no other deploy in this emulator: its assets go now (in an account, after ASSET_GRACE)
            found["stuck"] = destroy_workspace(
                as_role(deployed, destroy_role_name(config.project)),
                config.project,
                workspace,
                asset_grace=timedelta(0),
            )
            set_enforcement(deployed, UNLIMITED)
            ec2.delete_subnet(SubnetId=blocker)  # whoever held the VPC lets go
            set_enforcement(deployed, 0)
            found["destroy"] = destroy_workspace(
                as_role(deployed, destroy_role_name(config.project)),
                config.project,
                workspace,
                asset_grace=timedelta(0),
            )
        finally:
            set_enforcement(deployed, UNLIMITED)
        found["left"] = workspace_resources(deployed.emulator.client, config.project, deployed.target.workspace)
        yield found


def test_the_pr_role_reads_what_the_pr_jobs_read(enforced, config) -> None:
    names = enforced["deployed"].stack_names()
    assert sorted(s.name for s in enforced["guard"]) == sorted(names)
    assert sorted(s.name for s in enforced["find"]) == sorted(names)
    assert set(enforced["baselines"].values()) == {f"deployed ({n})" for n in names}


def test_the_pr_and_deploy_roles_are_refused_a_delete(enforced, config) -> None:
    assert [code for _, code in enforced["refused"]] == ["AccessDenied", "AccessDenied"]


def test_the_destroy_role_reports_and_alarms_a_stack_that_will_not_go(enforced, config) -> None:
    report, workspace = enforced["stuck"], enforced["deployed"].target.workspace
    service, monitoring = (f"{config.project}-{workspace}-{c}" for c in ("model-service", "monitoring"))
    (stuck,) = report.stuck
    assert (stuck.stack, stuck.status) == (service, "DELETE_FAILED") and service in report.retried
    assert [(r.type, r.physical_id) for r in stuck.resources] == [("AWS::EC2::VPC", enforced["vpc"])], (
        "the role read the stack events that say why"
    )
    assert report.kept == [monitoring]
    assert report.alarm is not None and report.alarm.get("message_id"), report.alarm
    assert sum(report.emptied.values()) >= 2 * len(enforced["buckets"]), "versioned buckets emptied as the role"


def test_the_destroy_role_finishes_the_workspace_and_nothing_is_left(enforced, config) -> None:
    report, workspace = enforced["destroy"], enforced["deployed"].target.workspace
    assert report.stuck == [] and report.stacks == [
        f"{config.project}-{workspace}-{c}" for c in ("model-service", "monitoring")
    ]
    assert enforced["left"] == {}
