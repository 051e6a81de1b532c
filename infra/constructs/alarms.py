"""Alarms that notify the workspace topic: one helper so that no alarm forgets its action."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct


def alarm_above(
    scope: Construct,
    construct_id: str,
    *,
    description: str,
    metric: cloudwatch.IMetric,
    threshold: float,
    topic: sns.ITopic,
    periods: int = 1,
    missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
) -> cloudwatch.Alarm:
    """Alarm when `metric` stays above `threshold` for `periods` periods (no data is no problem), and
    notify the topic on alarm and on recovery, so that it also says when a problem is over. `missing`: what no
    data means (by default, no problem; IGNORE keeps the last state where a metric comes only now and then)."""
    alarm = cloudwatch.Alarm(
        scope,
        construct_id,
        alarm_description=description,
        metric=metric,
        threshold=threshold,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=periods,
        treat_missing_data=missing,
    )
    alarm.add_alarm_action(actions.SnsAction(topic))
    alarm.add_ok_action(actions.SnsAction(topic))
    return alarm


def queue_not_empty_alarm(
    scope: Construct, construct_id: str, queue: sqs.IQueue, topic: sns.ITopic
) -> cloudwatch.Alarm:
    """A dead-letter queue holds only failures: one message is one too many."""
    return alarm_above(
        scope,
        construct_id,
        description=f"Messages are waiting in dead-letter queue {queue.node.path}",
        metric=queue.metric_approximate_number_of_messages_visible(
            period=Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
        ),
        threshold=0,
        topic=topic,
    )
