"""The workflows' Python steps run with the credentials of the role that runs them in GitHub, in moto with
IAM enforcement on: the roles are made from the synthesised OIDC stack (trust and policies as they deploy),
assumed as GitHub does (AssumeRoleWithWebIdentity), and each step (guard, find, PR baselines, destroy,
the janitor's orphans) runs as that role. A missing action fails with the
action's name; the PR and deploy roles are refused a delete.

moto's IAM evaluator knows actions, not resources or conditions, and wants a signature on
AssumeRoleWithWebIdentity: infra/emulator/iam_gaps.py closes those gaps, here as in the emulator;
resources and conditions are checked in tests/workflows/test_role_calls.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count
from moto.core.authorization import ActionAuthenticatorMixin
from moto.iam.access_control import IAMPolicyStatement

from infra import pr_diff
from infra.emulator import iam_gaps
from infra.lifecycle.destroy import destroy_workspace
from infra.lifecycle.janitor import find_orphans
from infra.lifecycle.stacks import guard_deploy, list_stacks
from tests.workflows.lifecycle_helpers import BUCKET_TEMPLATE, PROJECT, deploy

ROLE_PREFIXES = {"deploy": "DeployRole", "pr": "PullRequestRole", "destroy": "DestroyRole"}

REGION = "eu-west-1"
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@pytest.fixture
def actions_only(monkeypatch) -> None:
    """moto's IAM gaps, closed as in the emulator (infra/emulator/iam_gaps.py)."""
    monkeypatch.setattr(
        IAMPolicyStatement, "is_action_permitted", iam_gaps.actions_only(IAMPolicyStatement.is_action_permitted)
    )
    monkeypatch.setattr(
        ActionAuthenticatorMixin,
        "_authenticate_and_authorize_normal_action",
        iam_gaps.public_web_identity(ActionAuthenticatorMixin._authenticate_and_authorize_normal_action),
    )


class Account:
    """The admin who sets the account up (the first, unchecked calls), the workflow roles as the OIDC stack
    makes them, and a session per role, assumed with a web identity as GitHub's jobs do."""

    def __init__(self, roles: dict[str, tuple[dict, list[dict]]]) -> None:
        iam = boto3.client("iam", region_name=REGION)
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(ADMIN))
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        self.admin = boto3.Session(
            aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"], region_name=REGION
        )
        self.arns = {}
        for kind, (trust, statements) in roles.items():
            iam = self.admin.client("iam")
            role = iam.create_role(RoleName=f"github-{kind}", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
            iam.put_role_policy(
                RoleName=f"github-{kind}",
                PolicyName="job",
                PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
            )
            self.arns[kind] = role["Arn"]

    def session(self, kind: str) -> boto3.Session:
        sts = boto3.client("sts", region_name=REGION)
        credentials = sts.assume_role_with_web_identity(
            RoleArn=self.arns[kind], RoleSessionName="github-job", WebIdentityToken="a-github-oidc-token"
        )["Credentials"]
        return boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            region_name=REGION,
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )


@pytest.fixture(scope="module")
def feature_roles(config, tmp_path_factory) -> dict[str, tuple[dict, list[dict]]]:
    """Trust and policy of each role of the feature stage's OIDC stack, as synthesised."""
    from aws_cdk.assertions import Template

    from infra.oidc import GitHubDeployStack
    from infra.platform import create_app
    from infra.workspace import Stage

    template = Template.from_stack(
        GitHubDeployStack(create_app(outdir=str(tmp_path_factory.mktemp("roles"))), config, Stage.FEATURE)
    ).to_json()["Resources"]
    roles = {}
    for kind, prefix in ROLE_PREFIXES.items():
        (role,) = [r for k, r in template.items() if r["Type"] == "AWS::IAM::Role" and k.startswith(prefix)]
        (policy,) = [r for k, r in template.items() if r["Type"] == "AWS::IAM::Policy" and k.startswith(prefix)]
        roles[kind] = (
            role["Properties"]["AssumeRolePolicyDocument"],
            policy["Properties"]["PolicyDocument"]["Statement"],
        )
    return roles


def denied(call) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    assert caught.value.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException"), caught.value
    return str(caught.value)


@set_initial_no_auth_action_count(3)
def run_the_workflow_steps(roles: dict[str, tuple[dict, list[dict]]], tmp_path) -> dict[str, Any]:
    with mock_aws():
        account = Account(roles)
        cfn = account.admin.client("cloudformation")
        deploy(cfn, "we-7-x", "storage", branch="feature/WEDATAIN-7-x", template=BUCKET_TEMPLATE)
        deploy(cfn, "we-7-x", "etl", branch="feature/WEDATAIN-7-x")
        bucket = cfn.describe_stack_resources(StackName=f"{PROJECT}-we-7-x-storage")["StackResources"][0]
        account.admin.client("s3").put_object(Bucket=bucket["PhysicalResourceId"], Key="k", Body=b"v")

        found: dict[str, Any] = {}
        pr = account.session("pr")
        found["guard"] = [
            s.name for s in guard_deploy(pr.client("cloudformation"), PROJECT, "we-7-x", "feature/WEDATAIN-7-x")
        ]
        found["baselines"] = pr_diff.write_deployed_baselines(
            pr.client("cloudformation"), [f"{PROJECT}-we-7-x-etl"], tmp_path
        )
        found["pr_delete"] = denied(lambda: pr.client("cloudformation").delete_stack(StackName=f"{PROJECT}-we-7-x-etl"))
        deploy_role = account.session("deploy")
        found["deploy_guard"] = guard_deploy(
            deploy_role.client("cloudformation"), PROJECT, "we-7-x", "feature/WEDATAIN-7-x"
        )
        found["deploy_delete"] = denied(
            lambda: deploy_role.client("s3").delete_object(Bucket=bucket["PhysicalResourceId"], Key="k")
        )
        deploy(cfn, "we-8-y", "etl", branch="feature/WEDATAIN-8-y")  # its branch is gone: the janitor's
        destroyer = account.session("destroy")
        found["destroy"] = destroy_workspace(destroyer.client, PROJECT, "we-7-x")
        orphans = find_orphans(
            list_stacks(destroyer.client("cloudformation"), PROJECT),
            ["main"],
            ttl_days=14,
            now=datetime.now(UTC),
        )
        found["janitor"] = [destroy_workspace(destroyer.client, PROJECT, o.workspace).stacks for o in orphans]
        found["left"] = list_stacks(cfn, PROJECT)
        return found


def test_each_role_runs_its_steps_and_no_more_with_iam_enforced(
    feature_roles, actions_only, tmp_path, monkeypatch
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "bootstrap")  # only the first three (admin) calls go unchecked
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "bootstrap")
    found = run_the_workflow_steps(feature_roles, tmp_path)
    assert sorted(found["guard"]) == [f"{PROJECT}-we-7-x-etl", f"{PROJECT}-we-7-x-storage"]
    assert found["baselines"] == {f"{PROJECT}-we-7-x-etl": f"deployed ({PROJECT}-we-7-x-etl)"}
    assert "cloudformation:DeleteStack" in found["pr_delete"]
    assert "DeleteObject operation: Access Denied" in found["deploy_delete"]
    assert found["destroy"].stacks == [f"{PROJECT}-we-7-x-etl", f"{PROJECT}-we-7-x-storage"]
    assert found["janitor"] == [[f"{PROJECT}-we-8-y-etl"]]
    assert found["left"] == []


@set_initial_no_auth_action_count(3)
def destroy_as(statements: list[dict]) -> None:
    with mock_aws():
        anyone = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Federated": "*"}, "Action": "sts:AssumeRoleWithWebIdentity"}
            ],
        }
        account = Account({"destroy": (anyone, statements)})
        deploy(account.admin.client("cloudformation"), "we-7-x", "etl", branch="feature/WEDATAIN-7-x")
        destroy_workspace(account.session("destroy").client, PROJECT, "we-7-x")


def test_the_enforcement_is_on_and_names_the_missing_action(actions_only, monkeypatch) -> None:
    """A destroy role without DeleteStack is refused, naming the action (moto does not just allow all)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "bootstrap")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "bootstrap")
    reader = [
        {
            "Effect": "Allow",
            "Action": ["cloudformation:DescribeStacks", "cloudformation:ListStackResources"],
            "Resource": "arn:aws:*",
        }
    ]
    with pytest.raises(ClientError, match="not authorized to perform: cloudformation:DeleteStack"):
        destroy_as(reader)
    destroy_as(
        [
            {
                **reader[0],
                "Action": [
                    *reader[0]["Action"],
                    "cloudformation:DeleteStack",
                    "cloudformation:GetTemplate",
                    "s3:ListBucketVersions",
                    "ecr:DescribeImages",
                ],
            }
        ]
    )
