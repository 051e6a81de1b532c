"""SQS (raw-file events from EventBridge) -> one pipeline execution per raw object, at most so many at once.

Events wait in the queue instead of failing against Glue's limit on concurrent runs: a message that cannot
start now goes back to the queue for longer each time it is tried (`logic.retry_seconds`); how long the
oldest message of each batch has waited is a metric (SQS's own age metric leaves out a message received three
times or more: every waiting one, soon), which alarms past the configured age; after its receive limit a
message goes to the dead-letter queue (alarm). Each execution is named after its object (`logic.execution_name`), so the
duplicate deliveries S3 and EventBridge may make start nothing. The execution's input is the event as
EventBridge sent it, as when the rule started the state machine itself.
"""

from __future__ import annotations

import os
import random
import time
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.dispatch.logic import (
    MalformedEvent,
    execution_name,
    raw_file_event,
    raw_key_of,
    retry_seconds,
    start_now,
    waited_seconds,
)
from lambdas.observability import instrumented, logger, metrics
from lambdas.telemetry import Metric
from pipeline.ledger import Entry, Step, ledger_from_environment, record_all

if TYPE_CHECKING:  # the stubs are a development dependency: the Lambda runtime has none
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_stepfunctions import SFNClient


def running_executions(sfn: SFNClient, state_machine: str, limit: int) -> int:
    """Executions running now, counted up to `limit` (no more is needed to decide)."""
    page = sfn.list_executions(stateMachineArn=state_machine, statusFilter="RUNNING", maxResults=limit)
    return len(page["executions"])


def execution_arn(state_machine: str, name: str) -> str:
    """The ARN an execution of `state_machine` named `name` has (or would have)."""
    prefix, _, machine = state_machine.rpartition(":stateMachine:")
    return f"{prefix}:execution:{machine}:{name}"


def _exists(sfn: SFNClient, execution: str) -> bool:
    """Whether the execution exists, running or closed. StartExecution alone cannot tell: for a running one
    of the same name and input it answers as if it had started it."""
    try:
        sfn.describe_execution(executionArn=execution)
    except sfn.exceptions.ExecutionDoesNotExist:
        return False
    return True


def dispatch(
    sfn: SFNClient, sqs: SQSClient, queue_url: str, state_machine: str, limit: int, records: list[dict[str, Any]]
) -> dict[str, Any]:
    """Start an execution for each record while fewer than `limit` run; the rest are reported as the batch's
    failures (SQS keeps them) with their visibility set to `retry_seconds`."""
    now_ms = int(time.time() * 1000)
    oldest = max((waited_seconds(int(r["attributes"]["SentTimestamp"]), now_ms) for r in records), default=0.0)
    running = running_executions(sfn, state_machine, limit)
    started, duplicates, waiting, failed = [], [], [], []
    entries: list[Entry] = []
    for record in records:
        message = record["messageId"]
        try:
            event = raw_file_event(record["body"])
        except MalformedEvent:
            logger.exception("queued message is not a raw-file event; left for the dead-letter queue")
            failed.append(message)
            continue
        if not start_now(running, limit):
            waiting.append(message)
            sqs.change_message_visibility(
                QueueUrl=queue_url,
                ReceiptHandle=record["receiptHandle"],
                VisibilityTimeout=retry_seconds(
                    int(record["attributes"]["ApproximateReceiveCount"]),
                    random.random(),  # noqa: S311 (jitter, not a secret)
                ),
            )
            continue
        name = execution_name(event)
        # recorded for a repeated event too: the same record again, in case the first delivery's was lost
        entries.append(Entry(raw_key_of(event), Step.DISPATCHED, {"execution": name}))
        if _exists(sfn, execution_arn(state_machine, name)):
            duplicates.append(name)  # this object's execution ran or runs: a repeated event
            logger.info("duplicate event: its execution exists", extra={"key": event.key, "execution": name})
            continue
        try:
            sfn.start_execution(stateMachineArn=state_machine, name=name, input=record["body"])
        except sfn.exceptions.ExecutionAlreadyExists:  # another dispatcher started it meanwhile
            duplicates.append(name)
            continue
        running += 1
        started.append(name)
    logger.info(
        "dispatched",
        extra={"started": started, "duplicates": duplicates, "waiting": len(waiting), "malformed": len(failed)},
    )
    return {
        "started": started,
        "duplicates": duplicates,
        "batchItemFailures": [{"itemIdentifier": m} for m in [*waiting, *failed]],
        "ledger": entries,
        "oldest_wait_seconds": oldest,
    }


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = dispatch(
        boto3.client("stepfunctions"),
        boto3.client("sqs"),
        os.environ["QUEUE_URL"],
        os.environ["STATE_MACHINE_ARN"],
        int(os.environ["MAX_RUNNING_FILES"]),
        event["Records"],
    )
    record_all(ledger_from_environment(), result["ledger"])
    metrics.add_metric(name=Metric.EXECUTIONS_STARTED, unit=MetricUnit.Count, value=len(result["started"]))
    metrics.add_metric(name=Metric.DUPLICATE_EVENTS, unit=MetricUnit.Count, value=len(result["duplicates"]))
    metrics.add_metric(name=Metric.FILE_WAIT_SECONDS, unit=MetricUnit.Seconds, value=result["oldest_wait_seconds"])
    return {"batchItemFailures": result["batchItemFailures"]}
