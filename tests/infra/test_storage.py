"""The data-lake buckets and the catalog: the properties that protect data."""

from __future__ import annotations

import re

import pytest
from aws_cdk.assertions import Match

from infra.managed_policies import MANAGED_SUFFIX
from infra.naming import Component, glue_database_name
from infra.workspace import Stage

DATA_BUCKETS = ("Landing", "Raw", "Quarantine", "Staging", "Curated", "Artifacts", "QueryResults")
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
    """int and prd encrypt data with the workspace's key (bucket keys: KMS called per bucket, not per object);
    the access-log bucket and feature workspaces use SSE-S3."""
    props = buckets(workspace)[name]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    if workspace.target.stage.is_persistent and name != "AccessLogs":
        (key_id,) = workspace.templates[Component.STORAGE].find_resources("AWS::KMS::Key")
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
            {
                "ServerSideEncryptionByDefault": {
                    "SSEAlgorithm": "aws:kms",
                    "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]},
                },
                "BucketKeyEnabled": True,
            }
        ]
    else:
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
        ]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


@pytest.mark.parametrize("name", ALL_BUCKETS)
def test_buckets_deny_anything_but_tls(workspace, name: str) -> None:
    template = workspace.templates[Component.STORAGE]
    logical_id = next(k for k in template.find_resources("AWS::S3::Bucket") if construct_id(k) == name)
    policies = template.find_resources("AWS::S3::BucketPolicy", {"Properties": {"Bucket": {"Ref": logical_id}}})
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
            "NoncurrentDays": storage.noncurrent_version_expiration_days
        }
        assert rules["expire-noncurrent-versions"]["AbortIncompleteMultipartUpload"] == {
            "DaysAfterInitiation": storage.abort_incomplete_multipart_upload_days
        }
        assert rules["age-to-cheaper-storage"]["Transitions"] == [
            {"StorageClass": "STANDARD_IA", "TransitionInDays": storage.raw_infrequent_access_after_days},
            {"StorageClass": "GLACIER_IR", "TransitionInDays": storage.raw_glacier_after_days},
        ]
        curated_rules = buckets(ws)["Curated"]["Properties"]["LifecycleConfiguration"]["Rules"]
        assert [r["Id"] for r in curated_rules] == ["expire-noncurrent-versions"], "only raw ages"
        log_rules = buckets(ws)["AccessLogs"]["Properties"]["LifecycleConfiguration"]["Rules"]
        assert log_rules[0]["ExpirationInDays"] == storage.access_log_expiration_days
    assert (
        (
            buckets(workspaces[Stage.PRD])["Raw"]["Properties"]["LifecycleConfiguration"]["Rules"][0][
                "NoncurrentVersionExpiration"
            ]["NoncurrentDays"]
        )
        == 365
    )


def test_catalog_database_per_workspace(workspace, config) -> None:
    workspace.templates[Component.STORAGE].has_resource_properties(
        "AWS::Glue::Database",
        {
            "DatabaseInput": Match.object_like(
                {"Name": glue_database_name(config.project, workspace.target.workspace)}
            ),
        },
    )


def test_every_access_policy_may_list_its_bucket_so_a_missing_key_is_404_not_403(workspace) -> None:
    """lambdas/keys.py tells a missing object (the event's key under another encoding) from an error by S3's
    404, which S3 answers only to a caller that may list the bucket (403 otherwise): every access policy a
    function or job attaches must grant s3:ListBucket on its bucket."""
    policies = workspace.templates[Component.STORAGE].find_resources("AWS::IAM::ManagedPolicy")
    access = {  # not CDK's, made managed, nor the ledger's (no bucket), nor an extractor's (it writes, never reads)
        i: p
        for i, p in policies.items()
        if not i.endswith(MANAGED_SUFFIX) and not i.startswith(("LedgerWrite", "RawAppendUnder"))
    }
    assert len(access) >= len(DATA_BUCKETS)
    for logical_id, policy in access.items():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        listing = [
            s
            for s in statements
            if "s3:ListBucket" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        ]
        assert listing and all(s["Effect"] == "Allow" for s in listing), logical_id


def test_a_bucket_named_in_storage_replication_copies_its_objects_encrypted_to_the_destination() -> None:
    """config storage.replication: new objects and delete markers, encrypted there with the destination's key."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_kms as kms
    from aws_cdk.assertions import Template

    from infra.constructs.data_bucket import DataBucket, ReplicaTarget

    stack = Stack(App(), "Bare", env={"region": "eu-west-1", "account": "333333333333"})
    key = kms.Key(stack, "Key")
    replica = ReplicaTarget(
        "arn:aws:s3:::replica-bucket", "arn:aws:kms:eu-central-1:333333333333:key/00000000-0000-4000-8000-000000000004"
    )
    DataBucket(
        stack,
        "Curated",
        ephemeral=False,
        access_logs=None,
        noncurrent_version_expiration_days=30,
        abort_incomplete_multipart_upload_days=7,
        encryption_key=key,
        replica=replica,
    )
    (bucket,) = Template.from_stack(stack).find_resources("AWS::S3::Bucket").values()
    (rule,) = bucket["Properties"]["ReplicationConfiguration"]["Rules"]
    assert rule["Destination"]["Bucket"] == "arn:aws:s3:::replica-bucket"
    assert rule["Destination"]["EncryptionConfiguration"] == {"ReplicaKmsKeyID": replica.kms_key_arn}
    assert rule["SourceSelectionCriteria"]["SseKmsEncryptedObjects"] == {"Status": "Enabled"}
    assert rule["DeleteMarkerReplication"] == {"Status": "Enabled"} and rule["Status"] == "Enabled"
    with pytest.raises(ValueError, match="needs the destination's key"):
        DataBucket(
            stack,
            "Raw",
            ephemeral=False,
            access_logs=None,
            noncurrent_version_expiration_days=30,
            abort_incomplete_multipart_upload_days=7,
            encryption_key=key,
            replica=ReplicaTarget("arn:aws:s3:::other-replica"),
        )


def test_each_bucket_keeps_objects_as_long_as_config_says(workspace, config) -> None:
    """storage.retention_days per bucket (the shipped config: quarantine 180 days, the data until erased)."""
    retention = config.stage(workspace.target.stage).storage.retention_days
    for name in DATA_BUCKETS:
        rules = buckets(workspace)[name]["Properties"]["LifecycleConfiguration"]["Rules"]
        expirations = [r["ExpirationInDays"] for r in rules if "ExpirationInDays" in r]
        expected = getattr(retention, re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower())  # QueryResults: query_results
        assert expirations == ([expected] if expected else []), name
    assert retention.quarantine == 180 and retention.curated is None and retention.query_results == 30


def test_the_run_ledger_is_kept_with_point_in_time_recovery_and_written_through_one_policy(workspace) -> None:
    """The ledger holds what cannot be rebuilt: recoverable to any second of 35 days, kept in int and prd
    (stage rules), and writable through a policy that allows recording and nothing else, on it alone."""
    template = workspace.templates[Component.STORAGE]
    ((table_id, table),) = template.find_resources("AWS::DynamoDB::Table").items()
    props = table["Properties"]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["KeySchema"] == [{"AttributeName": "file", "KeyType": "HASH"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert table["DeletionPolicy"] == ("Retain" if workspace.target.stage.is_persistent else "Delete")
    ((_, policy),) = [
        (i, p) for i, p in template.find_resources("AWS::IAM::ManagedPolicy").items() if i.startswith("LedgerWrite")
    ]
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "dynamodb:UpdateItem"
    assert statement["Resource"] == {"Fn::GetAtt": [table_id, "Arn"]}


def test_athena_queries_go_to_the_workspaces_own_encrypted_expiring_results_bucket(workspaces, config) -> None:
    """The workgroup enforces its settings (a client cannot send results elsewhere or unencrypted), writes
    results to the query-results bucket encrypted with the workspace's key where it has one, and the bucket
    expires them after storage.retention_days.query_results."""
    from infra.naming import athena_workgroup_name

    for stage, ws in workspaces.items():
        template = ws.templates[Component.STORAGE]
        (workgroup,) = template.find_resources("AWS::Athena::WorkGroup").values()
        props = workgroup["Properties"]
        assert props["Name"] == athena_workgroup_name(config.project, ws.target.workspace)
        assert props["RecursiveDeleteOption"] is True, "a destroy removes it with its saved queries"
        settings = props["WorkGroupConfiguration"]
        assert settings["EnforceWorkGroupConfiguration"] is True
        results = settings["ResultConfiguration"]
        (results_id,) = [k for k in template.find_resources("AWS::S3::Bucket") if construct_id(k) == "QueryResults"]
        assert results["OutputLocation"] == {"Fn::Join": ["", ["s3://", {"Ref": results_id}, "/"]]}
        if stage.is_persistent:
            assert results["EncryptionConfiguration"] == {
                "EncryptionOption": "SSE_KMS",
                "KmsKey": {"Fn::GetAtt": ["DataKey17AFBB84", "Arn"]},
            }
        else:
            assert results["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
        rules = buckets(ws)["QueryResults"]["Properties"]["LifecycleConfiguration"]["Rules"]
        expiring = [r for r in rules if "ExpirationInDays" in r]
        assert [r["ExpirationInDays"] for r in expiring] == [config.stage(stage).storage.retention_days.query_results]
        noncurrent = [
            r["NoncurrentVersionExpiration"]["NoncurrentDays"] for r in rules if "NoncurrentVersionExpiration" in r
        ]
        assert noncurrent == [1], "an expired result's older version goes the next day, whatever the stage keeps"
