"""One-time set-up per AWS account: GitHub's OIDC provider and the stage's deploy role, so that the
workflows need no long-lived AWS keys (README: one-time set-up).

Deployed by hand, once per account: one stack at a time, each with the credentials of its own account
(the stage's `account` in config/project.yaml), e.g. with one AWS CLI profile per account:

    AWS_PROFILE=<dev>  npx cdk deploy --app ".venv/bin/python oidc_app.py" <project>-github-oidc-feature
    AWS_PROFILE=<int>  npx cdk deploy --app ".venv/bin/python oidc_app.py" <project>-github-oidc-int
    AWS_PROFILE=<prd>  npx cdk deploy --app ".venv/bin/python oidc_app.py" <project>-github-oidc-prd

Not `--all`: the three stacks live in three accounts, and one set of credentials belongs to one of them.

An account holds GitHub's provider once, and most accounts GitHub deploys to have it already. By default
(`github_oidc_provider: ensure`) the stack asks IAM to create it and takes "already exists" as success,
then trusts it by its ARN (IAM names a provider after its host, so the ARN is known without a look-up):
the same stack deploys in an account with or without one, and never deletes it. `import` only uses an
existing one; `create` makes the stack own it (retained when the stack is deleted, since other roles of
the account may trust it by then).

Each role trusts only this repository's jobs that run in the stage's GitHub environments
(`repo:<owner>/<repo>:environment:<env>`); the dev role also trusts pull requests (the PR diff).
The role may assume the CDK bootstrap roles (which do the deploying) and run the lifecycle module.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Environment, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.config import ProjectConfig, StageSettings
from infra.nag import acknowledge
from infra.naming import deploy_role_name
from infra.smoke import CHECK_CONTRACT
from infra.stack_outputs import INVOKED_BY_SMOKE_CHECK_TAG
from infra.workspace import Stage

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_URL = f"https://{GITHUB_OIDC_HOST}"
STS_AUDIENCE = "sts.amazonaws.com"
MAX_SESSION = Duration.hours(2)
"""The longest a workflow job may hold a deploy role's credentials (a janitor destroying several workspaces,
a first prd deploy); each job asks for as long as its own timeout (role-duration-seconds)."""
AWS_CUSTOM_RESOURCE_FUNCTION = "AWS679f53fac002430cb0da5b7982bd2287"
"""The construct ID CDK gives the singleton function behind every AwsCustomResource of a stack."""
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


def github_provider_arn(account: str, partition: str = "aws") -> str:
    """The ARN of GitHub's OIDC provider in `account`: IAM names a provider after its URL's host."""
    return f"arn:{partition}:iam::{account}:oidc-provider/{GITHUB_OIDC_HOST}"


def github_provider(scope: Stack, settings: StageSettings) -> tuple[iam.IOpenIdConnectProvider, Construct | None]:
    """GitHub's provider of the stage's account, and what must exist before a role can trust it: ensured
    (the default: created if missing, by a call that tolerates "already exists"), imported, or created
    by the stack."""
    if settings.github_oidc_provider == "create":
        provider = iam.OidcProviderNative(scope, "GitHub", url=GITHUB_OIDC_URL, client_ids=[STS_AUDIENCE])
        provider.apply_removal_policy(RemovalPolicy.RETAIN)  # other roles of the account may trust it
        return provider, None  # type: ignore[return-value]  # jsii: it has the provider ARN the principal needs
    arn = github_provider_arn(settings.account, scope.partition)
    imported = iam.OpenIdConnectProvider.from_open_id_connect_provider_arn(scope, "GitHub", arn)
    if settings.github_oidc_provider == "import":
        return imported, None
    return imported, _ensure_provider(scope, arn)


def _ensure_provider(scope: Stack, arn: str) -> Construct:
    """CreateOpenIDConnectProvider once, at stack creation; "already exists" is success (the account's
    provider is then used as it is). Nothing on delete: other roles of the account may trust it."""
    create = cr.AwsSdkCall(
        service="IAM", action="createOpenIDConnectProvider",
        parameters={"Url": GITHUB_OIDC_URL, "ClientIDList": [STS_AUDIENCE]},
        physical_resource_id=cr.PhysicalResourceId.of(arn), ignore_error_codes_matching="EntityAlreadyExists")
    ensured = cr.AwsCustomResource(
        scope, "EnsureGitHubProvider", on_create=create, install_latest_aws_sdk=False,
        policy=cr.AwsCustomResourcePolicy.from_statements([iam.PolicyStatement(
            actions=["iam:CreateOpenIDConnectProvider"], resources=[arn])]))
    provider_function = scope.node.find_child(AWS_CUSTOM_RESOURCE_FUNCTION)  # CDK's singleton for the call
    acknowledge(provider_function.node.find_child("ServiceRole").node.default_child, "IAM4",
                finding="Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
                reason="CDK's function behind the one-time call that ensures GitHub's OIDC provider: the AWS "
                "managed policy only lets it write its own logs.")
    return ensured


class GitHubDeployStack(Stack):
    def __init__(self, scope: Construct, config: ProjectConfig, stage: Stage) -> None:
        settings = config.stage(stage)
        super().__init__(scope, f"{config.project}-github-oidc-{stage.value}",
                         env=Environment(account=settings.account, region=settings.region),
                         description=f"GitHub OIDC provider and {stage.value} deploy role of {config.project}",
                         termination_protection=True)
        provider, provider_ready = github_provider(self, settings)
        principal = iam.OpenIdConnectPrincipal(provider, conditions={
            "StringEquals": {"token.actions.githubusercontent.com:aud": STS_AUDIENCE},
            "StringLike": {"token.actions.githubusercontent.com:sub": trusted_subjects(config.github_repository,
                                                                                    stage)},
        })
        role = iam.Role(self, "DeployRole", role_name=deploy_role_name(config.project, stage.value),
                        assumed_by=principal, max_session_duration=MAX_SESSION,
                        description=f"GitHub Actions of {config.github_repository} deploying {stage.value}")
        if provider_ready is not None:
            role.node.add_dependency(provider_ready)  # IAM refuses a trust in a provider that does not exist
        bootstrap_roles = f"arn:aws:iam::{settings.account}:role/cdk-hnb659fds-*-role-{settings.account}-*"
        role.add_to_policy(iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[bootstrap_roles]))
        # the lifecycle module: find stacks by tag, read templates (PR diff), empty and delete feature stacks
        role.add_to_policy(iam.PolicyStatement(actions=["cloudformation:DescribeStacks", "cloudformation:GetTemplate",
                                                        "cloudformation:ListStackResources"], resources=["*"]))
        smoke_findings = _allow_the_smoke_check(role, config.project, settings)
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
            *smoke_findings,
        ):
            acknowledge(policy, "IAM5", finding=finding, reason=reason)
        CfnOutput(self, "DeployRoleArn", value=role.role_arn)


def _allow_the_smoke_check(role: iam.Role, project: str, settings: StageSettings) -> list[tuple[str, str]]:
    """What `python -m infra.smoke` does after a deploy, with the same role: land a file of the check-only
    dataset, invoke ingest, follow the pipeline execution, look under curated. Returns the wildcard
    findings with their reasons (the names are generated per workspace)."""
    region, account = settings.region, settings.account
    check_prefix = CHECK_CONTRACT  # <dataset>/<table>: the landing, raw and curated prefix of check data
    buckets = f"arn:aws:s3:::{project}-*"
    functions = f"arn:aws:lambda:{region}:{account}:function:{project}-*"
    machines = f"arn:aws:states:{region}:{account}:stateMachine:{project}-*-pipeline"
    executions = f"arn:aws:states:{region}:{account}:execution:{project}-*-pipeline:*"
    same_account = {"StringEquals": {"aws:ResourceAccount": account}}
    role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[f"{buckets}/{check_prefix}/*"],
                                           conditions=same_account))
    role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[buckets], conditions={
        **same_account, "StringLike": {"s3:prefix": f"{check_prefix.split('/')[0]}/*"}}))
    tag, value = INVOKED_BY_SMOKE_CHECK_TAG  # ingest only: not any other function of the project
    role.add_to_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[functions], conditions={
        "StringEquals": {"aws:ResourceTag/project": project, f"aws:ResourceTag/{tag}": value}}))
    role.add_to_policy(iam.PolicyStatement(actions=["states:ListExecutions"], resources=[machines]))
    role.add_to_policy(iam.PolicyStatement(actions=["states:DescribeExecution", "states:GetExecutionHistory"],
                                           resources=[executions]))
    why = "The deploy smoke check (infra/smoke.py) of a workspace whose names are generated per workspace: "
    return [
        (f"Resource::{buckets}/{check_prefix}/*", why + "it lands its check file under the check-only "
         "dataset's prefix, nowhere else."),
        (f"Resource::{functions}", why + "it invokes the workspace's ingest function, the one function tagged "
         f"{'='.join(INVOKED_BY_SMOKE_CHECK_TAG)}."),
        (f"Resource::{machines}", why + "it lists the executions of the workspace's pipeline."),
        (f"Resource::{executions}", why + "it reads the execution of its own check file."),
    ]


def build_oidc_stacks(app: Construct, config: ProjectConfig) -> list[GitHubDeployStack]:
    return [GitHubDeployStack(app, config, stage) for stage in Stage]
