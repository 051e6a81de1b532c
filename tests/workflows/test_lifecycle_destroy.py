"""Destroying a workspace (infra/lifecycle/destroy.py), against moto: emptied and deleted in order, the log
groups its functions made, refused where it must not go, what is stuck named and alarmed on, and what is
left when the time budget runs out."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from infra.lifecycle.destroy import StuckResource, StuckStack, alarm_message, destroy_workspace, failed_resources
from infra.lifecycle.stacks import Deadline, LifecycleError, find_workspace, list_stacks
from tests.workflows.lifecycle_helpers import BUCKET_TEMPLATE, PROJECT, VERSIONED, Clock, deploy


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
    report = destroy_workspace(aws.__getitem__, PROJECT, "gone", wait=False)
    assert report.stacks == ["dataplat-gone-old-component", "dataplat-gone-etl", "dataplat-gone-storage"]
    assert report.emptied == {f"s3://{bucket}": 4}
    assert find_workspace(cfn, PROJECT, "gone") == []
    assert [s.name for s in list_stacks(cfn, PROJECT)] == [keep]


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
    report = destroy_workspace(aws.__getitem__, PROJECT, "gone", wait=False)
    assert report.log_groups == [f"/aws/lambda/{function}"]
    assert [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]] == ["/aws/lambda/someone-else"]


def test_dry_run_deletes_nothing(aws) -> None:
    cfn = aws["cloudformation"]
    deploy(cfn, "w", "storage", branch="feature/w")
    report = destroy_workspace(aws.__getitem__, PROJECT, "w", dry_run=True)
    assert report.stacks == ["dataplat-w-storage"] and report.dry_run
    assert len(find_workspace(cfn, PROJECT, "w")) == 1


@pytest.mark.parametrize("workspace", ["int", "prd"])
def test_destroy_refuses_persistent_workspaces(aws, workspace: str) -> None:
    deploy(aws["cloudformation"], workspace, "storage", branch="main", stage="int")
    with pytest.raises(LifecycleError, match="persistent stage"):
        destroy_workspace(aws.__getitem__, PROJECT, workspace)


def test_destroy_refuses_stacks_not_tagged_feature(aws) -> None:
    deploy(aws["cloudformation"], "odd", "storage", branch="x", stage="prd")
    with pytest.raises(LifecycleError, match="not tagged stage=feature"):
        destroy_workspace(aws.__getitem__, PROJECT, "odd")


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
    assert failed_resources(events, "s") == [StuckResource("Vpc", "id-Vpc", "AWS::EC2::VPC", "DependencyViolation")]


def test_the_alarm_names_every_stuck_stack_and_resource_and_the_way_out() -> None:
    stuck = [
        StuckStack(
            "dataplat-w-model-service",
            "DELETE_FAILED",
            "1 failed",
            [StuckResource("Vpc", "vpc-1", "AWS::EC2::VPC", "DependencyViolation")],
        )
    ]
    subject, body = alarm_message("dataplat", "w" * 200, stuck, ["dataplat-w-monitoring"])
    assert len(subject) <= 100
    assert "dataplat-w-model-service" in body and "AWS::EC2::VPC Vpc (vpc-1): DependencyViolation" in body
    assert "dataplat-w-monitoring" in body and f"python -m infra.lifecycle destroy {'w' * 200}" in body


# The time budget: a destroy stops starting work before its job's credentials end.


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
    report = destroy_workspace(
        lambda s: slow if s == "cloudformation" else aws[s],
        PROJECT,
        "slow",
        deadline=Deadline.after(timedelta(minutes=30), clock),
    )
    assert report.stacks == ["dataplat-slow-etl"]
    assert report.deferred == ["dataplat-slow-storage", "dataplat-slow-monitoring"], "in deletion order"
    assert report.stuck == [] and report.alarm is None and report.assets == []
    assert any("out of time" in note for note in report.notes)
    assert sorted(s.name for s in find_workspace(cfn, PROJECT, "slow")) == [
        "dataplat-slow-monitoring",
        "dataplat-slow-storage",
    ]
    rest = destroy_workspace(aws.__getitem__, PROJECT, "slow")  # the next run finishes
    assert rest.stacks == ["dataplat-slow-storage", "dataplat-slow-monitoring"] and rest.deferred == []


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
    report = destroy_workspace(
        lambda s: slow if s == "cloudformation" else aws[s],
        PROJECT,
        "slow",
        deadline=Deadline.after(timedelta(minutes=20), clock),
    )
    assert report.stacks == ["dataplat-slow-etl"] and report.retried == [], "no second attempt"
    assert report.deferred == ["dataplat-slow-etl", "dataplat-slow-monitoring"]
    assert report.stuck == [] and report.alarm is None
