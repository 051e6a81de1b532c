"""A feature branch's whole life, offline: the real CDK CLI deploys every stack of its workspace to the
emulator, the stacks carry the right names and tags and their cross-stack references resolve, a config
change updates them in place, `cdk diff` then sees nothing (and does see a change when there is one),
the lifecycle module finds the workspace an orphan once its branch is gone, and its destroy leaves
nothing of the workspace in the account.

Slow by nature (the CLI synthesises and deploys five stacks twice): about 90 s.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from infra.emulator.cdk import PLACEHOLDER_MANIFEST, LocalCdk
from infra.emulator.inventory import workspace_resources
from infra.lifecycle.assets import sweep_assets
from infra.lifecycle.cli import main
from infra.lifecycle.destroy import destroy_workspace
from infra.lifecycle.janitor import find_orphans
from infra.lifecycle.stacks import LifecycleError, find_workspace, guard_deploy, list_stacks
from infra.naming import TAG_BRANCH, TAG_PROJECT, TAG_STAGE, TAG_WORKSPACE
from infra.workspace import branch_tag_value
from tests.emulator.conftest import Deployed, deployed_workspace, fargate_feature_config, outputs, physical_id

BRANCH = "feature/WEDATAIN-42-offline-lifecycle"
MARKER_TAG = ("change-marker", "second-deploy")
OTHER_BRANCH = "feature/WEDATAIN-99-other"
OTHER_STACK = "dataplat-we-99-other-etl"


@pytest.fixture(scope="module")
def feature(tmp_path_factory) -> Deployed:
    """A feature workspace whose service runs on Fargate, Container Insights on: its log group is one that a
    destroy must delete although no stack owns it (the serverless default: test_serverless_lifecycle.py)."""
    config, path = fargate_feature_config(tmp_path_factory.mktemp("config"), container_insights=True)
    workdir = tmp_path_factory.mktemp("feature")
    with deployed_workspace(config, BRANCH, workdir, path) as deployed:
        yield deployed


def test_every_stack_is_deployed_with_its_name_and_tags(feature: Deployed) -> None:
    stacks = find_workspace(feature.emulator.client("cloudformation"), feature.project, feature.target.workspace)
    assert feature.target.workspace == "we-42-offline-lifecycle"
    assert sorted(s.name for s in stacks) == sorted(feature.stack_names())
    for stack in stacks:
        assert stack.status == "CREATE_COMPLETE", stack
        assert {k: stack.tags.get(k) for k in (TAG_PROJECT, TAG_STAGE, TAG_WORKSPACE, TAG_BRANCH)} == {
            TAG_PROJECT: "dataplat",
            TAG_STAGE: "feature",
            TAG_WORKSPACE: feature.target.workspace,
            TAG_BRANCH: BRANCH,
        }, stack.name


def test_the_inventory_sees_every_kind_the_workspace_holds(feature: Deployed) -> None:
    """What the destroy test below counts on: each kind it checks is seen while it exists."""
    found = workspace_resources(feature.emulator.client, feature.project, feature.target.workspace)
    assert set(found) == {
        "stacks",
        "buckets",
        "roles",
        "managed policies",
        "topics",
        "functions",
        "queues",
        "log groups",
        "state machines",
        "event rules",
        "parameters",
        "notebooks",
        "ecs clusters",
        "load balancers",
        "vpcs",
        "kms keys",
        "bootstrap assets",
    }
    assert len(found["stacks"]) == 5 and len(found["buckets"]) == 8  # seven of data, the access logs
    assert sum(g.startswith("/aws/ecs/containerinsights/") for g in found["log groups"]) == 1
    assert sum(a.endswith(".json") for a in found["bootstrap assets"]) == 5  # each stack's published template
    assert sum(a.startswith("ecr:") for a in found["bootstrap assets"]) == 1  # the service image


def test_cross_stack_references_resolve_to_the_producing_stacks_values(feature: Deployed) -> None:
    storage, ml, monitoring = outputs(feature, "storage"), outputs(feature, "ml"), outputs(feature, "monitoring")
    ingest = feature.emulator.client("lambda").get_function_configuration(
        FunctionName=physical_id(feature, "etl", "AWS::Lambda::Function", "IngestFunction")
    )
    assert {k: v for k, v in ingest["Environment"]["Variables"].items() if k.endswith("_BUCKET")} == {
        "LANDING_BUCKET": storage["LandingBucketName"],
        "RAW_BUCKET": storage["RawBucketName"],
        "QUARANTINE_BUCKET": storage["QuarantineBucketName"],
    }
    buckets = {b["Name"] for b in feature.emulator.client("s3").list_buckets()["Buckets"]}
    assert storage["RawBucketName"] in buckets

    pipeline = feature.emulator.client("stepfunctions").describe_state_machine(
        stateMachineArn=physical_id(feature, "etl", "AWS::StepFunctions::StateMachine", "Pipeline")
    )
    assert monitoring["AlarmTopicArn"] in pipeline["definition"]

    task = feature.emulator.client("ecs").describe_task_definition(
        taskDefinition=physical_id(feature, "model-service", "AWS::ECS::TaskDefinition", "ServiceTaskDef")
    )
    environment = {e["name"]: e["value"] for e in task["taskDefinition"]["containerDefinitions"][0]["environment"]}
    assert environment["MLFLOW_TRACKING_URI"] == ml["MlflowTrackingArn"]


def test_the_smoke_check_runs_until_the_emulator_cannot_run_lambda_code(feature: Deployed, capsys) -> None:
    """`python -m infra.smoke` against the deployed emulator: it finds the outputs and puts the check file into
    landing; invoking ingest needs Lambda code to run, which moto cannot do without Docker, so the check
    stops there, names that step and exits non-zero. (Everything after it is covered in tests/smoke.)"""
    from infra import smoke

    storage = outputs(feature, "storage")
    urls: list[str] = []
    edge = smoke.Edge(
        client=feature.emulator.client,
        get=lambda url: urls.append(url) or "no answer (emulator)",
        progress=lambda _: None,
    )
    code = smoke.main([BRANCH, "--timeout", "5"], edge)
    captured = capsys.readouterr()
    assert code == 1
    assert "smoke check failed at step 'ingest': invoking " in captured.err
    assert "docker" in captured.err.lower(), captured.err
    assert "| outputs | passed |" in captured.out and "| landing | passed |" in captured.out
    assert "| pipeline | not run | needs ingest |" in captured.out
    assert urls == [outputs(feature, "model-service")["ServiceUrl"] + "/health"]
    s3 = feature.emulator.client("s3")
    (landed,) = s3.list_objects_v2(Bucket=storage["LandingBucketName"])["Contents"]
    assert landed["Key"].startswith("platform_check/smoke/smoke-")
    s3.delete_object(Bucket=storage["LandingBucketName"], Key=landed["Key"])  # the destroy below counts objects


@pytest.fixture(scope="module")
def updated(feature: Deployed, tmp_path_factory) -> Deployed:
    """The same branch redeployed after a config change: one more tag on every resource."""
    _, path = fargate_feature_config(tmp_path_factory.mktemp("config"), container_insights=True)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["tags"][MARKER_TAG[0]] = MARKER_TAG[1]
    changed = tmp_path_factory.mktemp("config") / "project.yaml"
    changed.write_text(yaml.safe_dump(raw), encoding="utf-8")
    feature.before_update = outputs(feature, "storage")  # type: ignore[attr-defined]  # read before, compared after
    feature.cdk = LocalCdk(feature.emulator, BRANCH, feature.cdk.outdir.with_name("cdk.out.updated"), config=changed)
    feature.cdk.synth()
    feature.cdk.deploy()
    return feature


def test_a_config_change_updates_the_stacks_in_place(updated: Deployed) -> None:
    stacks = find_workspace(updated.emulator.client("cloudformation"), updated.project, updated.target.workspace)
    assert {s.status for s in stacks} == {"UPDATE_COMPLETE"}, [(s.name, s.status) for s in stacks]
    assert all(s.tags.get(MARKER_TAG[0]) == MARKER_TAG[1] for s in stacks)
    raw_bucket = outputs(updated, "storage")["RawBucketName"]
    tags = updated.emulator.client("s3").get_bucket_tagging(Bucket=raw_bucket)["TagSet"]
    assert {"Key": MARKER_TAG[0], "Value": MARKER_TAG[1]} in tags
    before = updated.before_update  # type: ignore[attr-defined]
    assert {k: v for k, v in before.items() if k.endswith("BucketName")} == {
        k: v for k, v in outputs(updated, "storage").items() if k.endswith("BucketName")
    }, "updated, not replaced"
    assert len([k for k in before if k.endswith("BucketName")]) >= 4


def test_diff_of_the_deployed_code_shows_no_difference(updated: Deployed) -> None:
    changed, output = updated.cdk.diff()
    assert not changed, output[-3000:]
    assert "Number of stacks with differences: 0" in output


def test_diff_of_other_code_shows_the_difference(updated: Deployed) -> None:
    """The no-difference result above means something: without the change, diff sees it."""
    before = LocalCdk(updated.emulator, BRANCH, updated.cdk.outdir.with_name("cdk.out.before"))
    changed, output = before.diff()
    assert changed
    assert MARKER_TAG[0] in output


def test_lifecycle_finds_the_workspace_orphaned_and_guards_it(updated: Deployed) -> None:
    cfn = updated.emulator.client("cloudformation")
    stacks = list_stacks(cfn, updated.project)
    (orphan,) = find_orphans(stacks, ["main"], ttl_days=14, now=datetime.now(UTC))
    assert (orphan.workspace, orphan.branch) == (updated.target.workspace, BRANCH)
    assert sorted(orphan.stacks) == sorted(updated.stack_names())
    assert find_orphans(stacks, ["main", BRANCH], ttl_days=14, now=datetime.now(UTC)) == []
    with pytest.raises(LifecycleError, match="map to the same workspace"):
        guard_deploy(cfn, updated.project, updated.target.workspace, "fix/WEDATAIN-42-offline-lifecycle")


class _RefillingCloudFormation:
    """CloudFormation as the destroy sees it, except that a writer puts an object into the raw bucket
    after the destroy emptied it and before the storage stack's first delete: the bucket is not empty,
    the delete fails, the stack is left DELETE_FAILED."""

    def __init__(self, deployed: Deployed) -> None:
        self._cfn, self._deployed, self.refilled = deployed.emulator.client("cloudformation"), deployed, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cfn, name)

    def delete_stack(self, StackName: str) -> Any:
        if "-storage/" in StackName and not self.refilled:
            self.refilled = True
            raw = outputs(self._deployed, "storage")["RawBucketName"]
            self._deployed.emulator.client("s3").put_object(Bucket=raw, Key="late/write.csv", Body=b"late")
        return self._cfn.delete_stack(StackName=StackName)


def bootstrap_contents(deployed: Deployed) -> tuple[set[str], set[str]]:
    """Object keys in the bootstrap bucket (every version) and image tags in its repository."""
    account, region = deployed.emulator.account, deployed.emulator.region
    s3, ecr = deployed.emulator.client("s3"), deployed.emulator.client("ecr")
    versions = s3.list_object_versions(Bucket=f"cdk-hnb659fds-assets-{account}-{region}").get("Versions", [])
    images = ecr.list_images(repositoryName=f"cdk-hnb659fds-container-assets-{account}-{region}")["imageIds"]
    return {v["Key"] for v in versions}, {i["imageTag"] for i in images if "imageTag" in i}


def deploy_other_workspace(deployed: Deployed) -> dict[str, str]:
    """A stack of another workspace that uses one of this workspace's Lambda zips (same code, same hash)
    and has a zip and an image of its own in the bootstrap bucket and repository."""
    account, region = deployed.emulator.account, deployed.emulator.region
    bucket = f"cdk-hnb659fds-assets-{account}-{region}"
    repository = f"cdk-hnb659fds-container-assets-{account}-{region}"
    cfn = deployed.emulator.client("cloudformation")
    etl = cfn.get_template(StackName=f"{deployed.project}-{deployed.target.workspace}-etl")["TemplateBody"]
    shared = next(
        r["Properties"]["Code"]["S3Key"]
        for r in etl["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and "S3Key" in r["Properties"].get("Code", {})
    )
    own_zip = hashlib.sha256(b"other zip").hexdigest() + ".zip"
    own_tag = hashlib.sha256(b"other image").hexdigest()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("index.py", "def handler(event, context): pass\n")
    deployed.emulator.client("s3").put_object(Bucket=bucket, Key=own_zip, Body=buf.getvalue())
    deployed.emulator.client("ecr").put_image(
        repositoryName=repository, imageManifest=PLACEHOLDER_MANIFEST, imageTag=own_tag
    )
    role = {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Statement": []}}}

    def function(key: str) -> dict[str, Any]:
        return {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Runtime": "python3.12",
                "Handler": "index.handler",
                "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "Code": {
                    "S3Bucket": {"Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}"},
                    "S3Key": key,
                },
            },
        }

    image = {"Fn::Sub": f"${{AWS::AccountId}}.dkr.ecr.${{AWS::Region}}.${{AWS::URLSuffix}}/{repository}:{own_tag}"}
    template = {
        "Resources": {
            "Role": role,
            "Shared": function(shared),
            "Own": function(own_zip),
            "Task": {
                "Type": "AWS::ECS::TaskDefinition",
                "Properties": {"ContainerDefinitions": [{"Name": "app", "Image": image, "Memory": 512}]},
            },
        }
    }
    cfn.create_stack(
        StackName=OTHER_STACK,
        TemplateBody=json.dumps(template),
        Tags=[
            {"Key": TAG_PROJECT, "Value": deployed.project},
            {"Key": TAG_WORKSPACE, "Value": "we-99-other"},
            {"Key": TAG_STAGE, "Value": "feature"},
            {"Key": TAG_BRANCH, "Value": branch_tag_value(OTHER_BRANCH)},
        ],
    )
    return {"shared": shared, "own_zip": own_zip, "own_tag": own_tag}


@pytest.fixture(scope="module")
def destroyed(updated: Deployed, tmp_path_factory) -> dict[str, Any]:
    """Destroyed as the workflows do it, with data in the buckets (versions, a delete marker), another
    workspace sharing an asset, and two things in the way: the raw bucket is refilled during the storage
    stack's deletion (the retry empties it again and it goes), and a subnet that is not the stack's keeps
    the service's VPC in use (it cannot go: reported, alarmed, the monitoring stack kept). Then, with the
    subnet gone, the janitor (`python -m infra.lifecycle orphans --destroy`, against the emulator) finishes.

    The first destroy sweeps unreferenced assets with no grace: the first deploy's templates (replaced by
    the update above) are seconds old here; in an account they go after ASSET_GRACE. The janitor keeps the
    young assets of the stack it destroys; a sweep with no grace stands for its run a day later."""
    s3, ec2 = updated.emulator.client("s3"), updated.emulator.client("ec2")
    for bucket in ("RawBucketName", "CuratedBucketName", "ArtifactsBucketName"):
        name = outputs(updated, "storage")[bucket]
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})  # moto ignores CFN's
        for version in range(2):
            s3.put_object(Bucket=name, Key="diabetes/patients/part-0.csv", Body=f"v{version}".encode())
        s3.delete_object(Bucket=name, Key="diabetes/patients/part-0.csv")
    other = deploy_other_workspace(updated)
    before = bootstrap_contents(updated)
    sqs, sns = updated.emulator.client("sqs"), updated.emulator.client("sns")
    queue = sqs.create_queue(QueueName="alarm-reader")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=outputs(updated, "monitoring")["AlarmTopicArn"], Protocol="sqs", Endpoint=queue_arn)
    vpc = physical_id(updated, "model-service", "AWS::EC2::VPC", "Vpc")
    blocker = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.240.0/24")["Subnet"]["SubnetId"]

    cfn = _RefillingCloudFormation(updated)
    first = destroy_workspace(
        lambda s: cfn if s == "cloudformation" else updated.emulator.client(s),
        updated.project,
        updated.target.workspace,
        asset_grace=timedelta(0),
    )
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    stuck_status = {
        s.name: s.status
        for s in find_workspace(updated.emulator.client("cloudformation"), updated.project, updated.target.workspace)
    }

    ec2.delete_subnet(SubnetId=blocker)
    branches = tmp_path_factory.mktemp("janitor") / "branches.txt"
    branches.write_text(f"main\n{OTHER_BRANCH}\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as env, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        for key, value in updated.emulator.env().items():
            env.setenv(key, value)
        code = main(["orphans", "--branches", str(branches), "--destroy"])
    sqs.delete_queue(QueueUrl=queue)
    # the janitor a day later: the stuck stack's assets, young when it finally went, are past the grace now
    later = sweep_assets(updated.emulator.client, grace=timedelta(0))
    return {
        "deployed": updated,
        "first": first,
        "messages": messages,
        "stuck_status": stuck_status,
        "later": later,
        "janitor": (code, json.loads(out.getvalue()), err.getvalue()),
        "other": other,
        "before": before,
        "refilled": cfn.refilled,
        "vpc": vpc,
    }


def test_a_stack_that_will_not_delete_is_retried_reported_and_alarmed(destroyed: dict[str, Any]) -> None:
    deployed, first = destroyed["deployed"], destroyed["first"]
    project, workspace = deployed.project, deployed.target.workspace
    service, storage, monitoring = (f"{project}-{workspace}-{c}" for c in ("model-service", "storage", "monitoring"))
    assert destroyed["refilled"] and first.retried == [service, storage]
    assert first.stacks == [service, f"{project}-{workspace}-ml", f"{project}-{workspace}-etl", storage]
    (stuck,) = first.stuck
    assert (stuck.stack, stuck.status) == (service, "DELETE_FAILED")
    assert [(r.type, r.physical_id) for r in stuck.resources] == [("AWS::EC2::VPC", destroyed["vpc"])]
    assert "DependencyViolation" in stuck.resources[0].reason
    assert first.kept == [monitoring]
    assert destroyed["stuck_status"] == {service: "DELETE_FAILED", monitoring: "UPDATE_COMPLETE"}
    assert first.alarm is not None and first.alarm.get("message_id"), first.alarm
    (message,) = destroyed["messages"]
    envelope = json.loads(message["Body"])
    assert envelope["Subject"] == f"{project} {workspace}: destroy left 1 stack(s) behind"
    assert service in envelope["Message"] and destroyed["vpc"] in envelope["Message"]
    assert f"python -m infra.lifecycle destroy {workspace}" in envelope["Message"]


def test_the_janitor_retries_the_stuck_workspace_and_finishes(destroyed: dict[str, Any]) -> None:
    deployed = destroyed["deployed"]
    code, report, err = destroyed["janitor"]
    assert code == 0, err
    assert [o["workspace"] for o in report["orphans"]] == [deployed.target.workspace]
    (second,) = report["destroyed"]
    assert second["stacks"] == [
        f"{deployed.project}-{deployed.target.workspace}-{c}" for c in ("model-service", "monitoring")
    ]
    assert second["stuck"] == [] and second["alarm"] is None


def test_destroy_leaves_nothing_of_the_workspace(destroyed: dict[str, Any]) -> None:
    deployed, first = destroyed["deployed"], destroyed["first"]
    second = destroyed["janitor"][1]["destroyed"][0]
    assert workspace_resources(deployed.emulator.client, deployed.project, deployed.target.workspace) == {}
    # 3 x 3 versions and delete markers, and the late write (emptied again before the retry)
    assert sum(first.emptied.values()) == 3 * 3 + 1
    # the CDK's two custom-resource providers in the storage stack, the ingest function's default group
    # (moto created it when the smoke check invoked it), and the cluster's Container Insights group once the
    # cluster was gone (in the first run, although its stack was stuck on the VPC)
    groups = first.log_groups + second["log_groups"]
    assert len(groups) == 4, "\n".join(groups)
    assert sum("-storage-" in g for g in groups) == 2 and sum("-etl-IngestFunction" in g for g in groups) == 1
    assert sum(g.startswith("/aws/ecs/containerinsights/") for g in first.log_groups) == 1


def test_only_the_destroyed_workspaces_assets_go(destroyed: dict[str, Any]) -> None:
    other = destroyed["other"]
    files_before, tags_before = destroyed["before"]
    files, tags = bootstrap_contents(destroyed["deployed"])
    assert len(files_before) > 5 and len(tags_before) == 2
    assert files == {other["shared"], other["own_zip"]}
    assert tags == {other["own_tag"]}
    janitor = destroyed["janitor"][1]
    assert janitor["destroyed"][0]["assets"] == [] and janitor["assets"] == [], (
        "the model-service stack's assets were young when it went: kept for a day (a deploy may reuse them)"
    )
    removed = destroyed["first"].assets + destroyed["later"]
    assert sum(a.startswith("ecr:") for a in removed) == 1 and not any(other["shared"] in a for a in removed)


def test_destroy_leaves_what_is_not_the_workspaces(destroyed: dict[str, Any]) -> None:
    cfn = destroyed["deployed"].emulator.client("cloudformation")
    stacks = {s["StackName"] for s in cfn.describe_stacks()["Stacks"]}
    assert stacks == {"CDKToolkit", OTHER_STACK}
