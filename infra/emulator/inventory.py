"""What of a workspace exists in an account, asked service by service rather than through
CloudFormation: the question after a destroy is what CloudFormation no longer knows about."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from infra.lifecycle.assets import AssetRefs, asset_hash, bootstrap_locations, referenced_assets
from infra.lifecycle.stacks import account_region_of, list_stacks, stack_template
from infra.naming import TAG_PROJECT, TAG_WORKSPACE

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client

SERVICE_LOG_GROUP_PREFIXES = ("/aws/lambda/", "/aws/ecs/containerinsights/")
"""Log groups that services create for a resource, named `<prefix><resource name>...`."""


def _pages(client: BaseClient, operation: str, key: str, **kwargs: Any) -> list[Any]:
    items: list[Any] = []
    for page in client.get_paginator(operation).paginate(**kwargs):
        items += page.get(key, [])
    return items


def _tagged_kms_keys(client: Callable[[str], Any], workspace: str) -> list[str]:
    """Keys of the workspace that are not on their way out (a deleted stack schedules its keys'
    deletion: PendingDeletion is CloudFormation's "gone" for a key)."""
    kms: KMSClient = client("kms")
    found = []
    for key in _pages(kms, "list_keys", "Keys"):
        metadata = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
        tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key["KeyId"]).get("Tags", [])}
        if tags.get(TAG_WORKSPACE) == workspace and metadata["KeyState"] != "PendingDeletion":
            found.append(key["KeyId"])
    return found


def _active_clusters(ecs: ECSClient) -> list[str]:
    """A deleted cluster stays visible, INACTIVE, for a while (ECS's "gone")."""
    arns = ecs.list_clusters()["clusterArns"]
    clusters = ecs.describe_clusters(clusters=arns)["clusters"] if arns else []
    return [c["clusterName"] for c in clusters if c["status"] != "INACTIVE"]


def _bootstrap_assets(client: Callable[[str], Any], project: str, workspace: str) -> list[str]:
    """The CDK bootstrap bucket's objects and repository's image tags that the workspace's live stacks use,
    or that no live stack uses (what a destroyed workspace would have left). Asset names are hashes, so
    belonging is read from the templates, as the destroy reads it."""
    cfn: CloudFormationClient = client("cloudformation")
    mine, others = AssetRefs(), AssetRefs()
    stacks = list_stacks(cfn, None)
    account_region = account_region_of(stacks)
    for stack in stacks:
        template = stack_template(cfn, stack.stack_id)
        refs = referenced_assets(template) if template is not None else AssetRefs()
        if stack.tags.get(TAG_PROJECT) == project and stack.workspace == workspace:
            mine |= refs
        else:
            others |= refs
    if not account_region:
        return []
    buckets, repositories = bootstrap_locations(mine.qualifiers | others.qualifiers | {"hnb659fds"}, *account_region)

    def left(name: str) -> bool:
        digest = asset_hash(name)
        return digest is not None and (digest in mine.hashes or digest not in others.hashes)

    s3: S3Client = client("s3")
    ecr: ECRClient = client("ecr")
    existing = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    found = [
        f"s3://{bucket}/{v['Key']}"
        for bucket in buckets
        if bucket in existing
        for v in _pages(s3, "list_object_versions", "Versions", Bucket=bucket)
        if left(v["Key"])
    ]
    repos = {r["repositoryName"] for r in _pages(ecr, "describe_repositories", "repositories")}
    found += [
        f"ecr:{repository}:{tag}"
        for repository in repositories
        if repository in repos
        for image in _pages(ecr, "describe_images", "imageDetails", repositoryName=repository)
        for tag in image.get("imageTags", [])
        if left(tag)
    ]
    return found


def _named(client: Callable[[str], Any]) -> dict[str, Callable[[], Iterable[str]]]:
    """Per kind, the names of everything of that kind in the account."""
    return {
        "stacks": lambda: [s["StackName"] for s in _pages(client("cloudformation"), "describe_stacks", "Stacks")],
        "buckets": lambda: [b["Name"] for b in client("s3").list_buckets()["Buckets"]],
        "roles": lambda: [r["RoleName"] for r in _pages(client("iam"), "list_roles", "Roles")],
        "managed policies": lambda: [
            p["PolicyName"] for p in _pages(client("iam"), "list_policies", "Policies", Scope="Local")
        ],
        "topics": lambda: [t["TopicArn"].rsplit(":", 1)[1] for t in _pages(client("sns"), "list_topics", "Topics")],
        "functions": lambda: [f["FunctionName"] for f in _pages(client("lambda"), "list_functions", "Functions")],
        "queues": lambda: [u.rsplit("/", 1)[1] for u in client("sqs").list_queues().get("QueueUrls", [])],
        "log groups": lambda: [g["logGroupName"] for g in _pages(client("logs"), "describe_log_groups", "logGroups")],
        "state machines": lambda: [
            m["name"] for m in _pages(client("stepfunctions"), "list_state_machines", "stateMachines")
        ],
        "event rules": lambda: [r["Name"] for r in client("events").list_rules()["Rules"]],
        "parameters": lambda: [p["Name"] for p in _pages(client("ssm"), "describe_parameters", "Parameters")],
        "notebooks": lambda: [
            n["NotebookInstanceName"] for n in client("sagemaker").list_notebook_instances()["NotebookInstances"]
        ],
        "ecs clusters": lambda: _active_clusters(client("ecs")),
        "load balancers": lambda: [
            lb["LoadBalancerName"] for lb in client("elbv2").describe_load_balancers()["LoadBalancers"]
        ],
    }


GENERATED_NAME_KEEPS = 19
"""CloudFormation cuts the stack name in a generated name to fit the name's limit; the shortest is a load
balancer's (32 characters, 13 of them the random suffix), which keeps the first 19 of the stack name."""


def name_prefix(project: str, workspace: str) -> str:
    """What every generated name of the workspace starts with (S3 lowercases it)."""
    prefix = f"{project}-{workspace}-"
    return prefix if len(prefix) <= GENERATED_NAME_KEEPS else prefix[:GENERATED_NAME_KEEPS]


def workspace_resources(client: Callable[[str], Any], project: str, workspace: str) -> dict[str, list[str]]:
    """Every resource of the workspace, by kind (only kinds with something in them).

    Names: CloudFormation's generated names start with the stack name, `<project>-<workspace>-<component>`,
    cut to fit (`name_prefix`); a Lambda's own log group prefixes `/aws/lambda/` (a cluster's Container
    Insights group `/aws/ecs/containerinsights/`), our SSM parameters `/<project>/<workspace>/`. A long
    workspace's prefix may also match another workspace whose name begins alike: for a check that nothing
    is left, a false alarm, never a miss. VPCs and KMS keys carry no name, so their workspace tag tells;
    bootstrap assets are named by hashes, so the templates tell.
    """
    prefix = name_prefix(project, workspace)
    parameter_prefix = f"/{project}/{workspace}/"

    def belongs(name: str) -> bool:
        for service_prefix in SERVICE_LOG_GROUP_PREFIXES:
            name = name.removeprefix(service_prefix)
        return name.lower().startswith(prefix) or name.startswith(parameter_prefix)

    found = {kind: sorted(n for n in list_names() if belongs(n)) for kind, list_names in _named(client).items()}
    found["vpcs"] = [
        v["VpcId"]
        for v in client("ec2").describe_vpcs(Filters=[{"Name": f"tag:{TAG_WORKSPACE}", "Values": [workspace]}])["Vpcs"]
    ]
    found["kms keys"] = _tagged_kms_keys(client, workspace)
    found["bootstrap assets"] = _bootstrap_assets(client, project, workspace)
    return {kind: names for kind, names in found.items() if names}
