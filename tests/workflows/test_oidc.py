"""The OIDC set-up: each deploy role trusts only this repository's jobs in its stage's environments, and
GitHub's provider is imported where the account has it (the default) or created where asked."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
import yaml
from aws_cdk.assertions import Template

from infra.config import DEFAULT_CONFIG_PATH, ConfigError, ProjectConfig, parse_config
from infra.oidc import GITHUB_OIDC_URL, build_oidc_stacks, github_provider_arn
from infra.platform import create_app
from infra.workspace import Stage

RAW: dict[str, Any] = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())


def _config(change=lambda raw: None) -> ProjectConfig:
    raw = copy.deepcopy(RAW)
    change(raw)
    return parse_config(raw, source="project.yaml")


def _synth(config: ProjectConfig, outdir: str) -> dict[Stage, dict[str, Any]]:
    app = create_app(outdir=outdir)
    stacks = build_oidc_stacks(app, config)
    app.synth()  # cdk-nag included: fails on any unacknowledged finding
    return {stage: Template.from_stack(stack).to_json() for stage, stack in zip(Stage, stacks, strict=True)}


@pytest.fixture(scope="module")
def templates(config, tmp_path_factory) -> dict[Stage, dict[str, Any]]:
    """The shipped config: every stage ensures the provider (created if missing, used if there)."""
    return _synth(config, str(tmp_path_factory.mktemp("oidc")))


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[Stage, dict[str, Any]]:
    def import_everywhere(raw: dict[str, Any]) -> None:
        raw["defaults"]["github_oidc_provider"] = "import"

    return _synth(_config(import_everywhere), str(tmp_path_factory.mktemp("oidc-imported")))


@pytest.fixture(scope="module")
def created(tmp_path_factory) -> dict[Stage, dict[str, Any]]:
    def create_everywhere(raw: dict[str, Any]) -> None:
        raw["defaults"]["github_oidc_provider"] = "create"

    return _synth(_config(create_everywhere), str(tmp_path_factory.mktemp("oidc-created")))


def _of_type(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def _deploy_role(template: dict[str, Any]) -> dict[str, Any]:
    (role,) = [r for k, r in _of_type(template, "AWS::IAM::Role").items() if k.startswith("DeployRole")]
    return role


def _trust(template: dict[str, Any]) -> dict[str, Any]:
    role = _deploy_role(template)
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    return statement


def test_the_shipped_default_ensures_the_provider(config) -> None:
    assert {config.stage(stage).github_oidc_provider for stage in Stage} == {"ensure"}


@pytest.mark.parametrize("stage", list(Stage), ids=lambda s: s.value)
def test_an_ensured_provider_is_created_if_missing_never_deleted_and_trusted_once_it_exists(
    templates, config, stage: Stage
) -> None:
    """An account with GitHub's provider and one without both deploy the same stack: the create call takes
    "already exists" as success, and the role (IAM checks the provider it trusts) waits for it."""
    template = templates[stage]
    arn = github_provider_arn(config.stage(stage).account)
    assert _of_type(template, "AWS::IAM::OIDCProvider") == {}
    ((logical_id, ensure),) = _of_type(template, "Custom::AWS").items()
    create = json.loads(ensure["Properties"]["Create"])
    assert (create["service"], create["action"]) == ("IAM", "createOpenIDConnectProvider")
    assert create["parameters"] == {"Url": GITHUB_OIDC_URL, "ClientIDList": ["sts.amazonaws.com"]}
    assert create["ignoreErrorCodesMatching"] == "EntityAlreadyExists"
    assert create["physicalResourceId"] == {"id": arn}
    assert "Delete" not in ensure["Properties"] and "Update" not in ensure["Properties"], "never deleted"
    assert logical_id in _deploy_role(template)["DependsOn"]
    assert _trust(template)["Principal"] == {"Federated": arn}
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for k, p in _of_type(template, "AWS::IAM::Policy").items()
        if k.startswith("EnsureGitHubProvider")
    ]
    assert policy == [{"Action": "iam:CreateOpenIDConnectProvider", "Effect": "Allow", "Resource": arn}]


@pytest.mark.parametrize("stage", list(Stage), ids=lambda s: s.value)
def test_an_imported_provider_is_trusted_by_its_arn_and_not_created(imported, config, stage: Stage) -> None:
    template = imported[stage]
    assert _of_type(template, "AWS::IAM::OIDCProvider") == {} and _of_type(template, "Custom::AWS") == {}
    expected = f"arn:aws:iam::{config.stage(stage).account}:oidc-provider/token.actions.githubusercontent.com"
    assert github_provider_arn(config.stage(stage).account) == expected
    assert _trust(template)["Principal"] == {"Federated": expected}


@pytest.mark.parametrize("stage", list(Stage), ids=lambda s: s.value)
def test_a_created_provider_is_githubs_trusted_by_reference_and_retained(created, stage: Stage) -> None:
    template = created[stage]
    ((logical_id, provider),) = _of_type(template, "AWS::IAM::OIDCProvider").items()
    assert provider["Properties"]["Url"] == GITHUB_OIDC_URL
    assert provider["Properties"]["ClientIdList"] == ["sts.amazonaws.com"]
    assert provider["DeletionPolicy"] == provider["UpdateReplacePolicy"] == "Retain"
    assert _trust(template)["Principal"] == {"Federated": {"Ref": logical_id}}  # Ref is its ARN


def _role(template: dict[str, Any], prefix: str) -> dict[str, Any]:
    (role,) = [r for k, r in _of_type(template, "AWS::IAM::Role").items() if k.startswith(prefix)]
    return role


def _subjects(role: dict[str, Any]) -> list[str]:
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"]["StringEquals"] == {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}
    sub = statement["Condition"]["StringLike"]["token.actions.githubusercontent.com:sub"]
    return sorted(sub if isinstance(sub, list) else [sub])


def _actions(template: dict[str, Any], prefix: str, effect: str = "Allow") -> set[str]:
    (policy,) = [p for k, p in _of_type(template, "AWS::IAM::Policy").items() if k.startswith(prefix)]
    return {
        a
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == effect
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }


ROLES = {  # role construct -> (name, the one subject that may assume it)
    "DeployRole": ("github-deploy-{stage}", "environment:deploy-{stage}"),
    "PullRequestRole": ("github-pr", "pull_request"),
    "DestroyRole": ("github-destroy", "environment:destroy-feature-workspace"),
}


@pytest.mark.parametrize("stage", list(Stage), ids=lambda s: s.value)
def test_each_role_trusts_only_the_jobs_of_its_kind(templates, imported, created, config, stage: Stage) -> None:
    """Roles by job: a deploy role only its stage's deploy environment, the destroy role only the destroy
    environment (both gated in GitHub), the read-only PR role pull requests. The PR, destroy roles exist in
    the feature stage's account only."""
    for template in (templates[stage], imported[stage], created[stage]):
        roles = {k: r for k, r in _of_type(template, "AWS::IAM::Role").items() if k[:-8] in ROLES}
        expected = set(ROLES) if stage is Stage.FEATURE else {"DeployRole"}
        assert {k[:-8] for k in roles} == expected
        for construct, (name, subject) in ROLES.items():
            if construct not in expected:
                continue
            role = _role(template, construct)
            assert role["Properties"]["RoleName"] == f"{config.project}-{name.format(stage=stage.value)}"
            assert _subjects(role) == [f"repo:{config.github_repository}:{subject.format(stage=stage.value)}"]
            assert role["Properties"]["MaxSessionDuration"] == 7200


def test_only_the_destroy_role_may_delete_and_the_pr_role_only_reads(templates) -> None:
    deleting = {
        "cloudformation:DeleteStack",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "ecr:BatchDeleteImage",
        "logs:DeleteLogGroup",
    }
    feature = templates[Stage.FEATURE]
    assert _actions(feature, "PullRequestRole") == {"cloudformation:DescribeStacks", "cloudformation:GetTemplate"}
    assert deleting <= _actions(feature, "DestroyRole")
    for template in templates.values():
        assert not deleting & _actions(template, "DeployRole"), "a deploy role deletes nothing"
        assert "sts:AssumeRole" in _actions(template, "DeployRole")
    assert "sts:AssumeRole" not in _actions(feature, "DestroyRole") | _actions(feature, "PullRequestRole")


def test_the_destroy_role_deletes_feature_stacks_only(templates, config) -> None:
    (policy,) = [
        p for k, p in _of_type(templates[Stage.FEATURE], "AWS::IAM::Policy").items() if k.startswith("DestroyRole")
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    (delete,) = [s for s in statements if s["Action"] == "cloudformation:DeleteStack" and s["Effect"] == "Allow"]
    assert delete["Condition"] == {"StringEquals": {"aws:ResourceTag/stage": "feature"}}
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    denied = json.dumps(deny["Resource"])
    for stage in ("int", "prd"):  # a feature workspace never starts with int- or prd- (infra.workspace)
        assert f"stack/{config.project}-{stage}-*" in denied
        assert f"arn:aws:s3:::{config.project}-{stage}-*/*" in denied
        assert f"log-group:/aws/lambda/{config.project}-{stage}-*" in denied
        assert f"log-group:/aws/ecs/containerinsights/{config.project}-{stage}-*" in denied
    assert "-we-" not in denied and "feature" not in denied


def test_the_docstring_deploys_one_stack_per_account_never_all() -> None:
    import infra.oidc

    doc = infra.oidc.__doc__ or ""
    commands = [line for line in doc.splitlines() if "npx cdk deploy" in line]
    assert commands and not any("--all" in c for c in commands)
    assert {re.search(r"github-oidc-(\w+)$", c).group(1) for c in commands} == {s.value for s in Stage}


# -- config errors --------------------------------------------------------------------------------------


def _error(change) -> str:
    with pytest.raises(ConfigError) as caught:
        _config(change)
    return str(caught.value)


def test_a_stage_may_choose_create() -> None:
    config = _config(lambda raw: raw["stages"]["prd"].update(github_oidc_provider="create"))
    assert [config.stage(s).github_oidc_provider for s in Stage] == ["ensure", "ensure", "create"]


def test_an_unknown_choice_names_the_key_and_the_choices() -> None:
    message = _error(lambda raw: raw["stages"]["int"].update(github_oidc_provider="existing"))
    assert "stages.int.github_oidc_provider: got 'existing' (str)" in message
    assert "'import' or 'create'" in message and "README: one-time set-up" in message


def test_a_bad_default_names_where_it_came_from() -> None:
    message = _error(lambda raw: raw["defaults"].update(github_oidc_provider=True))
    assert "stages.feature.github_oidc_provider (inherited from defaults.github_oidc_provider): got True" in message


def test_two_stages_in_one_account_cannot_both_create_it() -> None:
    def share(raw: dict[str, Any]) -> None:
        raw["stages"]["int"]["account"] = raw["stages"]["feature"]["account"]
        raw["defaults"]["github_oidc_provider"] = "create"

    message = _error(share)
    assert "stages: feature and int share account 111111111111" in message
    assert "set github_oidc_provider: import (or ensure) in the other" in message
    assert "{" not in message, "the error names the keys, it does not dump the section"
    _config(lambda raw: raw["stages"]["int"].update(account=raw["stages"]["feature"]["account"]))  # import: fine
