"""Ingest, validation and transformation from raw to curated.

For now it holds the pipeline's dead-letter queue and its alarm; the ETL issue adds the Lambdas,
Glue jobs and the state machine that use them.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.alarms import queue_not_empty_alarm
from infra.nag import acknowledge
from infra.naming import Component
from infra.stacks.base import WorkspaceContext, WorkspaceStack


class EtlStack(WorkspaceStack):
    component = Component.ETL

    def __init__(self, scope: Construct, ctx: WorkspaceContext, *, alarm_topic: sns.ITopic) -> None:
        super().__init__(scope, ctx)
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),  # the SQS maximum: time to look before it is gone
        )
        acknowledge(
            self.dead_letters.node.default_child,
            "SQS3",
            reason="This queue is itself the dead-letter queue of the pipeline; a dead-letter queue for it "
            "would only move failures further from view. It alarms to the workspace topic when not empty.",
        )
        queue_not_empty_alarm(self, "DeadLetterQueueNotEmpty", self.dead_letters, alarm_topic)
