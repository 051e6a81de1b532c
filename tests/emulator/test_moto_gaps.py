"""The emulator's own behaviour where the lifecycle tests only pass through it on failure: a stack whose
delete fails stays (DELETE_FAILED) instead of vanishing with its resources, and a reference to an output
that does not exist is a template error. Small templates, straight to CloudFormation; a few seconds."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, WaiterError

from infra.emulator.server import Emulator, start

VPC = {"Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.9.0.0/16"}}}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory) -> Emulator:
    running = start("111111111111", "eu-west-1", tmp_path_factory.mktemp("gaps") / "emulator.log")
    yield running
    running.stop()


def create(emulator: Emulator, name: str, resources: dict, outputs: dict | None = None) -> None:
    cfn = emulator.client("cloudformation")
    cfn.create_stack(StackName=name, TemplateBody=json.dumps({"Resources": resources, "Outputs": outputs or {}}))


def test_a_stack_whose_delete_fails_stays_delete_failed(emulator: Emulator) -> None:
    cfn, ec2 = emulator.client("cloudformation"), emulator.client("ec2")
    create(emulator, "gaps-vpc", VPC)
    vpc = cfn.describe_stack_resource(StackName="gaps-vpc", LogicalResourceId="Vpc")["StackResourceDetail"]
    ec2.create_subnet(VpcId=vpc["PhysicalResourceId"], CidrBlock="10.9.1.0/24")  # not the stack's: blocks the VPC
    cfn.delete_stack(StackName="gaps-vpc")
    with pytest.raises(WaiterError):
        cfn.get_waiter("stack_delete_complete").wait(StackName="gaps-vpc", WaiterConfig={"Delay": 1, "MaxAttempts": 3})
    assert cfn.describe_stacks(StackName="gaps-vpc")["Stacks"][0]["StackStatus"] == "DELETE_FAILED"


def test_a_reference_to_a_missing_output_is_a_template_error(emulator: Emulator) -> None:
    create(emulator, "gaps-producer", {"Topic": {"Type": "AWS::SNS::Topic"}}, {"TopicArn": {"Value": {"Ref": "Topic"}}})
    reference = {"Fn::GetStackOutput": {"StackName": "gaps-producer", "OutputName": "NoSuchOutput"}}
    with pytest.raises(ClientError, match="has no output NoSuchOutput"):
        create(
            emulator, "gaps-consumer", {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": reference}}}
        )


def test_a_weak_reference_resolves_to_the_producers_output(emulator: Emulator) -> None:
    create(
        emulator,
        "gaps-source",
        {"Topic": {"Type": "AWS::SNS::Topic"}},
        {"TopicName": {"Value": {"Fn::GetAtt": ["Topic", "TopicName"]}}},
    )
    reference = {"Fn::GetStackOutput": {"StackName": "gaps-source", "OutputName": "TopicName"}}
    create(emulator, "gaps-user", {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": reference}}})
    topic = emulator.client("cloudformation").describe_stacks(StackName="gaps-source")["Stacks"][0]["Outputs"][0]
    queues = emulator.client("sqs").list_queues()["QueueUrls"]
    assert any(url.endswith("/" + topic["OutputValue"]) for url in queues)


def test_a_non_empty_bucket_fails_its_stacks_delete_and_the_event_names_it(emulator: Emulator) -> None:
    """moto alone drops the stack and leaks the bucket; CloudFormation fails the delete, naming the bucket."""
    cfn, s3 = emulator.client("cloudformation"), emulator.client("s3")
    create(emulator, "gaps-bucket", {"Data": {"Type": "AWS::S3::Bucket"}})
    bucket = cfn.describe_stack_resource(StackName="gaps-bucket", LogicalResourceId="Data")["StackResourceDetail"]
    s3.put_object(Bucket=bucket["PhysicalResourceId"], Key="k", Body=b"1")
    cfn.delete_stack(StackName="gaps-bucket")
    assert cfn.describe_stacks(StackName="gaps-bucket")["Stacks"][0]["StackStatus"] == "DELETE_FAILED"
    failed = [
        e
        for e in cfn.describe_stack_events(StackName="gaps-bucket")["StackEvents"]
        if e["ResourceStatus"] == "DELETE_FAILED" and e["LogicalResourceId"] == "Data"
    ]
    assert [(e["PhysicalResourceId"], e["ResourceType"]) for e in failed] == [
        (bucket["PhysicalResourceId"], "AWS::S3::Bucket")
    ]
    assert "BucketNotEmpty" in failed[0]["ResourceStatusReason"]
    s3.delete_object(Bucket=bucket["PhysicalResourceId"], Key="k")
    cfn.delete_stack(StackName="gaps-bucket")  # emptied, it goes
    assert bucket["PhysicalResourceId"] not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_a_cluster_with_container_insights_gets_its_log_group_as_from_ecs(emulator: Emulator) -> None:
    settings = [{"Name": "containerInsights", "Value": "enabled"}]
    create(
        emulator,
        "gaps-cluster",
        {
            "On": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterSettings": settings}},
            "Off": {"Type": "AWS::ECS::Cluster"},
        },
    )
    clusters = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in emulator.client("cloudformation").list_stack_resources(StackName="gaps-cluster")[
            "StackResourceSummaries"
        ]
    }
    groups = [
        g["logGroupName"]
        for g in emulator.client("logs").describe_log_groups(logGroupNamePrefix="/aws/ecs/containerinsights/")[
            "logGroups"
        ]
    ]
    assert groups == [f"/aws/ecs/containerinsights/{clusters['On']}/performance"]


@pytest.mark.parametrize(("account", "accepted"), [("111111111111", True), ("999999999999", False)])
def test_the_accounts_own_acm_certificate_counts_as_issued_and_no_other(
    emulator: Emulator, account: str, accepted: bool
) -> None:
    """int's and prd's HTTPS listener names the certificate from config, issued in ACM beforehand."""
    ec2, elbv2 = emulator.client("ec2"), emulator.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.8.{i}.0/24", AvailabilityZone=f"eu-west-1{z}")["Subnet"]["SubnetId"]
        for i, z in ((1, "a"), (2, "b"))
    ]
    balancer = elbv2.create_load_balancer(Name=f"gaps-{account[:4]}", Subnets=subnets)["LoadBalancers"][0]
    group = elbv2.create_target_group(Name=f"gaps-{account[:4]}", Protocol="HTTP", Port=80, VpcId=vpc)
    certificate = f"arn:aws:acm:eu-west-1:{account}:certificate/00000000-0000-4000-8000-000000000001"

    def listen() -> None:
        elbv2.create_listener(
            LoadBalancerArn=balancer["LoadBalancerArn"],
            Protocol="HTTPS",
            Port=443,
            Certificates=[{"CertificateArn": certificate}],
            DefaultActions=[{"Type": "forward", "TargetGroupArn": group["TargetGroups"][0]["TargetGroupArn"]}],
        )

    if accepted:
        listen()
    else:
        with pytest.raises(ClientError, match="certificate was not found"):
            listen()
