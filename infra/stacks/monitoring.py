"""The workspace's alarm topic: one SNS topic that every alarm of the workspace targets, encrypted with a key of its
own in int and prd (and wherever config monitoring.alarm_topic_key is on)."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.checkov import skip_checkov
from infra.construct_tree import cfn_resource
from infra.naming import Component
from infra.stack_outputs import ALARM_TOPIC_OUTPUT
from infra.stacks.base import WorkspaceContext, WorkspaceStack

ALARM_PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com")
"""Services that publish to the topic and so must use its key."""


class MonitoringStack(WorkspaceStack):
    component = Component.MONITORING

    def __init__(self, scope: Construct, ctx: WorkspaceContext) -> None:
        super().__init__(scope, ctx)
        # A customer-managed key: CloudWatch alarms and EventBridge cannot publish to a topic encrypted with the
        # AWS-managed SNS key. Feature stages may go without (config monitoring.alarm_topic_key).
        self.topic_key = (
            kms.Key(
                self,
                "AlarmTopicKey",
                description=f"Encrypts the alarm topic of workspace {ctx.target.workspace}",
                enable_key_rotation=True,
                pending_window=Duration.days(7),
            )
            if ctx.settings.monitoring.alarm_topic_key
            else None
        )
        # Only this account's alarms and rules may use the key and publish (no confused deputy).
        publishers = [
            iam.ServicePrincipal(service).with_conditions({"StringEquals": {"aws:SourceAccount": self.account}})
            for service in ALARM_PUBLISHERS
        ]
        self.alarm_topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"{ctx.config.project} {ctx.target.workspace} alarms",
            master_key=self.topic_key,
            enforce_ssl=True,
        )
        for publisher in publishers:
            self.alarm_topic.grant_publish(publisher)
            if self.topic_key is not None:
                self.topic_key.grant(publisher, "kms:Decrypt", "kms:GenerateDataKey*")
        if self.topic_key is None:
            skip_checkov(
                cfn_resource(self.alarm_topic),
                CKV_AWS_26="A feature stage's alarm topic without a key of its own (monitoring.alarm_topic_key, cost): "
                "alarms and EventBridge cannot publish under the AWS-managed SNS key; its messages are alarm names "
                "and states, no data. int and prd encrypt theirs (config validation).",
            )
        for address in ctx.settings.monitoring.alarm_emails:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(address))

        CfnOutput(self, ALARM_TOPIC_OUTPUT, value=self.alarm_topic.topic_arn)
