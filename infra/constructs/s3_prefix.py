"""Reach to the objects under one `s3://bucket/prefix` of a bucket this workspace does not own (a shared
MLflow's artifact store, a fixed model): the actions on those objects, listing the bucket under that prefix
only, and the wildcard this needs acknowledged with its reason."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_iam as iam

from infra.construct_tree import default_policy
from infra.nag import acknowledge


def grant_under_prefix(
    role: iam.IRole, uri: str, actions: Sequence[str], *, reason: str, list_the_prefix_itself: bool = False
) -> None:
    """`actions` on the objects under `uri` (s3://bucket[/prefix]); `list_the_prefix_itself`: the listing may
    also name the prefix without its trailing slash. `reason`: why the objects are reached, for cdk-nag."""
    partition = Stack.of(role).partition
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    under = f"{prefix}/" if prefix else ""
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=list(actions), resources=[f"arn:{partition}:s3:::{bucket}/{under}*"])
    )
    listed = [prefix, f"{prefix}/*"] if list_the_prefix_itself else f"{prefix}/*"
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[f"arn:{partition}:s3:::{bucket}"],
            conditions={"StringLike": {"s3:prefix": listed}} if prefix else None,
        )
    )
    acknowledge(default_policy(role), "IAM5", finding=f"Resource::arn:aws:s3:::{bucket}/{under}*", reason=reason)
