"""What the etl, ml and model-service stacks hold so far, and how they are wired to the others."""

from __future__ import annotations

import json

from infra.managed_policies import MANAGED_SUFFIX
from infra.naming import Component


def test_dead_letter_queue_is_encrypted_and_alarms_to_the_topic(workspace) -> None:
    template = workspace.templates[Component.ETL]
    queues = template.find_resources(
        "AWS::SQS::Queue", {"Properties": {"SqsManagedSseEnabled": True, "MessageRetentionPeriod": 14 * 24 * 3600}}
    )
    (queue_id,) = [q for q in queues if q.startswith("DeadLetterQueue")]
    alarm = template.find_resources(
        "AWS::CloudWatch::Alarm",
        {
            "Properties": {
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Threshold": 0,
                "ComparisonOperator": "GreaterThanThreshold",
                "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}],
            }
        },
    )
    (props,) = (a["Properties"] for a in alarm.values())
    assert props["OKActions"] == props["AlarmActions"]
    (action,) = props["AlarmActions"]
    # a weak cross-stack reference (cdk.json: defaultCrossStackReferences) to the monitoring stack's topic
    assert action["Fn::GetStackOutput"]["StackName"] == workspace.stacks[Component.MONITORING].stack_name
    assert "AlarmTopic" in action["Fn::GetStackOutput"]["OutputName"]


def test_bucket_access_policies_reach_their_bucket_only(workspace) -> None:
    template = workspace.templates[Component.STORAGE]
    policies = {
        lid[:-8]: p["Properties"]
        for lid, p in template.find_resources("AWS::IAM::ManagedPolicy").items()
        if not lid.endswith(MANAGED_SUFFIX)
        and not lid.startswith(("LedgerWrite", "RawAppendUnder", "CuratedReadUnder"))
    }  # CDK's own inline policies, made managed in int and prd; the ledger's (tests/infra/test_storage.py); an
    # extractor's (`test_an_extractor_may_write_under_its_tables_prefix_of_raw_only`); a training job's
    # (tests/infra/test_training_pipeline.py `test_the_jobs_role_reads_its_models_table_and_no_other`)
    expected = {
        "CuratedReadPolicy",
        "ArtifactsReadWritePolicy",
        "RawAppendPolicy",
        "QuarantineAppendPolicy",
        "LandingReadWritePolicy",
        "LandingDeleteVersionsPolicy",
    }
    assert expected <= set(policies)
    buckets = {lid[:-8] for lid in template.find_resources("AWS::S3::Bucket")}
    for name, props in policies.items():
        access = next(a for a in ("ReadWrite", "Append", "Read", "DeleteVersions") if name.endswith(f"{a}Policy"))
        bucket = name.removesuffix(f"{access}Policy")
        actions = set()
        for statement in props["PolicyDocument"]["Statement"]:
            if isinstance(statement["Action"], str):
                statement["Action"] = [statement["Action"]]
            if all(a.startswith("kms:") for a in statement["Action"]):  # the bucket's key (int, prd), through S3
                assert statement["Condition"]["StringEquals"]["kms:ViaService"] == "s3.eu-west-1.amazonaws.com"
                assert statement["Resource"]["Fn::GetAtt"][0].startswith("DataKey"), name
                assert set(statement["Action"]) == (
                    {"kms:Decrypt"}
                    if name.endswith("ReadPolicy") and not name.endswith("ReadWritePolicy")
                    else {"kms:Decrypt", "kms:GenerateDataKey"}
                ), name
                continue
            actions |= set(statement["Action"])
            text = json.dumps(statement["Resource"])
            assert bucket in text and not any(other in text for other in buckets - {bucket}), (name, text)
        assert not any("*" in a for a in actions), "explicit actions only"
        assert ("s3:PutObject" in actions) is (access not in ("Read", "DeleteVersions")), name
        assert ("s3:DeleteObject" in actions) is (access == "ReadWrite"), name
        # deleting a version for good: only ingest, on landing, the version it copied (lambdas/ingest)
        assert ("s3:DeleteObjectVersion" in actions) is (name == "LandingDeleteVersionsPolicy"), name
        if access == "DeleteVersions":  # beside ReadWrite, never instead: nothing but deleting versions
            assert actions - {"s3:ListBucket", "s3:GetBucketLocation"} == {
                "s3:DeleteObjectVersion",
                "s3:ListBucketVersions",
            }, name


def test_service_log_group_keeps_logs_as_configured(workspace, config) -> None:
    days = config.stage(workspace.target.stage).monitoring.log_retention_days
    workspace.templates[Component.MODEL_SERVICE].has_resource_properties(
        "AWS::Logs::LogGroup", {"RetentionInDays": days}
    )
