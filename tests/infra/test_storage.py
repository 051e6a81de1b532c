"""The data-lake buckets and the catalog: the properties that protect data."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from infra.naming import Component, glue_database_name
from infra.workspace import Stage

DATA_BUCKETS = ("Landing", "Raw", "Quarantine", "Staging", "Curated", "Artifacts")
ALL_BUCKETS = (*DATA_BUCKETS, "AccessLogs")


def construct_id(logical_id: str) -> str:
    """A top-level construct's logical ID is its construct ID plus an 8-hex hash."""
    return logical_id[:-8]


def buckets(workspace) -> dict[str, dict]:
    """Bucket resources keyed by their construct id."""
    resources = workspace.templates[Component.STORAGE].find_resources("AWS::S3::Bucket")
    return {construct_id(logical_id): r for logical_id, r in resources.items()}


def test_every_bucket_is_there(workspace) -> None:
    assert sorted(buckets(workspace)) == sorted(ALL_BUCKETS)


@pytest.mark.parametrize("name", ALL_BUCKETS)
def test_buckets_are_versioned_encrypted_and_private(workspace, name: str) -> None:
    props = buckets(workspace)[name]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


@pytest.mark.parametrize("name", ALL_BUCKETS)
def test_buckets_deny_anything_but_tls(workspace, name: str) -> None:
    template = workspace.templates[Component.STORAGE]
    logical_id = next(k for k in template.find_resources("AWS::S3::Bucket") if construct_id(k) == name)
    policies = template.find_resources("AWS::S3::BucketPolicy", {
        "Properties": {"Bucket": {"Ref": logical_id}}})
    (policy,) = policies.values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    denies = [s for s in statements if s["Effect"] == "Deny" and s["Principal"] == {"AWS": "*"}]
    assert {"Bool": {"aws:SecureTransport": "false"}} in [s["Condition"] for s in denies]
    assert {"NumericLessThan": {"s3:TlsVersion": 1.2}} in [s["Condition"] for s in denies]


@pytest.mark.parametrize("name", DATA_BUCKETS)
def test_data_buckets_log_access_to_the_log_bucket(workspace, name: str) -> None:
    logging = buckets(workspace)[name]["Properties"]["LoggingConfiguration"]
    assert logging["LogFilePrefix"] == f"{name}/"
    assert logging["DestinationBucketName"]["Ref"].startswith("AccessLogs")
    assert "LoggingConfiguration" not in buckets(workspace)["AccessLogs"]["Properties"]


def test_lifecycle_follows_config(workspaces, config) -> None:
    for stage, ws in workspaces.items():
        storage = config.stage(stage).storage
        rules = {r["Id"]: r for r in buckets(ws)["Raw"]["Properties"]["LifecycleConfiguration"]["Rules"]}
        assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"] == {
            "NoncurrentDays": storage.noncurrent_version_expiration_days}
        assert rules["expire-noncurrent-versions"]["AbortIncompleteMultipartUpload"] == {
            "DaysAfterInitiation": storage.abort_incomplete_multipart_upload_days}
        assert rules["age-to-cheaper-storage"]["Transitions"] == [
            {"StorageClass": "STANDARD_IA", "TransitionInDays": storage.raw_infrequent_access_after_days},
            {"StorageClass": "GLACIER_IR", "TransitionInDays": storage.raw_glacier_after_days},
        ]
        curated_rules = buckets(ws)["Curated"]["Properties"]["LifecycleConfiguration"]["Rules"]
        assert [r["Id"] for r in curated_rules] == ["expire-noncurrent-versions"], "only raw ages"
        log_rules = buckets(ws)["AccessLogs"]["Properties"]["LifecycleConfiguration"]["Rules"]
        assert log_rules[0]["ExpirationInDays"] == storage.access_log_expiration_days
    assert (buckets(workspaces[Stage.PRD])["Raw"]["Properties"]["LifecycleConfiguration"]["Rules"][0]
            ["NoncurrentVersionExpiration"]["NoncurrentDays"]) == 365


def test_catalog_database_per_workspace(workspace, config) -> None:
    workspace.templates[Component.STORAGE].has_resource_properties("AWS::Glue::Database", {
        "DatabaseInput": Match.object_like({
            "Name": glue_database_name(config.project, workspace.target.workspace)}),
    })


def test_every_access_policy_may_list_its_bucket_so_a_missing_key_is_404_not_403(workspace) -> None:
    """lambdas/keys.py tells a missing object (the event's key under another encoding) from an error by S3's
    404, which S3 answers only to a caller that may list the bucket (403 otherwise): every access policy a
    function or job attaches must grant s3:ListBucket on its bucket."""
    policies = workspace.templates[Component.STORAGE].find_resources("AWS::IAM::ManagedPolicy")
    assert policies
    for logical_id, policy in policies.items():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        listing = [s for s in statements if "s3:ListBucket" in (s["Action"] if isinstance(s["Action"], list)
                                                                else [s["Action"]])]
        assert listing and all(s["Effect"] == "Allow" for s in listing), logical_id
