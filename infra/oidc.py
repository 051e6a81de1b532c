"""One-time set-up per AWS account: GitHub's OIDC provider and the stage's deploy role, so that the
workflows need no long-lived AWS keys. Deployed by hand, once per account (README: one-time set-up):

    npx cdk deploy --app ".venv/bin/python oidc_app.py" --all

Each role trusts only this repository's jobs that run in the stage's GitHub environments
(`repo:<owner>/<repo>:environment:<env>`); the dev role also trusts pull requests (the PR diff).
The role may assume the CDK bootstrap roles (which do the deploying) and run the lifecycle module.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Environment, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config import ProjectConfig
from infra.nag import acknowledge
from infra.naming import deploy_role_name
from infra.workspace import Stage

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
ENVIRONMENTS = {
    Stage.FEATURE: ("deploy-feature", "destroy-feature-workspace"),
    Stage.INT: ("deploy-int",),
    Stage.PRD: ("deploy-prd",),
}


def trusted_subjects(repository: str, stage: Stage) -> list[str]:
    subjects = [f"repo:{repository}:environment:{env}" for env in ENVIRONMENTS[stage]]
    if stage is Stage.FEATURE:
        subjects.append(f"repo:{repository}:pull_request")  # the PR diff reads what is deployed
    return subjects


class GitHubDeployStack(Stack):
    def __init__(self, scope: Construct, config: ProjectConfig, stage: Stage) -> None:
        settings = config.stage(stage)
        super().__init__(scope, f"{config.project}-github-oidc-{stage.value}",
                         env=Environment(account=settings.account, region=settings.region),
                         description=f"GitHub OIDC provider and {stage.value} deploy role of {config.project}",
                         termination_protection=True)
        provider = iam.OidcProviderNative(self, "GitHub", url=GITHUB_OIDC_URL, client_ids=["sts.amazonaws.com"])
        principal = iam.OpenIdConnectPrincipal(provider, conditions={
            "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
            "StringLike": {"token.actions.githubusercontent.com:sub": trusted_subjects(config.github_repository,
                                                                                    stage)},
        })
        role = iam.Role(self, "DeployRole", role_name=deploy_role_name(config.project, stage.value),
                        assumed_by=principal, max_session_duration=Duration.hours(2),
                        description=f"GitHub Actions of {config.github_repository} deploying {stage.value}")
        bootstrap_roles = f"arn:aws:iam::{settings.account}:role/cdk-hnb659fds-*-role-{settings.account}-*"
        role.add_to_policy(iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[bootstrap_roles]))
        # the lifecycle module: find stacks by tag, read templates (PR diff), empty and delete feature stacks
        role.add_to_policy(iam.PolicyStatement(actions=["cloudformation:DescribeStacks", "cloudformation:GetTemplate",
                                                        "cloudformation:ListStackResources"], resources=["*"]))
        if stage is Stage.FEATURE:
            project_stacks = f"arn:aws:cloudformation:{settings.region}:{settings.account}:stack/{config.project}-*"
            role.add_to_policy(iam.PolicyStatement(actions=["cloudformation:DeleteStack"], resources=[project_stacks]))
            role.add_to_policy(iam.PolicyStatement(
                actions=["s3:ListBucketVersions", "s3:DeleteObject", "s3:DeleteObjectVersion"],
                resources=[f"arn:aws:s3:::{config.project}-*"],
                conditions={"StringEquals": {"aws:ResourceAccount": settings.account}}))
            role.add_to_policy(iam.PolicyStatement(actions=["ecr:ListImages", "ecr:BatchDeleteImage"],
                                                   resources=[f"arn:aws:ecr:{settings.region}:{settings.account}:"
                                                              "repository/*"]))
        policy = role.node.find_child("DefaultPolicy").node.default_child
        for finding, reason in (
            (f"Resource::{bootstrap_roles}", "Assuming the CDK bootstrap roles (deploy, file/image publishing, "
             "lookup) of this account: their names end in the region and a qualifier."),
            ("Resource::*", "CloudFormation's read actions (DescribeStacks, GetTemplate, ListStackResources) "
             "find a workspace's stacks by tag across the account; they read, never change."),
            (f"Resource::arn:aws:cloudformation:{settings.region}:{settings.account}:stack/{config.project}-*",
             "Deleting this project's feature stacks (the destroy workflow); the names are per branch."),
            (f"Resource::arn:aws:s3:::{config.project}-*", "Emptying this project's buckets before their "
             "stack is deleted; bucket names are generated per workspace."),
            (f"Resource::arn:aws:ecr:{settings.region}:{settings.account}:repository/*",
             "Emptying image repositories of a destroyed workspace, found through its stack's resources."),
        ):
            acknowledge(policy, "IAM5", finding=finding, reason=reason)
        CfnOutput(self, "DeployRoleArn", value=role.role_arn)


def build_oidc_stacks(app: Construct, config: ProjectConfig) -> list[GitHubDeployStack]:
    return [GitHubDeployStack(app, config, stage) for stage in Stage]
