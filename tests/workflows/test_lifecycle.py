"""The lifecycle module the workflows call, against moto: guard, find, destroy, orphans."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from infra import lifecycle
from infra.emulator.cdk import PLACEHOLDER_MANIFEST
from infra.lifecycle import DeployedStack, LifecycleError, deletion_order, find_orphans
from infra.workspace import branch_tag_value, owner_tag_value

PROJECT = "dataplat"
VERSIONED = {"VersioningConfiguration": {"Status": "Enabled"}}
BUCKET_TEMPLATE = json.dumps({"Resources": {"Data": {"Type": "AWS::S3::Bucket", "Properties": VERSIONED}}})
TOPIC_TEMPLATE = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})


def deploy(
    cfn,
    workspace: str,
    component: str,
    *,
    branch: str,
    stage: str = "feature",
    project: str = PROJECT,
    template: str = TOPIC_TEMPLATE,
    owned: bool = False,
) -> str:
    """A stack tagged as the platform tags them; `owned`: with the exact owner tag (stacks deployed
    before it existed have the lossy branch tag only)."""
    name = f"{project}-{workspace}-{component}"
    owner = [{"Key": "owner", "Value": owner_tag_value(f"refs/heads/{branch}")}] if owned else []
    cfn.create_stack(
        StackName=name,
        TemplateBody=template,
        Tags=[
            {"Key": "project", "Value": project},
            {"Key": "workspace", "Value": workspace},
            {"Key": "stage", "Value": stage},
            {"Key": "branch", "Value": branch_tag_value(branch)},
            *owner,
        ],
    )
    return name


def test_find_returns_only_that_workspace_of_that_project(aws) -> None:
    cfn = aws["cloudformation"]
    deploy(cfn, "we-1-a", "storage", branch="feature/WEDATAIN-1-a")
    deploy(cfn, "we-1-a", "etl", branch="feature/WEDATAIN-1-a")
    deploy(cfn, "we-2-b", "storage", branch="feature/WEDATAIN-2-b")
    deploy(cfn, "we-1-a", "storage", branch="feature/WEDATAIN-1-a", project="other")
    found = lifecycle.find_workspace(cfn, PROJECT, "we-1-a")
    assert sorted(s.name for s in found) == ["dataplat-we-1-a-etl", "dataplat-we-1-a-storage"]


def test_guard_refuses_another_branchs_workspace(aws) -> None:
    cfn = aws["cloudformation"]
    deploy(cfn, "x", "storage", branch="feature/x")
    assert [s.name for s in lifecycle.guard_deploy(cfn, PROJECT, "x", "feature/x")] == ["dataplat-x-storage"]
    assert lifecycle.guard_deploy(cfn, PROJECT, "fresh", "fix/fresh") == []
    with pytest.raises(LifecycleError) as caught:
        lifecycle.guard_deploy(cfn, PROJECT, "x", "fix/x")
    assert "'feature/x'" in str(caught.value) and "'fix/x'" in str(caught.value)


def test_a_deploy_is_refused_while_a_switched_off_components_stack_is_deployed(aws, capsys) -> None:
    cfn = aws["cloudformation"]
    for component in ("storage", "monitoring", "etl", "ml"):
        deploy(cfn, "x", component, branch="feature/x")
    every = ["storage", "monitoring", "etl", "ml", "model-service"]
    assert len(lifecycle.refuse_switched_off(cfn, PROJECT, "x", every)) == 4, "a component not deployed yet is fine"
    with pytest.raises(LifecycleError) as caught:
        lifecycle.refuse_switched_off(cfn, PROJECT, "x", ["storage", "monitoring", "etl"])
    message = str(caught.value)
    assert "switches off: dataplat-x-ml (ml). A deploy would leave them as they are" in message
    assert "`python -m infra.lifecycle destroy x`" in message and "README: Switch components" in message
    assert lifecycle.refuse_switched_off(cfn, PROJECT, "fresh", ["storage"]) == []
    assert lifecycle.main(["components", "feature/x"]) == 0, "the shipped config switches nothing off"
    assert json.loads(capsys.readouterr().out)["deployed"] == [f"dataplat-x-{c}" for c in every[:4]]
    assert lifecycle.main(["components", "refs/pull/1/merge"]) == 2
    assert "error: cannot derive a workspace" in capsys.readouterr().err


def test_the_components_of_the_refs_own_stage_decide(aws, monkeypatch, capsys) -> None:
    """int's ml stack is deployed and int's config switches mlflow off: `main` is refused, while a feature ref
    (whose stage keeps everything) of a workspace with the same stacks is not."""
    import infra.config

    cfn = aws["cloudformation"]
    for workspace, stage, branch in (("int", "int", "main"), ("x", "feature", "feature/x")):
        for component in ("storage", "monitoring", "ml"):
            deploy(cfn, workspace, component, branch=branch, stage=stage)
    shipped = infra.config.load_config(infra.config.DEFAULT_CONFIG_PATH)
    raw = shipped.model_dump(mode="json")
    raw["stages"]["int"]["components"] = {"notebook": False, "mlflow": False, "model_service": False}
    int_off = type(shipped).model_validate(raw)
    monkeypatch.setattr(infra.config, "load_config", lambda *path: int_off)
    assert lifecycle.main(["components", "feature/x"]) == 0
    capsys.readouterr()
    assert lifecycle.main(["components", "main"]) == 2
    assert "dataplat-int-ml (ml)" in capsys.readouterr().err


def test_deletion_order_is_the_reverse_of_deployment_with_the_alarm_stack_last() -> None:
    """The monitoring stack holds the topic a stuck destroy alarms on: it goes after everything else."""
    at = datetime(2026, 11, 1, tzinfo=UTC)
    stacks = [
        DeployedStack(f"dataplat-w-{c}", "CREATE_COMPLETE", at + timedelta(minutes=i), {"workspace": "w"})
        for i, c in enumerate(["storage", "monitoring", "etl", "ml", "model-service", "legacy"])
    ]
    ordered = [s.name.removeprefix("dataplat-w-") for s in deletion_order(reversed(stacks), PROJECT)]
    assert ordered == ["legacy", "model-service", "ml", "etl", "storage", "monitoring"]


def test_destroy_empties_buckets_and_deletes_every_stack_in_order(aws) -> None:
    cfn, s3 = aws["cloudformation"], aws["s3"]
    storage = deploy(cfn, "gone", "storage", branch="feature/gone", template=BUCKET_TEMPLATE)
    deploy(cfn, "gone", "etl", branch="feature/gone")
    deploy(cfn, "gone", "old-component", branch="feature/gone")  # only the deleted branch defined it
    keep = deploy(cfn, "kept", "storage", branch="feature/kept")
    (resource,) = cfn.list_stack_resources(StackName=storage)["StackResourceSummaries"]
    bucket = resource["PhysicalResourceId"]
    s3.put_bucket_versioning(Bucket=bucket, **VERSIONED)  # moto ignores the template's
    for version in range(3):
        s3.put_object(Bucket=bucket, Key="data.csv", Body=f"v{version}".encode())
    s3.delete_object(Bucket=bucket, Key="data.csv")  # a delete marker too
    report = lifecycle.destroy_workspace(aws.__getitem__, PROJECT, "gone", wait=False)
    assert report.stacks == ["dataplat-gone-old-component", "dataplat-gone-etl", "dataplat-gone-storage"]
    assert report.emptied == {f"s3://{bucket}": 4}
    assert lifecycle.find_workspace(cfn, PROJECT, "gone") == []
    assert [s.name for s in lifecycle.list_stacks(cfn, PROJECT)] == [keep]


FUNCTION_TEMPLATE = json.dumps(
    {
        "Resources": {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Statement": []}}},
            "Handler": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Runtime": "python3.12",
                    "Handler": "index.handler",
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Code": {"ZipFile": "def handler(event, context): pass"},
                },
            },
        }
    }
)


def test_destroy_deletes_the_log_groups_functions_created_for_themselves(aws) -> None:
    """CDK's custom-resource providers log to /aws/lambda/<function>, a group CloudFormation does not
    own; found by the offline lifecycle test, where `cdk destroy` left two behind per workspace."""
    cfn, logs = aws["cloudformation"], aws["logs"]
    stack = deploy(cfn, "gone", "storage", branch="feature/gone", template=FUNCTION_TEMPLATE)
    function = next(
        r["PhysicalResourceId"]
        for r in cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]
        if r["ResourceType"] == "AWS::Lambda::Function"
    )
    logs.create_log_group(logGroupName=f"/aws/lambda/{function}")
    logs.create_log_group(logGroupName="/aws/lambda/someone-else")
    report = lifecycle.destroy_workspace(aws.__getitem__, PROJECT, "gone", wait=False)
    assert report.log_groups == [f"/aws/lambda/{function}"]
    assert [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]] == ["/aws/lambda/someone-else"]


def test_dry_run_deletes_nothing(aws) -> None:
    cfn = aws["cloudformation"]
    deploy(cfn, "w", "storage", branch="feature/w")
    report = lifecycle.destroy_workspace(aws.__getitem__, PROJECT, "w", dry_run=True)
    assert report.stacks == ["dataplat-w-storage"] and report.dry_run
    assert len(lifecycle.find_workspace(cfn, PROJECT, "w")) == 1


@pytest.mark.parametrize("workspace", ["int", "prd"])
def test_destroy_refuses_persistent_workspaces(aws, workspace: str) -> None:
    deploy(aws["cloudformation"], workspace, "storage", branch="main", stage="int")
    with pytest.raises(LifecycleError, match="persistent stage"):
        lifecycle.destroy_workspace(aws.__getitem__, PROJECT, workspace)


def test_destroy_refuses_stacks_not_tagged_feature(aws) -> None:
    deploy(aws["cloudformation"], "odd", "storage", branch="x", stage="prd")
    with pytest.raises(LifecycleError, match="not tagged stage=feature"):
        lifecycle.destroy_workspace(aws.__getitem__, PROJECT, "odd")


def test_orphans_are_gone_branches_and_expired_workspaces() -> None:
    now = datetime(2026, 11, 22, tzinfo=UTC)

    def stack(workspace: str, branch: str, age_days: int, stage: str = "feature") -> DeployedStack:
        return DeployedStack(
            f"p-{workspace}-storage",
            "CREATE_COMPLETE",
            now - timedelta(days=age_days),
            {"workspace": workspace, "branch": branch, "stage": stage},
        )

    stacks = [
        stack("alive", "feature/alive", 1),
        stack("gone", "feature/gone", 1),
        stack("stale", "feature/stale", 30),
        stack("int", "main", 400, "int"),
    ]
    orphans = find_orphans(stacks, ["main", "feature/alive", "feature/stale"], ttl_days=14, now=now)
    assert [(o.workspace, o.reason.split(" (")[0]) for o in orphans] == [
        ("gone", "branch 'feature/gone' no longer exists"),
        ("stale", "older than 14 days"),
    ]


def test_cli_guard_exits_2_with_the_reason(aws, capsys) -> None:
    deploy(aws["cloudformation"], "x", "storage", branch="feature/x")
    assert lifecycle.main(["guard", "x", "feature/x"]) == 0
    assert lifecycle.main(["guard", "x", "fix/x"]) == 2
    assert "deployed from branch 'feature/x', not from 'fix/x'" in capsys.readouterr().err


# Bootstrap assets and stuck stacks: the pure parts, then the edge against moto.
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
    refs = lifecycle.referenced_assets(USES_ASSETS)
    own = lifecycle.template_asset_hash(USES_ASSETS)
    assert refs.hashes == {H["code"], H["script"], H["lib"], H["image"], own}
    assert refs.qualifiers == {"hnb659fds"}
    assert lifecycle.referenced_assets(USES_ASSETS, own=False).hashes == refs.hashes - {own}
    assert lifecycle.referenced_assets(f"Code: {H['code']}.zip\n").hashes == {H["code"]}  # a YAML template's text


def test_a_templates_own_hash_is_that_of_the_file_the_synthesizer_wrote() -> None:
    """`JSON.stringify(template, undefined, 1)`: one-space indent, ': ' and ',' separators, no escapes."""
    written = (
        '{\n "Resources": {\n  "T": {\n   "Type": "AWS::SNS::Topic",\n   "Properties": {\n'
        '    "DisplayName": "Ünïcode",\n    "Size": [\n     1,\n     2.5\n    ]\n   }\n  }\n }\n}'
    )
    assert lifecycle.template_asset_hash(json.loads(written)) == hashlib.sha256(written.encode()).hexdigest()


def test_asset_hash_reads_object_keys_and_image_tags() -> None:
    assert lifecycle.asset_hash(f"{H['code']}.zip") == H["code"] == lifecycle.asset_hash(H["code"])
    assert lifecycle.asset_hash("readme.txt") is None and lifecycle.asset_hash(H["code"][:-1]) is None


def test_an_asset_goes_when_no_live_stack_references_it_and_it_is_past_the_grace() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    live = lifecycle.AssetRefs(frozenset({H["image"], H["lib"]}))

    def goes(name: str, age: timedelta = timedelta(0)) -> bool:
        return lifecycle.unused_asset(name, now - age, live=live, cutoff=now - timedelta(days=1))

    # the destroyed workspace's alone, but recent: another branch's deploy may be about to reuse it (the CLI
    # uploads nothing that exists, and the template that will reference it is not deployed yet)
    assert not goes(f"{H['code']}.zip")
    assert goes(f"{H['code']}.zip", timedelta(days=2))
    assert not goes(H["image"], timedelta(days=30))  # another stack uses it
    assert not goes(f"{H['lib']}.zip", timedelta(days=30))
    assert not goes(f"{H['other']}.zip", timedelta(hours=1))  # nobody's yet: a deploy may be publishing it
    assert goes(f"{H['other']}.zip", timedelta(days=2))  # nobody's, and old: an earlier push's
    assert not goes("notes.txt", timedelta(days=400))


def test_failed_resources_are_those_of_the_last_delete_attempt() -> None:
    def event(logical: str, status: str, reason: str = "", kind: str = "AWS::EC2::VPC") -> dict:
        return {
            "LogicalResourceId": logical,
            "PhysicalResourceId": f"id-{logical}",
            "ResourceType": kind,
            "ResourceStatus": status,
            "ResourceStatusReason": reason,
        }

    events = [
        event("s", "DELETE_FAILED", "The following resource(s) failed to delete: [Vpc]", "AWS::CFN"),
        event("Vpc", "DELETE_FAILED", "DependencyViolation"),
        event("Bucket", "DELETE_COMPLETE"),
        event("s", "DELETE_IN_PROGRESS"),
        event("Bucket", "DELETE_FAILED", "BucketNotEmpty", "AWS::S3::Bucket"),  # an earlier attempt
        event("s", "DELETE_IN_PROGRESS"),
    ]
    assert lifecycle.failed_resources(events, "s") == [
        lifecycle.StuckResource("Vpc", "id-Vpc", "AWS::EC2::VPC", "DependencyViolation")
    ]


def test_the_alarm_names_every_stuck_stack_and_resource_and_the_way_out() -> None:
    stuck = [
        lifecycle.StuckStack(
            "dataplat-w-model-service",
            "DELETE_FAILED",
            "1 failed",
            [lifecycle.StuckResource("Vpc", "vpc-1", "AWS::EC2::VPC", "DependencyViolation")],
        )
    ]
    subject, body = lifecycle.alarm_message("dataplat", "w" * 200, stuck, ["dataplat-w-monitoring"])
    assert len(subject) <= 100
    assert "dataplat-w-model-service" in body and "AWS::EC2::VPC Vpc (vpc-1): DependencyViolation" in body
    assert "dataplat-w-monitoring" in body and f"python -m infra.lifecycle destroy {'w' * 200}" in body


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
    own = lifecycle.template_asset_hash(cfn.get_template(StackName=mine)["TemplateBody"])
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

    report = lifecycle.destroy_workspace(aws.__getitem__, PROJECT, "gone", wait=False)
    assert report.assets == [], "recent uploads stay: a deploy in flight may be about to reference them"
    gone = lifecycle.sweep_assets(aws.__getitem__, grace=timedelta(0))  # the janitor, once they are old
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
    busy = lifecycle.DeployedStack("dataplat-we-1-x-etl", "UPDATE_IN_PROGRESS", datetime.now(UTC))
    monkeypatch.setattr(lifecycle, "list_stacks", lambda cfn, project: [busy])
    notes: list[str] = []
    assert (
        lifecycle.delete_unused_assets(
            aws.__getitem__, frozenset(), "123456789012", "eu-west-1", grace=timedelta(0), notes=notes
        )
        == []
    )
    assert notes == ["bootstrap assets kept: stacks in progress (dataplat-we-1-x-etl)"]


def test_cli_destroy_names_what_is_stuck_on_stderr_and_exits_1(aws, monkeypatch, capsys) -> None:
    stuck = lifecycle.DestroyReport(
        "w",
        stacks=["dataplat-w-etl"],
        kept=["dataplat-w-monitoring"],
        stuck=[
            lifecycle.StuckStack(
                "dataplat-w-etl",
                "DELETE_FAILED",
                "1 failed",
                [lifecycle.StuckResource("Raw", "raw-1", "AWS::S3::Bucket", "BucketNotEmpty")],
            )
        ],
        alarm={"topic": "arn:aws:sns:eu-west-1:1:t", "message_id": "m"},
    )
    monkeypatch.setattr(lifecycle, "destroy_workspace", lambda *a, **k: stuck)
    assert lifecycle.main(["destroy", "w"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["stuck"][0]["resources"][0]["physical_id"] == "raw-1"
    assert "dataplat-w-etl (DELETE_FAILED)" in captured.err and "AWS::S3::Bucket Raw (raw-1)" in captured.err
    assert "alarm: sent to arn:aws:sns:eu-west-1:1:t" in captured.err
    stuck.stuck.clear()
    assert lifecycle.main(["destroy", "w"]) == 0


def test_the_janitor_goes_on_after_a_workspace_it_cannot_destroy(aws, monkeypatch, tmp_path, capsys) -> None:
    """A refusal or throttling in one workspace is reported and fails the run; the other orphans still go."""
    from botocore.exceptions import ClientError

    cfn = aws["cloudformation"]
    deploy(cfn, "we-1-a", "etl", branch="feature/WEDATAIN-1-a")
    deploy(cfn, "we-2-b", "etl", branch="feature/WEDATAIN-2-b")
    destroy = lifecycle.destroy_workspace

    def refuse_the_first(client, project, workspace, **kwargs):
        if workspace == "we-1-a":
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "DeleteStack")
        return destroy(client, project, workspace, **kwargs)

    monkeypatch.setattr(lifecycle, "destroy_workspace", refuse_the_first)
    branches = tmp_path / "branches.txt"
    branches.write_text("main\n")
    assert lifecycle.main(["orphans", "--branches", str(branches), "--destroy"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [r["workspace"] for r in out["destroyed"]] == ["we-2-b"]
    assert "Rate exceeded" in out["failed"]["we-1-a"]
    assert [s.workspace for s in lifecycle.list_stacks(cfn, PROJECT)] == ["we-1-a"]


# The time budget: a destroy stops starting work before its job's credentials end.


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_waits_fit_in_what_is_left_of_the_budget() -> None:
    clock = Clock()
    deadline = lifecycle.Deadline.after(timedelta(minutes=10), clock)
    assert deadline.wait_attempts() == 600 // lifecycle.WAIT_DELAY_SECONDS
    clock.now += 9 * 60 + 58
    assert deadline.wait_attempts() == 1, "at least one look"
    assert lifecycle.Deadline.after(timedelta(hours=5), clock).wait_attempts() == lifecycle.WAIT_MAX_ATTEMPTS
    clock.now += 3600
    assert deadline.remaining() == timedelta(0)


def test_out_of_time_the_destroy_defers_the_rest_and_neither_alarms_nor_sweeps(aws) -> None:
    cfn = aws["cloudformation"]
    for component in ("storage", "monitoring", "etl"):
        deploy(cfn, "slow", component, branch="feature/slow")
    clock = Clock()

    class SlowCloudFormation:
        """Each deletion takes 29 of the budget's 30 minutes."""

        def __getattr__(self, name):
            return getattr(cfn, name)

        def delete_stack(self, **kwargs):
            clock.now += 29 * 60
            return cfn.delete_stack(**kwargs)

    slow = SlowCloudFormation()
    report = lifecycle.destroy_workspace(
        lambda s: slow if s == "cloudformation" else aws[s],
        PROJECT,
        "slow",
        deadline=lifecycle.Deadline.after(timedelta(minutes=30), clock),
    )
    assert report.stacks == ["dataplat-slow-etl"]
    assert report.deferred == ["dataplat-slow-storage", "dataplat-slow-monitoring"], "in deletion order"
    assert report.stuck == [] and report.alarm is None and report.assets == []
    assert any("out of time" in note for note in report.notes)
    assert sorted(s.name for s in lifecycle.find_workspace(cfn, PROJECT, "slow")) == [
        "dataplat-slow-monitoring",
        "dataplat-slow-storage",
    ]
    rest = lifecycle.destroy_workspace(aws.__getitem__, PROJECT, "slow")  # the next run finishes
    assert rest.stacks == ["dataplat-slow-storage", "dataplat-slow-monitoring"] and rest.deferred == []


def test_with_no_budget_left_the_janitor_defers_every_workspace_and_the_destroy_fails(aws, tmp_path, capsys) -> None:
    cfn = aws["cloudformation"]
    deploy(cfn, "we-1-a", "etl", branch="feature/WEDATAIN-1-a")
    deploy(cfn, "we-2-b", "etl", branch="feature/WEDATAIN-2-b")
    branches = tmp_path / "branches.txt"
    branches.write_text("main\n")
    assert lifecycle.main(["orphans", "--branches", str(branches), "--destroy", "--budget-minutes", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(out["deferred"]) == ["we-1-a", "we-2-b"] and out["destroyed"] == [] and out["assets"] == []
    assert len(lifecycle.list_stacks(cfn, PROJECT)) == 2, "nothing started"
    summary = tmp_path / "orphans.json"
    summary.write_text(json.dumps(out))
    lifecycle.main(["janitor-summary", str(summary)])
    assert (
        "| we-1-a | feature/WEDATAIN-1-a | branch 'feature/WEDATAIN-1-a' no longer exists | deferred to the "
        "next run (out of time) |"
    ) in capsys.readouterr().out

    assert lifecycle.main(["destroy", "we-1-a", "--budget-minutes", "0"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["deferred"] == ["dataplat-we-1-a-etl"]
    assert "out of time before dataplat-we-1-a-etl" in captured.err
    assert lifecycle.main(["destroy", "we-1-a", "--budget-minutes", "100"]) == 0
    with pytest.raises(SystemExit):
        lifecycle.main(["destroy", "we-1-a", "--budget-minutes", "-5"])
    assert "a budget is 0 to 1440 minutes" in capsys.readouterr().err


def test_a_stack_still_deleting_when_time_runs_out_is_deferred_not_stuck(aws) -> None:
    cfn = aws["cloudformation"]
    deploy(cfn, "slow", "etl", branch="feature/slow")
    deploy(cfn, "slow", "monitoring", branch="feature/slow")
    clock = Clock()

    class StillDeleting:
        """The etl stack's deletion outlasts the budget: it is still DELETE_IN_PROGRESS when the wait ends."""

        def __getattr__(self, name):
            return getattr(cfn, name)

        def get_waiter(self, name):
            class Waiter:
                def wait(self, StackName, WaiterConfig):
                    clock.now += WaiterConfig["MaxAttempts"] * WaiterConfig["Delay"]

            return Waiter()

        def describe_stacks(self, **kwargs):
            found = cfn.describe_stacks(**kwargs)
            if "StackName" in kwargs:
                found["Stacks"][0]["StackStatus"] = "DELETE_IN_PROGRESS"
            return found

    slow = StillDeleting()
    report = lifecycle.destroy_workspace(
        lambda s: slow if s == "cloudformation" else aws[s],
        PROJECT,
        "slow",
        deadline=lifecycle.Deadline.after(timedelta(minutes=20), clock),
    )
    assert report.stacks == ["dataplat-slow-etl"] and report.retried == [], "no second attempt"
    assert report.deferred == ["dataplat-slow-etl", "dataplat-slow-monitoring"]
    assert report.stuck == [] and report.alarm is None


# Exact ownership: the owner tag is the full ref's hash; the branch tag is only for people.


def test_two_refs_with_one_branch_tag_are_told_apart(aws, tmp_path, capsys) -> None:
    """`feature/x!` and `feature/x&` give one branch tag (AWS tags allow neither character)."""
    cfn = aws["cloudformation"]
    assert branch_tag_value("feature/x!") == branch_tag_value("feature/x&")
    deploy(cfn, "x", "etl", branch="feature/x!", owned=True)
    assert [s.name for s in lifecycle.guard_deploy(cfn, PROJECT, "x", "feature/x!")] == ["dataplat-x-etl"]
    with pytest.raises(LifecycleError, match="deployed from branch 'feature/x_'"):
        lifecycle.guard_deploy(cfn, PROJECT, "x", "refs/heads/feature/x&")
    now = datetime.now(UTC)
    assert (
        lifecycle.find_orphans(lifecycle.list_stacks(cfn, PROJECT), ["main", "feature/x!"], ttl_days=14, now=now) == []
    )
    (orphan,) = lifecycle.find_orphans(
        lifecycle.list_stacks(cfn, PROJECT), ["main", "feature/x&"], ttl_days=14, now=now
    )
    assert orphan.workspace == "x", "x& lives, but the workspace is x!'s and its branch is gone"
    with pytest.raises(LifecycleError, match="it is the workspace of branch 'feature/x_'"):
        lifecycle.destroy_workspace(aws.__getitem__, PROJECT, "x", owner="refs/heads/feature/x&")
    assert [s.name for s in lifecycle.list_stacks(cfn, PROJECT)] == ["dataplat-x-etl"]


def test_deleting_fix_x_keeps_feature_xs_workspace_and_says_whose_it_is(aws, capsys) -> None:
    cfn = aws["cloudformation"]
    deploy(cfn, "x", "etl", branch="feature/x", owned=True)
    assert lifecycle.main(["destroy", "--owner", "refs/heads/fix/x"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reports"] == []
    assert out["notes"] == [
        "nothing deployed by refs/heads/fix/x; workspace 'x' is branch 'feature/x''s (it "
        "deployed there first) and is kept"
    ]
    assert [s.name for s in lifecycle.list_stacks(cfn, PROJECT)] == ["dataplat-x-etl"]
    assert lifecycle.main(["destroy", "--owner", "refs/heads/feature/x"]) == 0
    assert json.loads(capsys.readouterr().out)["reports"][0]["stacks"] == ["dataplat-x-etl"]
    assert lifecycle.list_stacks(cfn, PROJECT) == []


def test_a_ref_finds_its_workspaces_whatever_todays_naming_rules_call_them(aws, capsys) -> None:
    """Deployed under a name an older rule gave (and again under today's): both are the ref's."""
    cfn = aws["cloudformation"]
    branch = "feature/WEDATAIN-7-renamed"
    deploy(cfn, "wedatain-7-renamed", "etl", branch=branch, owned=True)  # before `ticket_keys` changed
    deploy(cfn, "we-7-renamed", "etl", branch=branch, owned=True)
    deploy(cfn, "we-8-other", "etl", branch="feature/WEDATAIN-8-other", owned=True)
    assert lifecycle.main(["find", "--owner", f"refs/heads/{branch}"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)) == [
        "dataplat-we-7-renamed-etl",
        "dataplat-wedatain-7-renamed-etl",
    ]
    assert lifecycle.main(["destroy", "--owner", f"refs/heads/{branch}"]) == 0
    assert [r["workspace"] for r in json.loads(capsys.readouterr().out)["reports"]] == [
        "we-7-renamed",
        "wedatain-7-renamed",
    ]
    assert [s.workspace for s in lifecycle.list_stacks(cfn, PROJECT)] == ["we-8-other"]


@pytest.mark.parametrize("workspace", ["Feature/X", "int", "prd-x", "a--b", "x" * 60, "we 1"])
def test_a_workspace_typed_by_hand_is_checked_before_use(aws, capsys, workspace: str) -> None:
    with pytest.raises(SystemExit):
        lifecycle.main(["destroy", workspace])
    assert f"workspace {workspace!r}: " in capsys.readouterr().err


@pytest.mark.parametrize(
    ("listed", "why"), [("", "the branch list is empty"), ("feature/a\nfeature/b\n", "lacks the default branch 'main'")]
)
def test_the_janitor_destroys_nothing_from_an_implausible_branch_list(aws, tmp_path, capsys, listed, why) -> None:
    cfn = aws["cloudformation"]
    deploy(cfn, "we-1-a", "etl", branch="feature/WEDATAIN-1-a", owned=True)
    branches = tmp_path / "branches.txt"
    branches.write_text(listed)
    assert lifecycle.main(["orphans", "--branches", str(branches), "--destroy"]) == 2
    assert why in capsys.readouterr().err
    assert len(lifecycle.list_stacks(cfn, PROJECT)) == 1


def test_a_dry_run_makes_no_write_call(aws, tmp_path, monkeypatch, capsys) -> None:
    cfn, s3 = aws["cloudformation"], aws["s3"]
    deploy(cfn, "we-1-a", "storage", branch="feature/WEDATAIN-1-a", template=BUCKET_TEMPLATE, owned=True)
    (bucket,) = [
        r["PhysicalResourceId"]
        for r in cfn.describe_stack_resources(StackName="dataplat-we-1-a-storage")["StackResources"]
    ]
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    called: list[str] = []
    make = boto3.client

    def recording(*args, **kwargs):
        client = make(*args, **kwargs)
        client.meta.events.register("before-call", lambda model, **_: called.append(model.name))
        return client

    monkeypatch.setattr(boto3, "client", recording)
    branches = tmp_path / "branches.txt"
    branches.write_text("main\n")
    assert lifecycle.main(["orphans", "--branches", str(branches)]) == 0
    assert lifecycle.main(["destroy", "we-1-a", "--dry-run"]) == 0
    assert lifecycle.main(["destroy", "--owner", "refs/heads/feature/WEDATAIN-1-a", "--dry-run"]) == 0
    assert called and all(name.startswith(("Describe", "List", "Get")) for name in called), called
    assert len(lifecycle.list_stacks(cfn, PROJECT)) == 1 and s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 1


def test_the_janitor_summary_is_a_table_of_what_became_of_each_orphan() -> None:
    def orphan(workspace):
        return {"workspace": workspace, "branch": f"feature/{workspace}", "reason": "branch gone"}

    report = {
        "orphans": [orphan(w) for w in ("gone", "stuck", "late", "refused", "throttled", "next", "seen|x")],
        "destroyed": [
            {"workspace": "gone", "stacks": ["a", "b"]},
            {"workspace": "stuck", "stacks": ["a"], "stuck": [{"stack": "a", "status": "DELETE_FAILED"}]},
            {"workspace": "late", "stacks": ["a"], "deferred": ["b"]},
        ],
        "failed": {"refused": "LifecycleError: not feature", "throttled": "ClientError: Rate exceeded"},
        "deferred": ["next"],
    }
    rows = lifecycle.janitor_summary(report).splitlines()
    assert rows[0] == "| workspace | branch | why | outcome |"
    outcomes = {row.split(" | ")[0].removeprefix("| "): row.split(" | ")[-1].removesuffix(" |") for row in rows[2:]}
    assert outcomes == {
        "gone": "destroyed (2 stacks)",
        "stuck": "**stuck**: a (DELETE_FAILED)",
        "late": "deferred to the next run (out of time): b",
        "refused": "refused: LifecycleError: not feature",
        "throttled": "**failed**: ClientError: Rate exceeded",
        "next": "deferred to the next run (out of time)",
        "seen\\|x": "listed (dry run)",
    }
    assert lifecycle.janitor_summary({"orphans": []}) == "- nothing to reap"


def test_the_janitor_leaves_a_workspace_with_a_deploy_running_to_its_next_run(
    aws, tmp_path, monkeypatch, capsys
) -> None:
    cfn = aws["cloudformation"]
    deploy(cfn, "we-1-a", "etl", branch="feature/WEDATAIN-1-a", owned=True)
    deploy(cfn, "we-2-b", "etl", branch="feature/WEDATAIN-2-b", owned=True)
    listed = lifecycle.list_stacks

    def one_updating(cfn, project):  # moto finishes every update at once; CloudFormation takes minutes
        return [
            dataclasses.replace(s, status="UPDATE_IN_PROGRESS") if s.workspace == "we-1-a" else s
            for s in listed(cfn, project)
        ]

    monkeypatch.setattr(lifecycle, "list_stacks", one_updating)
    branches = tmp_path / "branches.txt"
    branches.write_text("main\n")
    assert lifecycle.main(["orphans", "--branches", str(branches), "--destroy"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["deferred"] == ["we-1-a"] and [r["workspace"] for r in out["destroyed"]] == ["we-2-b"]
    assert "busy (dataplat-we-1-a-etl UPDATE_IN_PROGRESS)" in captured.err
    assert [s.workspace for s in listed(cfn, PROJECT)] == ["we-1-a"]
