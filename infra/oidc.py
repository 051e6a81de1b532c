"""One-time set-up per AWS account: GitHub's OIDC provider and the workflow roles, so that the
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

One role per job, each trusted by one subject of this repository: the stage's deploy role by its deploy
environment, and in the feature stage's account a read-only role for pull requests and a destroy role for
the destroy environment (README: one-time set-up).
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Environment, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.config import ProjectConfig, StageSettings
from infra.construct_tree import cfn_resource, default_policy
from infra.nag import acknowledge
from infra.naming import deploy_role_name, destroy_role_name, pr_role_name
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
DEPLOY_ENVIRONMENTS = {Stage.FEATURE: "deploy-feature", Stage.INT: "deploy-int", Stage.PRD: "deploy-prd"}
DESTROY_ENVIRONMENT = "destroy-feature-workspace"
PULL_REQUEST = "pull_request"


def trusted_subjects(repository: str, job: str, stage: Stage = Stage.FEATURE) -> list[str]:
    """Who may assume a role: the deploy role only its stage's deploy environment, the destroy role only
    the destroy environment (both gated in GitHub), the PR role any pull request (it only reads)."""
    subject = {
        "deploy": f"environment:{DEPLOY_ENVIRONMENTS[stage]}",
        "destroy": f"environment:{DESTROY_ENVIRONMENT}",
        "pr": PULL_REQUEST,
    }[job]
    return [f"repo:{repository}:{subject}"]


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
        return provider, None
    arn = github_provider_arn(settings.account, scope.partition)
    imported = iam.OpenIdConnectProvider.from_open_id_connect_provider_arn(scope, "GitHub", arn)
    if settings.github_oidc_provider == "import":
        return imported, None
    return imported, _ensure_provider(scope, arn)


def _ensure_provider(scope: Stack, arn: str) -> Construct:
    """CreateOpenIDConnectProvider once, at stack creation; "already exists" is success (the account's
    provider is then used as it is). Nothing on delete: other roles of the account may trust it."""
    create = cr.AwsSdkCall(
        service="IAM",
        action="createOpenIDConnectProvider",
        parameters={"Url": GITHUB_OIDC_URL, "ClientIDList": [STS_AUDIENCE]},
        physical_resource_id=cr.PhysicalResourceId.of(arn),
        ignore_error_codes_matching="EntityAlreadyExists",
    )
    ensured = cr.AwsCustomResource(
        scope,
        "EnsureGitHubProvider",
        on_create=create,
        install_latest_aws_sdk=False,
        policy=cr.AwsCustomResourcePolicy.from_statements(
            [iam.PolicyStatement(actions=["iam:CreateOpenIDConnectProvider"], resources=[arn])]
        ),
    )
    provider_function = scope.node.find_child(AWS_CUSTOM_RESOURCE_FUNCTION)  # CDK's singleton for the call
    acknowledge(
        cfn_resource(provider_function.node.find_child("ServiceRole")),
        "IAM4",
        finding="Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        reason="CDK's function behind the one-time call that ensures GitHub's OIDC provider: the AWS "
        "managed policy only lets it write its own logs.",
    )
    return ensured


class GitHubDeployStack(Stack):
    def __init__(self, scope: Construct, config: ProjectConfig, stage: Stage) -> None:
        settings = config.stage(stage)
        super().__init__(
            scope,
            f"{config.project}-github-oidc-{stage.value}",
            env=Environment(account=settings.account, region=settings.region),
            description=f"GitHub OIDC provider and {stage.value} workflow roles of {config.project}",
            termination_protection=True,
        )
        provider, provider_ready = github_provider(self, settings)
        self.project, self.settings, self.repository = config.project, settings, config.github_repository

        def role(construct_id: str, name: str, job: str, description: str) -> iam.Role:
            principal = iam.OpenIdConnectPrincipal(
                provider,
                conditions={
                    "StringEquals": {"token.actions.githubusercontent.com:aud": STS_AUDIENCE},
                    "StringLike": {
                        "token.actions.githubusercontent.com:sub": trusted_subjects(self.repository, job, stage)
                    },
                },
            )
            created = iam.Role(
                self,
                construct_id,
                role_name=name,
                assumed_by=principal,
                max_session_duration=MAX_SESSION,
                description=f"GitHub Actions of {self.repository}: {description}",
            )
            if provider_ready is not None:
                created.node.add_dependency(provider_ready)  # IAM refuses a trust in a provider that does not exist
            created.add_to_policy(iam.PolicyStatement(actions=["cloudformation:DescribeStacks"], resources=["*"]))
            return created

        deploy = role("DeployRole", deploy_role_name(config.project, stage.value), "deploy", f"deploying {stage.value}")
        bootstrap_roles = f"arn:aws:iam::{settings.account}:role/cdk-hnb659fds-*-role-{settings.account}-*"
        deploy.add_to_policy(iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[bootstrap_roles]))
        self._acknowledge(
            deploy,
            [
                (
                    f"Resource::{bootstrap_roles}",
                    "Assuming the CDK bootstrap roles (deploy, file/image publishing, "
                    "lookup) of this account: their names end in the region and a qualifier.",
                ),
                *_allow_the_smoke_check(deploy, config.project, settings, encrypted=stage.is_persistent),
                *_allow_the_backfill(deploy, config.project, settings),
                *_allow_model_aliases(deploy, config.project, settings),
            ],
        )
        CfnOutput(self, "DeployRoleArn", value=deploy.role_arn)
        if stage is Stage.FEATURE:
            reader = role("PullRequestRole", pr_role_name(config.project), "pr", "pull requests (read only)")
            project_stacks = f"arn:aws:cloudformation:{settings.region}:{settings.account}:stack/{config.project}-*"
            reader.add_to_policy(
                iam.PolicyStatement(actions=["cloudformation:GetTemplate"], resources=[project_stacks])
            )
            self._acknowledge(
                reader,
                [
                    (
                        f"Resource::{project_stacks}",
                        "Reading the deployed templates of this "
                        "project's stacks for a PR's diff; the names are per branch.",
                    )
                ],
            )
            CfnOutput(self, "PullRequestRoleArn", value=reader.role_arn)
            destroyer = role(
                "DestroyRole", destroy_role_name(config.project), "destroy", "destroying feature workspaces"
            )
            self._allow_destroy(destroyer)
            CfnOutput(self, "DestroyRoleArn", value=destroyer.role_arn)

    def _allow_destroy(self, role: iam.Role) -> None:
        """Delete only what feature workspaces own: stacks tagged stage=feature, the objects of this
        project's buckets, the log groups their functions made; never a persistent stage's (denied by name,
        for stages that share the account)."""
        project, region, account = self.project, self.settings.region, self.settings.account
        stacks = f"arn:aws:cloudformation:{region}:{account}:stack/{project}-*"
        buckets = f"arn:aws:s3:::{project}-*"
        function_logs = f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{project}-*"
        role.add_to_policy(iam.PolicyStatement(actions=["cloudformation:ListStackResources"], resources=[stacks]))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudformation:DeleteStack"],
                resources=[stacks],
                conditions={"StringEquals": {"aws:ResourceTag/stage": "feature"}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucketVersions", "s3:DeleteObject", "s3:DeleteObjectVersion"],
                resources=[buckets, f"{buckets}/*"],
                conditions={"StringEquals": {"aws:ResourceAccount": account}},
            )
        )
        repositories = f"arn:aws:ecr:{region}:{account}:repository/{project}-*"  # a workspace's own, if any
        role.add_to_policy(
            iam.PolicyStatement(actions=["ecr:ListImages", "ecr:BatchDeleteImage"], resources=[repositories])
        )
        insights_logs = f"arn:aws:logs:{region}:{account}:log-group:/aws/ecs/containerinsights/{project}-*"
        role.add_to_policy(
            iam.PolicyStatement(actions=["logs:DeleteLogGroup"], resources=[function_logs, insights_logs])
        )
        role.add_to_policy(iam.PolicyStatement(actions=["cloudformation:DescribeStackEvents"], resources=[stacks]))
        role.add_to_policy(iam.PolicyStatement(actions=["cloudformation:GetTemplate"], resources=["*"]))
        # the assets only the destroyed workspace used, in the CDK's bootstrap bucket and image repository
        assets = f"arn:aws:s3:::cdk-*-assets-{account}-{region}"
        images = f"arn:aws:ecr:{region}:{account}:repository/cdk-*-container-assets-{account}-{region}"
        role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucketVersions"], resources=[assets]))
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:DeleteObject", "s3:DeleteObjectVersion"], resources=[f"{assets}/*"])
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["ecr:DescribeImages", "ecr:BatchDeleteImage"], resources=[images])
        )
        # a stack that will not delete raises the workspace alarm: publish to its (encrypted) topic
        topics = f"arn:aws:sns:{region}:{account}:{project}-*"
        role.add_to_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[topics]))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=[f"arn:aws:kms:{region}:{account}:key/*"],
                conditions={"StringEquals": {"kms:ViaService": f"sns.{region}.amazonaws.com"}},
            )
        )
        # int's and prd's names, for accounts that hold them too (a feature workspace never starts with
        # `int-`/`prd-`: infra.workspace.PERSISTENT_PREFIXES)
        persistent = [f"{project}-{stage.value}-" for stage in (Stage.INT, Stage.PRD)]
        role.add_to_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                actions=["cloudformation:DeleteStack", "s3:DeleteObject*", "logs:DeleteLogGroup"],
                resources=[
                    resource
                    for name in persistent
                    for resource in (
                        f"arn:aws:cloudformation:{region}:{account}:stack/{name}*",
                        f"arn:aws:s3:::{name}*/*",
                        f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{name}*",
                        f"arn:aws:logs:{region}:{account}:log-group:/aws/ecs/containerinsights/{name}*",
                    )
                ],
            )
        )
        self._acknowledge(
            role,
            [
                (
                    f"Resource::{stacks}",
                    "Deleting this project's feature stacks (tagged stage=feature); the names are per branch.",
                ),
                (
                    f"Resource::{buckets}",
                    "Emptying this project's feature buckets before their stack is deleted; "
                    "bucket names are generated per workspace.",
                ),
                (f"Resource::{buckets}/*", "The objects of those buckets."),
                (
                    f"Resource::{repositories}",
                    "Emptying image repositories a destroyed workspace's stacks own "
                    "(named after the stack, so after the project).",
                ),
                (
                    f"Resource::{function_logs}",
                    "The log groups the workspace's functions created for themselves "
                    "(/aws/lambda/<function>); CloudFormation does not own them.",
                ),
                (
                    f"Resource::{insights_logs}",
                    "Container Insights' log group of a destroyed workspace's cluster "
                    "(/aws/ecs/containerinsights/<cluster>/performance); no stack owns it.",
                ),
                (
                    f"Resource::{assets}",
                    "The CDK bootstrap bucket (its qualifier is the project's choice): listing "
                    "the versions of the assets to remove.",
                ),
                (f"Resource::{assets}/*", "Removing the assets only the destroyed workspace referenced."),
                (f"Resource::{images}", "Removing the images only the destroyed workspace referenced."),
                (
                    f"Resource::{topics}",
                    "The workspace's alarm topic (a generated name): a stack that will not delete is reported there.",
                ),
                (
                    f"Resource::arn:aws:kms:{region}:{account}:key/*",
                    "The alarm topic's key, only through SNS (kms:ViaService): publishing to an encrypted topic.",
                ),
                ("Action::kms:GenerateDataKey*", "SNS asks for a data key of any kind, through SNS only."),
                ("Action::s3:DeleteObject*", "A deny: no object of a persistent stage's buckets."),
            ],
        )

    def _acknowledge(self, role: iam.Role, findings: list[tuple[str, str]]) -> None:
        policy = default_policy(role)
        for finding, reason in [
            (
                "Resource::*",
                "DescribeStacks finds a workspace's stacks by tag across the "
                "account (and the destroy role's GetTemplate reads every live template for the assets "
                "it still uses; the deploy role's DescribeTargetHealth, which accepts no resource, "
                "reads an internal service's health for the smoke check); "
                "they read, never change.",
            ),
            *findings,
        ]:
            acknowledge(policy, "IAM5", finding=finding, reason=reason)


def _allow_the_smoke_check(
    role: iam.Role, project: str, settings: StageSettings, *, encrypted: bool
) -> list[tuple[str, str]]:
    """What `python -m infra.smoke` does after a deploy, with the same role: land a file of the check-only
    dataset, invoke ingest, follow the pipeline execution, look under curated. Returns the wildcard
    findings with their reasons (the names are generated per workspace). `encrypted`: the stage's buckets
    are encrypted with the workspace's key (int, prd), which S3 uses on the role's behalf to write the file."""
    region, account = settings.region, settings.account
    check_prefix = CHECK_CONTRACT  # <dataset>/<table>: the landing, raw and curated prefix of check data
    buckets = f"arn:aws:s3:::{project}-*"
    functions = f"arn:aws:lambda:{region}:{account}:function:{project}-*"
    machines = f"arn:aws:states:{region}:{account}:stateMachine:{project}-*-pipeline"
    executions = f"arn:aws:states:{region}:{account}:execution:{project}-*-pipeline:*"
    same_account = {"StringEquals": {"aws:ResourceAccount": account}}
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["s3:PutObject"], resources=[f"{buckets}/{check_prefix}/*"], conditions=same_account
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[buckets],
            conditions={**same_account, "StringLike": {"s3:prefix": f"{check_prefix.split('/')[0]}/*"}},
        )
    )
    key_findings: list[tuple[str, str]] = []
    if encrypted:
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[f"arn:aws:kms:{region}:{account}:key/*"],
                conditions={
                    "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com", "aws:ResourceAccount": account}
                },
            )
        )
        key_findings.append(
            (
                f"Resource::arn:aws:kms:{region}:{account}:key/*",
                "The workspace's data key, whose "
                "ID is generated, only through S3 (kms:ViaService): writing the check file to the "
                "encrypted landing bucket.",
            )
        )
    tag, value = INVOKED_BY_SMOKE_CHECK_TAG  # ingest only: not any other function of the project
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["lambda:InvokeFunction"],
            resources=[functions],
            conditions={"StringEquals": {"aws:ResourceTag/project": project, f"aws:ResourceTag/{tag}": value}},
        )
    )
    role.add_to_policy(iam.PolicyStatement(actions=["states:ListExecutions"], resources=[machines]))
    role.add_to_policy(
        iam.PolicyStatement(actions=["states:DescribeExecution", "states:GetExecutionHistory"], resources=[executions])
    )
    # an internal service: the load balancer's health of its tasks (ELB's Describe* take no resource)
    role.add_to_policy(iam.PolicyStatement(actions=["elasticloadbalancing:DescribeTargetHealth"], resources=["*"]))
    why = "The deploy smoke check (infra/smoke.py) of a workspace whose names are generated per workspace: "
    # a serverless service's /health and /ready through its function URL, signed (every stage's role runs the same
    # check; only a feature stage may run one): a function URL created since October 2025 asks for both actions;
    # the function's name is explicit (infra/naming.py "service")
    services = f"arn:aws:lambda:{region}:{account}:function:{project}-*-service"
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["lambda:InvokeFunctionUrl"],
            resources=[services],
            conditions={"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}},
        )
    )
    role.add_to_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[services]))
    serverless = [(f"Resource::{services}", why + "it calls the serverless model service's /health and /ready.")]
    return [
        *serverless,
        (
            f"Resource::{buckets}/{check_prefix}/*",
            why + "it lands its check file under the check-only dataset's prefix, nowhere else.",
        ),
        (f"Resource::{buckets}", why + "it lists the check-only dataset's prefix (condition s3:prefix)."),
        (
            f"Resource::{functions}",
            why + "it invokes the workspace's ingest function, the one function tagged "
            f"{'='.join(INVOKED_BY_SMOKE_CHECK_TAG)}.",
        ),
        (f"Resource::{machines}", why + "it lists the executions of the workspace's pipeline."),
        (f"Resource::{executions}", why + "it reads the execution of its own check file."),
        *key_findings,
    ]


def _allow_the_backfill(role: iam.Role, project: str, settings: StageSettings) -> list[tuple[str, str]]:
    """What `python -m infra.backfill` does (the backfill workflow, in the stage's deploy environment): list the
    raw objects of a table, queue their events again on the raw-file queue, or start a build of the table from
    scratch. Returns the wildcard findings with their reasons. Bucket and queue names are generated by
    CloudFormation and cut to the service's limit from the middle for a long workspace name, so only the
    project's prefix is sure to be in them."""
    region, account = settings.region, settings.account
    buckets = f"arn:aws:s3:::{project}-*"
    queues = f"arn:aws:sqs:{region}:{account}:{project}-*"
    jobs = f"arn:aws:glue:{region}:{account}:job/{project}-*-staging-to-curated"
    table_jobs = f"{jobs}-*"  # a table's own (config etl.dedicated_jobs: infra/naming.py table_job_name)
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[buckets],
            conditions={"StringEquals": {"aws:ResourceAccount": account}},
        )
    )
    role.add_to_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[queues]))
    role.add_to_policy(
        iam.PolicyStatement(actions=["glue:StartJobRun", "glue:GetJobRuns"], resources=[jobs, table_jobs])
    )
    why = "The backfill (infra/backfill.py) of a workspace whose names are generated per workspace: "
    return [
        (f"Resource::{queues}", why + "it queues the table's raw files again on the raw-file queue."),
        (f"Resource::{jobs}", why + "it starts the promotion's Glue job for the table, from scratch."),
        (f"Resource::{table_jobs}", why + "it starts the table's own promotion job (etl.dedicated_jobs) instead."),
    ]


def mlflow_resources(project: str, settings: StageSettings) -> list[str]:
    """The stage's MLflow, as IAM can name it before it exists: a tracking server by its name, an App by the
    account's apps (its ARN ends in an id AWS generates), a shared one by its ARN."""
    ml, base = settings.ml, f"arn:aws:sagemaker:{settings.region}:{settings.account}"
    if ml.mlflow == "shared" and ml.shared_mlflow_arn is not None:
        return [ml.shared_mlflow_arn]
    if ml.mlflow == "tracking-server":
        return [f"{base}:mlflow-tracking-server/{project}-*-mlflow"]
    return [f"{base}:mlflow-app/*"]


def _allow_model_aliases(role: iam.Role, project: str, settings: StageSettings) -> list[tuple[str, str]]:
    """What `python -m infra.model_alias` does (the model-alias workflow, in the stage's deploy environment: prd's
    reviewers approve the run): read the ML stack's output, then move `champion` in the stage's MLflow."""
    from infra.model_alias import MLFLOW_ACTIONS

    resources = mlflow_resources(project, settings)
    role.add_to_policy(
        iam.PolicyStatement(actions=[f"sagemaker-mlflow:{a}" for a in MLFLOW_ACTIONS], resources=resources)
    )
    # an App's API is called through SageMaker's as well (a tracking server's ARN matches no App: inert there)
    role.add_to_policy(iam.PolicyStatement(actions=["sagemaker:CallMlflowAppApi"], resources=resources))
    why = (
        "A person's alias move (infra/model_alias.py, the model-alias workflow) in the stage's MLflow, whose ARN "
        "ends in a name per workspace or an id AWS generates: the registry's aliases and tags, no delete."
    )
    return [(f"Resource::{r}", why) for r in resources if "*" in r]


def build_oidc_stacks(app: Construct, config: ProjectConfig) -> list[GitHubDeployStack]:
    return [GitHubDeployStack(app, config, stage) for stage in Stage]
