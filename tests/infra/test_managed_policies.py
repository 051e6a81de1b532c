"""int and prd have no inline policy (HIPAA Security, NIST 800-53: IAMNoInlinePolicy): CDK's inline policies are
replaced by managed ones with the same grants, and each fits IAM's limits on managed policies."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template

from infra.invariants.managed_policy_limits import MANAGED_POLICY_MAX_CHARS, managed_policy_limits, policy_size
from infra.managed_policies import MANAGED_SUFFIX, inline_policies_to_managed
from infra.nag import acknowledge
from infra.workspace import Stage


def _bare_stack() -> tuple[App, Stack, iam.Role, sqs.Queue]:
    app = App()
    stack = Stack(app, "Bare")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_principal_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=["*"]))
    queue = sqs.Queue(stack, "Queue")
    queue.node.add_dependency(role)  # as a Lambda function depends on its role and the role's policy
    iam.Policy(stack, "Unattached").add_statements(iam.PolicyStatement(actions=["sqs:*"], resources=["*"]))
    return app, stack, role, queue


def test_the_inline_policy_becomes_a_managed_one_with_the_same_grants() -> None:
    _, stack, role, _ = _bare_stack()
    before = Template.from_stack(_bare_stack()[1]).find_resources("AWS::IAM::Policy")
    ((inline_id, inline),) = before.items()
    acknowledge(role.node.find_child("DefaultPolicy").node.default_child, "SQS4", reason="x" * 60)
    inline_policies_to_managed(stack)
    template = Template.from_stack(stack)
    assert template.find_resources("AWS::IAM::Policy") == {}
    ((managed_id, managed),) = template.find_resources("AWS::IAM::ManagedPolicy").items()
    assert managed_id == inline_id + MANAGED_SUFFIX, "a new logical ID: CloudFormation cannot change a type"
    assert managed["Properties"]["PolicyDocument"] == inline["Properties"]["PolicyDocument"]
    assert managed["Properties"]["Roles"] == inline["Properties"]["Roles"]
    assert "PolicyName" not in managed["Properties"]
    (queue,) = template.find_resources("AWS::SQS::Queue").values()
    assert managed_id in queue["DependsOn"], "what depended on the role's policy still does"
    converted = role.node.find_child("DefaultPolicy").node.default_child
    assert any(e.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY for e in converted.node.metadata), (
        "the acknowledgement on the inline policy is carried over"
    )


def test_synthesised_int_and_prd_have_only_managed_policies_within_iams_limits(app_and_workspaces) -> None:
    _, workspaces = app_and_workspaces
    for stage, workspace in workspaces.items():
        findings = managed_policy_limits(
            {s.stack_name: t.to_json() for s, t in ((workspace.stacks[c], t) for c, t in workspace.templates.items())}
        )
        if stage.is_persistent:
            assert findings == [], (stage, findings)
        else:  # a feature workspace keeps CDK's inline policies: the rule sees them
            assert any("an inline policy" in f for f in findings)
    managed = [
        r
        for t in workspaces[Stage.PRD].templates.values()
        for r in t.find_resources("AWS::IAM::ManagedPolicy").values()
    ]
    largest = max(policy_size(r["Properties"]["PolicyDocument"]) for r in managed)
    assert largest < MANAGED_POLICY_MAX_CHARS


def _role_with(*policies: dict[str, Any]) -> dict[str, Any]:
    resources = {"Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}}}
    for index, document in enumerate(policies):
        resources[f"P{index}"] = {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {"Roles": [{"Ref": "Role"}], "PolicyDocument": document},
        }
    return {"app": {"Resources": resources}}


def _document(statements: int) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": {"Fn::GetAtt": [f"B{i}", "Arn"]}}
            for i in range(statements)
        ],
    }


def test_a_policy_over_the_size_limit_is_named() -> None:
    assert managed_policy_limits(_role_with(_document(10))) == []
    (finding,) = managed_policy_limits(_role_with(_document(60)))
    assert finding.startswith("app/P0: about") and "over IAM's 6144" in finding


@pytest.mark.parametrize(("count", "over"), [(10, False), (11, True)])
def test_more_than_ten_managed_policies_on_a_role_is_named(count: int, over: bool) -> None:
    findings = managed_policy_limits(_role_with(*[_document(1)] * count))
    assert findings == ([f"app/Role: {count} managed policies, over IAM's default quota of 10"] if over else [])


def test_inline_policies_of_either_kind_are_named() -> None:
    templates = _role_with()
    templates["app"]["Resources"]["Role"]["Properties"]["Policies"] = [{"PolicyName": "p", "PolicyDocument": {}}]
    templates["app"]["Resources"]["Inline"] = {"Type": "AWS::IAM::Policy", "Properties": {}}
    assert managed_policy_limits(templates) == [
        "app/Inline: an inline policy (AWS::IAM::Policy)",
        "app/Role: inline policies in the role (Policies)",
    ]
