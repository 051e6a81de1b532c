"""The alarm topic: encrypted with a key alarms can use, TLS-only, subscribed from config."""

from __future__ import annotations

from aws_cdk.assertions import Match

from infra.naming import Component


def test_topic_is_encrypted_with_a_rotating_key_of_its_own_where_config_asks(workspace, config) -> None:
    template = workspace.templates[Component.MONITORING]
    keys = template.find_resources("AWS::KMS::Key", {"Properties": {"EnableKeyRotation": True}})
    (topic,) = template.find_resources("AWS::SNS::Topic").values()
    if config.stage(workspace.target.stage).monitoring.alarm_topic_key:
        (key_id,) = keys
        assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    else:  # feature: its one customer-managed key is the notebook volume's
        assert keys == {} and "KmsMasterKeyId" not in topic["Properties"]
    assert (workspace.target.stage.is_persistent, bool(keys)) != (True, False), "int and prd always encrypt it"


def test_alarm_services_may_use_the_key_and_publish_only_from_this_account(workspace, config) -> None:
    template = workspace.templates[Component.MONITORING]
    account = config.stage(workspace.target.stage).account
    publisher = {
        "Effect": "Allow",
        "Principal": {"Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com"]},
        "Condition": {"StringEquals": {"aws:SourceAccount": account}},
    }
    if template.find_resources("AWS::KMS::Key"):
        template.has_resource_properties(
            "AWS::KMS::Key",
            {
                "KeyPolicy": {
                    "Statement": Match.array_with(
                        [Match.object_like({**publisher, "Action": ["kms:Decrypt", "kms:GenerateDataKey*"]})]
                    )
                }
            },
        )
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with([Match.object_like({**publisher, "Action": "sns:Publish"})])
            }
        },
    )


def test_topic_denies_publishing_without_tls(workspace) -> None:
    workspace.templates[Component.MONITORING].has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "sns:Publish",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_one_email_subscription_per_configured_address(workspace, config) -> None:
    template = workspace.templates[Component.MONITORING]
    subscriptions = template.find_resources("AWS::SNS::Subscription")
    (topic_id,) = template.find_resources("AWS::SNS::Topic")
    expected = config.stage(workspace.target.stage).monitoring.alarm_emails
    assert sorted(s["Properties"]["Endpoint"] for s in subscriptions.values()) == sorted(expected)
    for s in subscriptions.values():
        assert s["Properties"]["Protocol"] == "email"
        assert s["Properties"]["TopicArn"] == {"Ref": topic_id}
