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
    (policy,) = template.find_resources("AWS::IAM::Policy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    imported = {str(s["Resource"]) for s in statements}
    assert all("Curated" in r or "Artifacts" in r for r in imported), imported
    writes = [s for s in statements if any(a.startswith(("s3:Put", "s3:Delete")) for a in
                                           ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))]
    assert writes and all("Artifacts" in str(s["Resource"]) for s in writes)


def test_service_log_group_keeps_logs_as_configured(workspace, config) -> None:
    days = config.stage(workspace.target.stage).monitoring.log_retention_days
    workspace.templates[Component.MODEL_SERVICE].has_resource_properties(
        "AWS::Logs::LogGroup", {"RetentionInDays": days})
