"""The CDK bootstrap assets no live stack uses: read from the templates of every stack in the account and
region (whoever deployed it), and deleted once past a grace, by a destroy (what the destroyed workspace
alone used) and by the janitor (what a destroy by hand or an earlier push left)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError

from infra.lifecycle.stacks import LifecycleError, account_region_of, list_stacks, stack_template

if TYPE_CHECKING:  # the stubs are a development dependency, not installed where the workflows run this
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import DeleteObjectsOutputTypeDef, ObjectIdentifierTypeDef

# Bootstrap assets. The CDK CLI publishes every file asset (Lambda code, Glue scripts, the stack templates
# themselves) to the bootstrap bucket `cdk-<qualifier>-assets-<account>-<region>` under `<hash>.<ext>`, and
# every image to `cdk-<qualifier>-container-assets-<account>-<region>` under the tag `<hash>`, shared by
# every stack and stage of the account. A template names the assets it uses by those hashes (S3Key, Glue
# script paths, image URIs, nested template URLs, BucketDeployment sources): scanning its strings for them,
# as `cdk gc` does, finds every kind without knowing each property.
ASSET_HASH = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
DEFAULT_QUALIFIER = "hnb659fds"
"""The CDK's default bootstrap qualifier: swept even when no live template names it any more."""
BOOTSTRAP_NAME = re.compile(r"cdk-([a-z0-9]+)-(?:container-)?assets-")
ASSET_GRACE = timedelta(days=1)
"""Unreferenced assets younger than this stay (cdk gc's default `--created-buffer-days`): a deploy
publishes its assets before CloudFormation's template references them."""


@dataclass(frozen=True)
class AssetRefs:
    """Asset hashes that templates reference, and the bootstrap qualifiers their locations name."""

    hashes: frozenset[str] = frozenset()
    qualifiers: frozenset[str] = frozenset()

    def __or__(self, other: AssetRefs) -> AssetRefs:
        return AssetRefs(self.hashes | other.hashes, self.qualifiers | other.qualifiers)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def template_asset_hash(template: Mapping[str, Any]) -> str:
    """The hash the CLI published the template itself under (`<hash>.json`): SHA-256 of the file the
    synthesizer wrote, `JSON.stringify(template, undefined, 1)`, which this serialisation reproduces."""
    return hashlib.sha256(json.dumps(template, indent=1, ensure_ascii=False).encode()).hexdigest()


def referenced_assets(template: Mapping[str, Any] | str, *, own: bool = True) -> AssetRefs:
    """The assets a template uses (a dict, or the text of a template CloudFormation could not give as
    JSON); `own`: with the hash of the template's own published copy."""
    strings = list(_strings(template))
    hashes = {h for s in strings for h in ASSET_HASH.findall(s)}
    if own and isinstance(template, Mapping):
        hashes.add(template_asset_hash(template))
    return AssetRefs(frozenset(hashes), frozenset(q for s in strings for q in BOOTSTRAP_NAME.findall(s)))


def asset_hash(name: str) -> str | None:
    """The asset hash an object key (`<hash>.zip`) or image tag (`<hash>`) stands for; None otherwise."""
    stem = name.split(".", 1)[0]
    return stem if ASSET_HASH.fullmatch(stem) else None


def bootstrap_locations(qualifiers: Iterable[str], account: str, region: str) -> tuple[list[str], list[str]]:
    """The bootstrap buckets and image repositories of these qualifiers (the default synthesizer's names)."""
    qualifiers = sorted(set(qualifiers))
    return (
        [f"cdk-{q}-assets-{account}-{region}" for q in qualifiers],
        [f"cdk-{q}-container-assets-{account}-{region}" for q in qualifiers],
    )


def live_asset_refs(cfn: CloudFormationClient) -> AssetRefs | None:
    """What every live stack in the account and region references, whoever deployed it (other workspaces,
    int and prd, other CDK apps); None if one template cannot be read (then nothing is safe to delete).
    Stacks in progress count: their template is the one being deployed."""
    refs = AssetRefs()
    for stack in list_stacks(cfn, None):
        template = stack_template(cfn, stack.stack_id or stack.name)
        if template is None:
            return None
        refs |= referenced_assets(template, own=True)
    return refs


def delete_unused_assets(
    client: Callable[[str], Any],
    qualifiers: frozenset[str],
    account: str,
    region: str,
    *,
    grace: timedelta = ASSET_GRACE,
    now: datetime | None = None,
    notes: list[str],
) -> list[str]:
    """Delete from the bootstrap buckets and repositories (of `qualifiers`, the live stacks' and the default)
    every asset no live stack references that is older than `grace` (every version of a file, every tag of
    an image): a destroyed workspace's, earlier pushes' of a branch. Returns what went."""
    cfn: CloudFormationClient = client("cloudformation")
    s3: S3Client = client("s3")
    ecr: ECRClient = client("ecr")
    busy = [s.name for s in list_stacks(cfn, None) if s.status.endswith("_IN_PROGRESS")]
    if busy:  # a deploy is on its way: what it is about to reference is not in a template yet
        notes.append(f"bootstrap assets kept: stacks in progress ({', '.join(busy[:3])})")
        return []
    live = live_asset_refs(cfn)
    if live is None:
        notes.append("bootstrap assets kept: a live stack's template could not be read")
        return []
    cutoff = (now or datetime.now(UTC)) - grace
    buckets, repositories = bootstrap_locations(qualifiers | live.qualifiers | {DEFAULT_QUALIFIER}, account, region)
    deleted: list[str] = []
    for bucket in buckets:
        victims: list[ObjectIdentifierTypeDef] = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for page in _pages_if_exists(s3.get_paginator("list_object_versions").paginate(Bucket=bucket))
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            if unused_asset(v["Key"], v["LastModified"], live=live, cutoff=cutoff)
        ]
        for start in range(0, len(victims), 1000):
            refused_deletes(
                bucket,
                s3.delete_objects(Bucket=bucket, Delete={"Objects": victims[start : start + 1000], "Quiet": True}),
            )
        deleted += sorted({f"s3://{bucket}/{v['Key']}" for v in victims})
    for repository in repositories:
        tags = sorted(
            {
                tag
                for page in _pages_if_exists(ecr.get_paginator("describe_images").paginate(repositoryName=repository))
                for image in page.get("imageDetails", [])
                for tag in image.get("imageTags", [])
                if unused_asset(tag, image["imagePushedAt"], live=live, cutoff=cutoff)
            }
        )
        for start in range(0, len(tags), 100):
            gone = ecr.batch_delete_image(
                repositoryName=repository, imageIds=[{"imageTag": t} for t in tags[start : start + 100]]
            )
            deleted += sorted(f"ecr:{repository}:{i['imageTag']}" for i in gone.get("imageIds", []) if "imageTag" in i)
    return deleted


def sweep_assets(client: Callable[[str], Any], *, grace: timedelta = ASSET_GRACE) -> list[str]:
    """The janitor's pass over the bootstrap assets: those no live stack references, older than `grace`
    (a workspace destroyed by hand, an earlier push); the account and region from any live stack."""
    account_region = account_region_of(list_stacks(client("cloudformation"), None))
    if account_region is None:
        return []
    return delete_unused_assets(client, frozenset(), *account_region, grace=grace, notes=[])


def unused_asset(name: str, created: datetime, *, live: AssetRefs, cutoff: datetime) -> bool:
    """Whether a bootstrap object key or image tag is to go: an asset no live stack references, uploaded
    before the cutoff. A younger one stays, even if only a destroyed workspace used it: the CLI uploads no
    asset that exists, so another branch's deploy may be about to reference it. Anything not named like an
    asset stays."""
    digest = asset_hash(name)
    if digest is None or digest in live.hashes:
        return False
    return created < cutoff


Page = TypeVar("Page")


def _pages_if_exists(pages: Iterable[Page]) -> Iterator[Page]:
    """The pages of a listing (a paginator's, which asks as it is read); none if its bucket or repository
    does not exist."""
    try:
        yield from pages
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("NoSuchBucket", "RepositoryNotFoundException"):
            raise


def refused_deletes(bucket: str, response: DeleteObjectsOutputTypeDef) -> None:
    """DeleteObjects answers 200 and lists the keys it refused: an emptied bucket must be empty."""
    errors = response.get("Errors", [])
    if errors:
        first = errors[0]
        raise LifecycleError(
            f"s3://{bucket}: {len(errors)} objects not deleted, e.g. {first.get('Key')!r}: "
            f"{first.get('Code')} {first.get('Message', '')}".rstrip()
        )
