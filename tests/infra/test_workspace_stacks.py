"""What the etl, ml and model-service stacks hold so far, and how they are wired to the others."""

from __future__ import annotations

from aws_cdk.assertions import Match

from infra.naming import Component


def test_dead_letter_queue_is_encrypted_and_alarms_to_the_topic(workspace) -> None:
    template = workspace.templates[Component.ETL]
    template.has_resource_properties("AWS::SQS::Queue", {"SqsManagedSseEnabled": True,
                                                         "MessageRetentionPeriod": 14 * 24 * 3600})
    (queue_id,) = template.find_resources("AWS::SQS::Queue")
    alarm = template.find_resources("AWS::CloudWatch::Alarm", {"Properties": {
        "MetricName": "ApproximateNumberOfMessagesVisible", "Threshold": 0,
        "ComparisonOperator": "GreaterThanThreshold",
        "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]}})
    (props,) = (a["Properties"] for a in alarm.values())
    assert props["OKActions"] == props["AlarmActions"]
    (action,) = props["AlarmActions"]
    # a weak cross-stack reference (cdk.json: defaultCrossStackReferences) to the monitoring stack's topic
    assert action["Fn::GetStackOutput"]["StackName"] == workspace.stacks[Component.MONITORING].stack_name
    assert "AlarmTopic" in action["Fn::GetStackOutput"]["OutputName"]


def test_notebook_role_reads_curated_and_writes_artifacts_only(workspace) -> None:
    template = workspace.templates[Component.ML]
    template.has_resource_properties("AWS::IAM::Role", {"AssumeRolePolicyDocument": {"Statement": [
        Match.object_like({"Principal": {"Service": "sagemaker.amazonaws.com"}})]}})
    assert not template.find_resources("AWS::IAM::Policy"), "no inline grants: access comes from storage"
    (role,) = template.find_resources("AWS::IAM::Role").values()
    attached = sorted(ref["Fn::GetStackOutput"]["OutputName"] for ref in role["Properties"]["ManagedPolicyArns"])
    storage = workspace.stacks[Component.STORAGE].stack_name
    assert all(ref["Fn::GetStackOutput"]["StackName"] == storage for ref in role["Properties"]["ManagedPolicyArns"])
    assert len(attached) == 2
    assert "ArtifactsReadWritePolicy" in attached[0] and "CuratedReadPolicy" in attached[1]


def test_bucket_access_policies_reach_their_bucket_only(workspace) -> None:
    template = workspace.templates[Component.STORAGE]
    policies = {lid[:-8]: p["Properties"] for lid, p in template.find_resources("AWS::IAM::ManagedPolicy").items()}
    assert set(policies) == {"CuratedReadPolicy", "ArtifactsReadWritePolicy"}
    for name, props in policies.items():
        bucket = name.removesuffix("ReadWritePolicy").removesuffix("ReadPolicy")
        actions = set()
        for statement in props["PolicyDocument"]["Statement"]:
            actions |= set(statement["Action"])
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for resource in resources:
                refs = [v for v in str(resource).split("'") if v.endswith(tuple("0123456789ABCDEF")) and v[:-8]]
                assert any(r.startswith(bucket) for r in refs), (name, resource)
                assert not any(r.startswith(("Raw", "Staging", "AccessLogs")) for r in refs), (name, resource)
        assert not any("*" in a for a in actions), "explicit actions only"
        writes = {"s3:PutObject", "s3:DeleteObject"}
        assert (writes <= actions) is name.endswith("ReadWritePolicy")


def test_service_log_group_keeps_logs_as_configured(workspace, config) -> None:
    days = config.stage(workspace.target.stage).monitoring.log_retention_days
    workspace.templates[Component.MODEL_SERVICE].has_resource_properties(
        "AWS::Logs::LogGroup", {"RetentionInDays": days})
