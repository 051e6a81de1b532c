"""The workflows' Python steps run with the credentials of the role that runs them in GitHub, in moto with
IAM enforcement on: the roles are made from the synthesised OIDC stack's policies, assumed through STS,
and each step (guard, find, PR baselines, destroy) runs as that role. A missing action fails with the
action's name; the PR and deploy roles are refused a delete.

moto's IAM evaluator knows actions, not resources or conditions: a call carries resource "*", which an
Allow on a specific ARN never matches, and a condition without a context value denies. `actions_only`
closes that gap (an Allow's resource and conditions count as met, a Deny on specific resources does not
apply); resources and conditions are checked in tests/workflows/test_role_calls.py."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count
from moto.iam.access_control import IAMPolicyStatement, PermissionResult

from infra import lifecycle
from tests.workflows.test_lifecycle import BUCKET_TEMPLATE, PROJECT, deploy
from tests.workflows.test_role_calls import role_policies  # noqa: F401  (the synthesised roles, a fixture)

REGION = "eu-west-1"
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@pytest.fixture
def actions_only(monkeypatch) -> None:
    evaluate = IAMPolicyStatement.is_action_permitted

    def is_action_permitted(self: IAMPolicyStatement, action: str, resource: str = "*", principal: Any = None,
                            incoming_condition_values: Any = None) -> PermissionResult:
        statement = dict(self._statement)
        if statement.get("Effect") == "Deny" and statement.get("Resource") not in (None, "*", ["*"]):
            return PermissionResult.NEUTRAL  # a deny of named resources: the static test's part
        statement.pop("Condition", None)
        if statement.get("Resource"):
            statement["Resource"] = "*"
        return evaluate(IAMPolicyStatement(statement), action, resource, principal, incoming_condition_values)

    monkeypatch.setattr(IAMPolicyStatement, "is_action_permitted", is_action_permitted)


class Account:
    """The admin who sets the account up, and a session per workflow role."""

    def __init__(self, role_statements: dict[str, list[dict]]) -> None:
        iam = boto3.client("iam", region_name=REGION)  # the unauthenticated calls: create the admin
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(ADMIN))
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        self.admin = boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                                   region_name=REGION)
        admin_arn = self.admin.client("sts").get_caller_identity()["Arn"]
        # In GitHub the trust is OIDC; here the admin assumes the roles. moto compares a trust's principal
        # literally, so it names the admin (the account root, which AWS accepts, moto refuses).
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                         "Principal": {"AWS": admin_arn}}]}
        self.arns = {}
        for kind, statements in role_statements.items():
            role = self.admin.client("iam").create_role(RoleName=f"github-{kind}",
                                                        AssumeRolePolicyDocument=json.dumps(trust))["Role"]
            self.admin.client("iam").put_role_policy(RoleName=f"github-{kind}", PolicyName="job",
                                                     PolicyDocument=json.dumps({"Version": "2012-10-17",
                                                                                "Statement": statements}))
            self.arns[kind] = role["Arn"]

    def session(self, kind: str) -> boto3.Session:
        sts = self.admin.client("sts")
        credentials = sts.assume_role(RoleArn=self.arns[kind], RoleSessionName="job")["Credentials"]
        return boto3.Session(aws_access_key_id=credentials["AccessKeyId"], region_name=REGION,
                             aws_secret_access_key=credentials["SecretAccessKey"],
                             aws_session_token=credentials["SessionToken"])


def denied(call) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    assert caught.value.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException"), caught.value
    return str(caught.value)


@set_initial_no_auth_action_count(3)
def run_the_workflow_steps(statements: dict[str, list[dict]], tmp_path) -> dict[str, Any]:
    with mock_aws():
        account = Account(statements)
        cfn = account.admin.client("cloudformation")
        deploy(cfn, "we-7-x", "storage", branch="feature/WEDATAIN-7-x", template=BUCKET_TEMPLATE)
        deploy(cfn, "we-7-x", "etl", branch="feature/WEDATAIN-7-x")
        bucket = cfn.describe_stack_resources(StackName=f"{PROJECT}-we-7-x-storage")["StackResources"][0]
        account.admin.client("s3").put_object(Bucket=bucket["PhysicalResourceId"], Key="k", Body=b"v")

        found: dict[str, Any] = {}
        pr = account.session("pr")
        found["guard"] = [s.name for s in lifecycle.guard_deploy(pr.client("cloudformation"), PROJECT, "we-7-x",
                                                                 "feature/WEDATAIN-7-x")]
        found["baselines"] = lifecycle.write_baselines(pr.client("cloudformation"), PROJECT, "we-7-x",
                                                       [f"{PROJECT}-we-7-x-etl"], tmp_path)
        found["pr_delete"] = denied(lambda: pr.client("cloudformation").delete_stack(
            StackName=f"{PROJECT}-we-7-x-etl"))
        deploy_role = account.session("deploy")
        found["deploy_guard"] = lifecycle.guard_deploy(deploy_role.client("cloudformation"), PROJECT, "we-7-x",
                                                       "feature/WEDATAIN-7-x")
        found["deploy_delete"] = denied(lambda: deploy_role.client("s3").delete_object(
            Bucket=bucket["PhysicalResourceId"], Key="k"))
        found["destroy"] = lifecycle.destroy_workspace(account.session("destroy").client, PROJECT, "we-7-x")
        found["left"] = lifecycle.find_workspace(cfn, PROJECT, "we-7-x")
        return found


def test_each_role_runs_its_steps_and_no_more_with_iam_enforced(role_policies, actions_only, tmp_path,  # noqa: F811
                                                                monkeypatch) -> None:
    from infra.workspace import Stage

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "bootstrap")  # only the first three (admin) calls go unchecked
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "bootstrap")
    statements = {kind: role_policies[(kind, Stage.FEATURE)] for kind in ("deploy", "pr", "destroy")}
    found = run_the_workflow_steps(statements, tmp_path)
    assert sorted(found["guard"]) == [f"{PROJECT}-we-7-x-etl", f"{PROJECT}-we-7-x-storage"]
    assert found["baselines"] == {f"{PROJECT}-we-7-x-etl": f"deployed ({PROJECT}-we-7-x-etl)"}
    assert "cloudformation:DeleteStack" in found["pr_delete"]
    assert "DeleteObject operation: Access Denied" in found["deploy_delete"]
    assert found["destroy"].stacks == [f"{PROJECT}-we-7-x-etl", f"{PROJECT}-we-7-x-storage"]
    assert found["left"] == []


@set_initial_no_auth_action_count(3)
def destroy_as(statements: list[dict]) -> None:
    with mock_aws():
        account = Account({"destroy": statements})
        deploy(account.admin.client("cloudformation"), "we-7-x", "etl", branch="feature/WEDATAIN-7-x")
        lifecycle.destroy_workspace(account.session("destroy").client, PROJECT, "we-7-x")


def test_the_enforcement_is_on_and_names_the_missing_action(actions_only, monkeypatch) -> None:
    """A destroy role without DeleteStack is refused, naming the action (moto does not just allow all)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "bootstrap")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "bootstrap")
    reader = [{"Effect": "Allow", "Action": ["cloudformation:DescribeStacks", "cloudformation:ListStackResources"],
               "Resource": "arn:aws:cloudformation:*"}]
    with pytest.raises(ClientError, match="not authorized to perform: cloudformation:DeleteStack"):
        destroy_as(reader)
    destroy_as([{**reader[0], "Action": [*reader[0]["Action"], "cloudformation:DeleteStack"]}])
