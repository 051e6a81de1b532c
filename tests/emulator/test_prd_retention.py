"""prd, offline: what holds data survives a destroy attempt. `cdk destroy` is refused while termination
protection is on; and when an operator turns it off and destroys, the stacks go but every bucket (with
its objects), log group and KMS key stays. The lifecycle module refuses prd outright."""

from __future__ import annotations

import pytest

from infra.config import ProjectConfig
from infra.lifecycle.destroy import destroy_workspace
from infra.lifecycle.stacks import LifecycleError, find_workspace
from tests.emulator.conftest import Deployed, deployed_workspace

BRANCH = "release/1.2.3"
RETAINED_TYPES = {"AWS::S3::Bucket", "AWS::Logs::LogGroup", "AWS::KMS::Key"}
"""Stateful types the emulator can look at after the stack is gone (the Glue database and MLflow are
recorded only, so there is nothing to look at)."""


@pytest.fixture(scope="module")
def prd(config: ProjectConfig, tmp_path_factory) -> Deployed:
    with deployed_workspace(config, BRANCH, tmp_path_factory.mktemp("prd")) as deployed:
        yield deployed


def stateful_resources(deployed: Deployed) -> dict[str, str]:
    """Physical ID -> type of every resource of a retained type in the workspace's stacks."""
    cfn = deployed.emulator.client("cloudformation")
    found = {}
    for stack in deployed.stack_names():
        for resource in cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]:
            if resource["ResourceType"] in RETAINED_TYPES:
                found[resource["PhysicalResourceId"]] = resource["ResourceType"]
    return found


def existing(deployed: Deployed, resource_type: str, physical_id: str) -> bool:
    client = deployed.emulator.client
    if resource_type == "AWS::S3::Bucket":
        return physical_id in {b["Name"] for b in client("s3").list_buckets()["Buckets"]}
    if resource_type == "AWS::Logs::LogGroup":
        return any(
            g["logGroupName"] == physical_id
            for g in client("logs").describe_log_groups(logGroupNamePrefix=physical_id)["logGroups"]
        )
    return client("kms").describe_key(KeyId=physical_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_prd_is_protected_and_what_holds_data_survives_a_destroy(prd: Deployed) -> None:
    cfn, s3 = prd.emulator.client("cloudformation"), prd.emulator.client("s3")
    assert prd.target.workspace == "prd"
    stateful = stateful_resources(prd)
    assert sorted(set(stateful.values())) == sorted(RETAINED_TYPES)
    raw = next(
        o["OutputValue"]
        for o in cfn.describe_stacks(StackName=f"{prd.project}-prd-storage")["Stacks"][0]["Outputs"]
        if o["OutputKey"] == "RawBucketName"
    )
    s3.put_object(Bucket=raw, Key="diabetes/patients/created_at=2026-11-22T00:00:00Z/a.csv", Body=b"id\n1\n")

    with pytest.raises(LifecycleError, match="persistent"):
        destroy_workspace(prd.emulator.client, prd.project, "prd")

    refused = prd.cdk.destroy(ok=None)
    assert refused.returncode != 0
    assert "TerminationProtection is enabled" in refused.stdout + refused.stderr
    assert sorted(s.name for s in find_workspace(cfn, prd.project, "prd")) == sorted(prd.stack_names())

    for stack in prd.stack_names():
        cfn.update_termination_protection(StackName=stack, EnableTerminationProtection=False)
    prd.cdk.destroy()
    assert find_workspace(cfn, prd.project, "prd") == []
    lost = {pid: kind for pid, kind in stateful.items() if not existing(prd, kind, pid)}
    assert lost == {}
    assert (
        s3.get_object(Bucket=raw, Key="diabetes/patients/created_at=2026-11-22T00:00:00Z/a.csv")["Body"].read()
        == b"id\n1\n"
    )
