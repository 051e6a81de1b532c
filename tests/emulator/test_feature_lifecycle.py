"""A feature branch's whole life, offline: the real CDK CLI deploys every stack of its workspace to the
emulator, the stacks carry the right names and tags and their cross-stack references resolve, a config
change updates them in place, `cdk diff` then sees nothing (and does see a change when there is one),
the lifecycle module finds the workspace an orphan once its branch is gone, and its destroy leaves
nothing of the workspace in the account.

Slow by nature (the CLI synthesises and deploys five stacks twice): about 90 s.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from infra import lifecycle
from infra.config import DEFAULT_CONFIG_PATH, ProjectConfig
from infra.emulator.cdk import LocalCdk
from infra.emulator.inventory import workspace_resources
from infra.naming import TAG_BRANCH, TAG_PROJECT, TAG_STAGE, TAG_WORKSPACE
from tests.emulator.conftest import Deployed, deployed_workspace

BRANCH = "feature/WEDATAIN-42-offline-lifecycle"
MARKER_TAG = ("change-marker", "second-deploy")


@pytest.fixture(scope="module")
def feature(config: ProjectConfig, tmp_path_factory) -> Deployed:
    with deployed_workspace(config, BRANCH, tmp_path_factory.mktemp("feature")) as deployed:
        yield deployed


def outputs(deployed: Deployed, component: str) -> dict[str, str]:
    cfn = deployed.emulator.client("cloudformation")
    stack = cfn.describe_stacks(StackName=f"{deployed.project}-{deployed.target.workspace}-{component}")["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def physical_id(deployed: Deployed, component: str, resource_type: str, logical_prefix: str) -> str:
    cfn = deployed.emulator.client("cloudformation")
    resources = cfn.list_stack_resources(StackName=f"{deployed.project}-{deployed.target.workspace}-{component}")
    (match,) = [r["PhysicalResourceId"] for r in resources["StackResourceSummaries"]
                if r["ResourceType"] == resource_type and r["LogicalResourceId"].startswith(logical_prefix)]
    return match


def test_every_stack_is_deployed_with_its_name_and_tags(feature: Deployed) -> None:
    stacks = lifecycle.find_workspace(feature.emulator.client("cloudformation"), feature.project,
                                      feature.target.workspace)
    assert feature.target.workspace == "we-42-offline-lifecycle"
    assert sorted(s.name for s in stacks) == sorted(feature.stack_names())
    for stack in stacks:
        assert stack.status == "CREATE_COMPLETE", stack
        assert {k: stack.tags.get(k) for k in (TAG_PROJECT, TAG_STAGE, TAG_WORKSPACE, TAG_BRANCH)} == {
            TAG_PROJECT: "dataplat", TAG_STAGE: "feature", TAG_WORKSPACE: feature.target.workspace,
            TAG_BRANCH: BRANCH}, stack.name


def test_the_inventory_sees_every_kind_the_workspace_holds(feature: Deployed) -> None:
    """What the destroy test below counts on: each kind it checks is seen while it exists."""
    found = workspace_resources(feature.emulator.client, feature.project, feature.target.workspace)
    assert set(found) == {"stacks", "buckets", "roles", "managed policies", "topics", "functions", "queues",
                          "log groups", "state machines", "event rules", "parameters", "notebooks", "ecs clusters",
                          "load balancers", "vpcs", "kms keys"}
    assert len(found["stacks"]) == 5 and len(found["buckets"]) == 7


def test_cross_stack_references_resolve_to_the_producing_stacks_values(feature: Deployed) -> None:
    storage, ml, monitoring = outputs(feature, "storage"), outputs(feature, "ml"), outputs(feature, "monitoring")
    ingest = feature.emulator.client("lambda").get_function_configuration(
        FunctionName=physical_id(feature, "etl", "AWS::Lambda::Function", "IngestFunction"))
    assert {k: v for k, v in ingest["Environment"]["Variables"].items() if k.endswith("_BUCKET")} == {
        "LANDING_BUCKET": storage["LandingBucketName"], "RAW_BUCKET": storage["RawBucketName"],
        "QUARANTINE_BUCKET": storage["QuarantineBucketName"]}
    buckets = {b["Name"] for b in feature.emulator.client("s3").list_buckets()["Buckets"]}
    assert storage["RawBucketName"] in buckets

    pipeline = feature.emulator.client("stepfunctions").describe_state_machine(
        stateMachineArn=physical_id(feature, "etl", "AWS::StepFunctions::StateMachine", "Pipeline"))
    assert monitoring["AlarmTopicArn"] in pipeline["definition"]

    task = feature.emulator.client("ecs").describe_task_definition(
        taskDefinition=physical_id(feature, "model-service", "AWS::ECS::TaskDefinition", "ServiceTaskDef"))
    environment = {e["name"]: e["value"] for e in task["taskDefinition"]["containerDefinitions"][0]["environment"]}
    assert environment["MLFLOW_TRACKING_URI"] == ml["MlflowTrackingArn"]


def test_the_smoke_check_runs_until_the_emulator_cannot_run_lambda_code(feature: Deployed, capsys) -> None:
    """`python -m infra.smoke` against the deployed emulator: it finds the outputs and puts the check file into
    landing; invoking ingest needs Lambda code to run, which moto cannot do without Docker, so the check
    stops there, names that step and exits non-zero. (Everything after it is covered in tests/smoke.)"""
    from infra import smoke

    storage = outputs(feature, "storage")
    urls: list[str] = []
    edge = smoke.Edge(client=feature.emulator.client, get=lambda url: urls.append(url) or "no answer (emulator)",
                      progress=lambda _: None)
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
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    raw["tags"][MARKER_TAG[0]] = MARKER_TAG[1]
    changed = tmp_path_factory.mktemp("config") / "project.yaml"
    changed.write_text(yaml.safe_dump(raw), encoding="utf-8")
    feature.cdk = LocalCdk(feature.emulator, BRANCH, feature.cdk.outdir.with_name("cdk.out.updated"), config=changed)
    feature.cdk.synth()
    feature.cdk.deploy()
    return feature


def test_a_config_change_updates_the_stacks_in_place(updated: Deployed) -> None:
    stacks = lifecycle.find_workspace(updated.emulator.client("cloudformation"), updated.project,
                                      updated.target.workspace)
    assert {s.status for s in stacks} == {"UPDATE_COMPLETE"}, [(s.name, s.status) for s in stacks]
    assert all(s.tags.get(MARKER_TAG[0]) == MARKER_TAG[1] for s in stacks)
    raw_bucket = outputs(updated, "storage")["RawBucketName"]
    tags = updated.emulator.client("s3").get_bucket_tagging(Bucket=raw_bucket)["TagSet"]
    assert {"Key": MARKER_TAG[0], "Value": MARKER_TAG[1]} in tags
    assert raw_bucket == outputs(updated, "storage")["RawBucketName"]  # updated, not replaced


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
    stacks = lifecycle.list_stacks(cfn, updated.project)
    (orphan,) = lifecycle.find_orphans(stacks, ["main"], ttl_days=14, now=datetime.now(UTC))
    assert (orphan.workspace, orphan.branch) == (updated.target.workspace, BRANCH)
    assert sorted(orphan.stacks) == sorted(updated.stack_names())
    assert lifecycle.find_orphans(stacks, ["main", BRANCH], ttl_days=14, now=datetime.now(UTC)) == []
    with pytest.raises(lifecycle.LifecycleError, match="map to the same workspace"):
        lifecycle.guard_deploy(cfn, updated.project, updated.target.workspace, "fix/WEDATAIN-42-offline-lifecycle")


@pytest.fixture(scope="module")
def destroyed(updated: Deployed) -> tuple[Deployed, lifecycle.DestroyReport]:
    """Destroyed as the destroy workflow does it, with data in the buckets (versions, a delete marker)."""
    s3 = updated.emulator.client("s3")
    for bucket in ("RawBucketName", "CuratedBucketName", "ArtifactsBucketName"):
        name = outputs(updated, "storage")[bucket]
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})  # moto ignores CFN's
        for version in range(2):
            s3.put_object(Bucket=name, Key="diabetes/patients/part-0.csv", Body=f"v{version}".encode())
        s3.delete_object(Bucket=name, Key="diabetes/patients/part-0.csv")
    report = lifecycle.destroy_workspace(updated.emulator.client, updated.project, updated.target.workspace)
    return updated, report


def test_destroy_leaves_nothing_of_the_workspace(destroyed: tuple[Deployed, lifecycle.DestroyReport]) -> None:
    deployed, report = destroyed
    assert report.stacks == list(reversed(deployed.stack_names()))
    assert sum(report.emptied.values()) == 3 * 3
    # the CDK's two custom-resource providers in the storage stack, and the ingest function's default group,
    # which moto created when the smoke check invoked it
    groups = report.log_groups
    assert len(groups) == 3, groups
    assert sum("-storage-" in g for g in groups) == 2 and sum("-etl-IngestFunction" in g for g in groups) == 1
    assert workspace_resources(deployed.emulator.client, deployed.project, deployed.target.workspace) == {}


def test_destroy_leaves_what_is_not_the_workspaces(destroyed: tuple[Deployed, lifecycle.DestroyReport]) -> None:
    deployed, _ = destroyed
    stacks = {s["StackName"] for s in deployed.emulator.client("cloudformation").describe_stacks()["Stacks"]}
    assert stacks == {"CDKToolkit"}
