"""The bootstrap assets (infra/lifecycle/assets.py): the pure parts, then the edge against moto."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from infra.emulator.cdk import PLACEHOLDER_MANIFEST
from infra.lifecycle.assets import (
    AssetRefs,
    asset_hash,
    delete_unused_assets,
    referenced_assets,
    sweep_assets,
    template_asset_hash,
    unused_asset,
)
from infra.lifecycle.destroy import destroy_workspace
from infra.lifecycle.stacks import DeployedStack
from tests.workflows.lifecycle_helpers import PROJECT, VERSIONED, deploy

H = {name: hashlib.sha256(name.encode()).hexdigest() for name in ("code", "script", "image", "lib", "other")}
ASSET_BUCKET = {"Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}"}
USES_ASSETS = {
    "Resources": {
        "Fn": {
            "Type": "AWS::Lambda::Function",
            "Properties": {"Code": {"S3Bucket": ASSET_BUCKET, "S3Key": f"{H['code']}.zip"}},
        },
        "Job": {
            "Type": "AWS::Glue::Job",
            "Properties": {
                "Command": {"ScriptLocation": {"Fn::Join": ["", ["s3://", ASSET_BUCKET, f"/{H['script']}.py"]]}},
                "DefaultArguments": {
                    "--extra-py-files": {
                        "Fn::Sub": f"s3://cdk-hnb659fds-assets-${{AWS::AccountId}}-${{AWS::Region}}/{H['lib']}.zip"
                    }
                },
            },
        },
        "Task": {
            "Type": "AWS::ECS::TaskDefinition",
            "Properties": {
                "ContainerDefinitions": [
                    {
                        "Image": {
                            "Fn::Sub": f"${{AWS::AccountId}}.dkr.ecr.${{AWS::Region}}.${{AWS::URLSuffix}}/"
                            f"cdk-hnb659fds-container-assets-${{AWS::AccountId}}-${{AWS::Region}}:{H['image']}"
                        }
                    }
                ]
            },
        },
    }
}


def test_referenced_assets_are_every_hash_a_template_names_and_its_own_copy() -> None:
    refs = referenced_assets(USES_ASSETS)
    own = template_asset_hash(USES_ASSETS)
    assert refs.hashes == {H["code"], H["script"], H["lib"], H["image"], own}
    assert refs.qualifiers == {"hnb659fds"}
    assert referenced_assets(USES_ASSETS, own=False).hashes == refs.hashes - {own}
    assert referenced_assets(f"Code: {H['code']}.zip\n").hashes == {H["code"]}  # a YAML template's text


def test_a_templates_own_hash_is_that_of_the_file_the_synthesizer_wrote() -> None:
    """`JSON.stringify(template, undefined, 1)`: one-space indent, ': ' and ',' separators, no escapes."""
    written = (
        '{\n "Resources": {\n  "T": {\n   "Type": "AWS::SNS::Topic",\n   "Properties": {\n'
        '    "DisplayName": "Ünïcode",\n    "Size": [\n     1,\n     2.5\n    ]\n   }\n  }\n }\n}'
    )
    assert template_asset_hash(json.loads(written)) == hashlib.sha256(written.encode()).hexdigest()


def test_asset_hash_reads_object_keys_and_image_tags() -> None:
    assert asset_hash(f"{H['code']}.zip") == H["code"] == asset_hash(H["code"])
    assert asset_hash("readme.txt") is None and asset_hash(H["code"][:-1]) is None


def test_an_asset_goes_when_no_live_stack_references_it_and_it_is_past_the_grace() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    live = AssetRefs(frozenset({H["image"], H["lib"]}))

    def goes(name: str, age: timedelta = timedelta(0)) -> bool:
        return unused_asset(name, now - age, live=live, cutoff=now - timedelta(days=1))

    # the destroyed workspace's alone, but recent: another branch's deploy may be about to reuse it (the CLI
    # uploads nothing that exists, and the template that will reference it is not deployed yet)
    assert not goes(f"{H['code']}.zip")
    assert goes(f"{H['code']}.zip", timedelta(days=2))
    assert not goes(H["image"], timedelta(days=30))  # another stack uses it
    assert not goes(f"{H['lib']}.zip", timedelta(days=30))
    assert not goes(f"{H['other']}.zip", timedelta(hours=1))  # nobody's yet: a deploy may be publishing it
    assert goes(f"{H['other']}.zip", timedelta(days=2))  # nobody's, and old: an earlier push's
    assert not goes("notes.txt", timedelta(days=400))


def test_destroy_removes_the_assets_only_it_used_and_keeps_the_others(aws) -> None:
    cfn, s3, ecr = aws["cloudformation"], aws["s3"], aws["ecr"]
    bucket, repository = (
        "cdk-hnb659fds-assets-123456789012-eu-west-1",
        "cdk-hnb659fds-container-assets-123456789012-eu-west-1",
    )
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_bucket_versioning(Bucket=bucket, **VERSIONED)
    ecr.create_repository(repositoryName=repository)
    # the same references, on resources in-process moto creates without more properties (as metadata)
    uses = {
        "Resources": {
            k: {"Type": "AWS::SNS::Topic", "Metadata": v["Properties"]} for k, v in USES_ASSETS["Resources"].items()
        }
    }
    mine = deploy(cfn, "gone", "etl", branch="feature/gone", template=json.dumps(uses))
    kept = {"Resources": {"Fn": {"Type": "AWS::SNS::Topic", "Metadata": {"S3Key": f"{H['code']}.zip"}}}}
    deploy(cfn, "int", "etl", branch="main", stage="int", template=json.dumps(kept))
    own = template_asset_hash(cfn.get_template(StackName=mine)["TemplateBody"])
    for key in (
        f"{H['code']}.zip",
        f"{H['script']}.py",
        f"{H['lib']}.zip",
        f"{own}.json",
        f"{H['other']}.zip",
        "notes.txt",
    ):
        s3.put_object(Bucket=bucket, Key=key, Body=b"1")
    s3.put_object(Bucket=bucket, Key=f"{H['script']}.py", Body=b"2")  # a second version
    for tag in (H["image"], H["other"]):
        manifest = json.loads(PLACEHOLDER_MANIFEST) | {
            "config": {"digest": f"sha256:{tag}", "size": 0, "mediaType": "application/octet-stream"}
        }
        ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)

    report = destroy_workspace(aws.__getitem__, PROJECT, "gone", wait=False)
    assert report.assets == [], "recent uploads stay: a deploy in flight may be about to reference them"
    gone = sweep_assets(aws.__getitem__, grace=timedelta(0))  # the janitor, once they are old
    assert sorted(gone) == sorted(
        [
            f"s3://{bucket}/{H['script']}.py",
            f"s3://{bucket}/{H['lib']}.zip",
            f"s3://{bucket}/{own}.json",
            f"s3://{bucket}/{H['other']}.zip",
            f"ecr:{repository}:{H['image']}",
            f"ecr:{repository}:{H['other']}",
        ]
    )
    left = {v["Key"] for v in s3.list_object_versions(Bucket=bucket)["Versions"]}
    assert left == {f"{H['code']}.zip", "notes.txt"}  # int's (live); not an asset
    assert ecr.list_images(repositoryName=repository)["imageIds"] == []


def test_no_asset_goes_while_a_stack_is_in_progress(aws, monkeypatch) -> None:
    """A deploy on its way references assets its template does not show yet: the sweep waits."""
    busy = DeployedStack("dataplat-we-1-x-etl", "UPDATE_IN_PROGRESS", datetime.now(UTC))
    monkeypatch.setattr("infra.lifecycle.assets.list_stacks", lambda cfn, project: [busy])
    notes: list[str] = []
    assert (
        delete_unused_assets(aws.__getitem__, frozenset(), "123456789012", "eu-west-1", grace=timedelta(0), notes=notes)
        == []
    )
    assert notes == ["bootstrap assets kept: stacks in progress (dataplat-we-1-x-etl)"]
