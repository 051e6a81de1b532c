"""The OIDC set-up: each deploy role trusts only this repository's jobs in its stage's environments."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Template

from infra.oidc import build_oidc_stacks
from infra.platform import create_app
from infra.workspace import Stage


@pytest.fixture(scope="module")
def templates(config, tmp_path_factory):
    app = create_app(outdir=str(tmp_path_factory.mktemp("oidc")))
    stacks = build_oidc_stacks(app, config)
    app.synth()  # cdk-nag included: fails on any unacknowledged finding
    return {stage: Template.from_stack(stack) for stage, stack in zip(Stage, stacks, strict=True)}


@pytest.mark.parametrize(("stage", "subjects"), [
    (Stage.FEATURE, ["environment:deploy-feature", "environment:destroy-feature-workspace", "pull_request"]),
    (Stage.INT, ["environment:deploy-int"]),
    (Stage.PRD, ["environment:deploy-prd"]),
])
def test_each_role_trusts_only_its_environments(templates, config, stage: Stage, subjects: list[str]) -> None:
    template = templates[stage]
    template.resource_count_is("AWS::IAM::OIDCProvider", 1)
    (role,) = template.find_resources("AWS::IAM::Role").values()
    assert role["Properties"]["RoleName"] == f"{config.project}-github-deploy-{stage.value}"
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    condition = statement["Condition"]
    assert condition["StringEquals"] == {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}
    sub = condition["StringLike"]["token.actions.githubusercontent.com:sub"]
    assert sorted(sub if isinstance(sub, list) else [sub]) == sorted(
        f"repo:{config.github_repository}:{s}" for s in subjects)


def test_only_the_dev_role_can_delete_stacks(templates) -> None:
    for stage, template in templates.items():
        (policy,) = template.find_resources("AWS::IAM::Policy").values()
        actions = {a for s in policy["Properties"]["PolicyDocument"]["Statement"]
                   for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
        assert ("cloudformation:DeleteStack" in actions) is (stage is Stage.FEATURE)
        assert "sts:AssumeRole" in actions
