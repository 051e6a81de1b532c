"""The deploy checks itself: `python -m infra.smoke <ref>` after `cdk deploy`.

It resolves the ref to its workspace (the one rule, infra/workspace.py), reads the outputs of the
workspace's stacks, puts a tiny file of the check-only dataset into landing, invokes ingest, waits
(bounded) for the pipeline execution of that raw file to pass its gate and end in CheckPassed, checks
that nothing of the check dataset is under curated, and calls the service's `/health` (and prints
`/ready`); an internal service (reachable from its VPC only) it checks through its load balancer's own
health check of the tasks, which calls the same `/health`. A short report goes to stdout and to
$GITHUB_STEP_SUMMARY; the exit code is non-zero, and stderr names the step and the reason, when a step fails.

Why a check-only dataset: the check must prove the pipeline end to end in every stage, prd included,
without its rows ever reaching training or anything else that reads curated. Its contract says
`check_only: true`; the state machine ends such files after the gate, and staging_to_curated refuses them.

The logic is in pure functions (the tests call them directly); AWS and HTTP are at the edge
(`Edge`), injected into `run()` so the tests can use moto, the real ingest handler, or the emulator.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from infra.naming import Component, stack_name
from infra.stack_outputs import (
    CHECK_PASSED_STATE,
    CURATED_OUTPUT,
    INGEST_FUNCTION_OUTPUT,
    LANDING_OUTPUT,
    PROMOTION_STATE,
    RAW_OUTPUT,
    SERVICE_ENDPOINT_OUTPUT,
    SERVICE_TARGET_GROUP_OUTPUT,
    SERVICE_URL_OUTPUT,
    STATE_MACHINE_OUTPUT,
)
from pipeline.contract import Contract
from pipeline.layout import LayoutError, parse_raw_key

if TYPE_CHECKING:  # the stubs are a development dependency, not installed where the check runs
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_stepfunctions.type_defs import DescribeExecutionOutputTypeDef, HistoryEventTypeDef

CHECK_CONTRACT = "platform_check/smoke"
"""The check-only dataset the smoke check lands (contracts/platform_check/smoke.yaml)."""
DEFAULT_TIMEOUT_SECONDS = 1200.0
"""Two Glue runs (start-up about a minute each) and two Lambdas fit well inside 20 minutes."""
DEFAULT_INTERVAL_SECONDS = 15.0
START_SLACK = timedelta(minutes=5)
"""Executions started this long before the file was put are still looked at (clock skew)."""


class Step(StrEnum):
    """The steps, in order; their names are what the report and the error message say."""

    OUTPUTS = "outputs"
    LANDING = "landing"
    INGEST = "ingest"
    PIPELINE = "pipeline"
    CURATED = "curated"
    SERVICE = "service"


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_RUN = "not run"


@dataclass(frozen=True)
class StepResult:
    step: Step
    status: Status
    detail: str


class StepFailed(Exception):
    """A step that did not pass: the message is the reason, for the report and stderr."""


# --- pure logic -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkspaceOutputs:
    """What the check needs from the deployed stacks; `service_url` is None when the stage has none."""

    landing_bucket: str
    raw_bucket: str
    curated_bucket: str
    ingest_function: str | None
    """None (and the state machine's too) where the stage has no ETL (config components.etl: false)."""
    state_machine_arn: str | None
    service_url: str | None
    service_endpoint: str | None = None
    """internal, public, open or iam (config `service.endpoint`); None from a stack that predates it (open)."""
    service_target_group: str | None = None


def workspace_outputs(
    project: str,
    workspace: str,
    stack_outputs: Mapping[Component, Mapping[str, str] | None],
    components: Collection[Component] = tuple(Component),
) -> WorkspaceOutputs:
    """Pick the outputs out of each stack's (None: the stack does not exist). `components`: the stacks the
    stage's config has (a switched-off one is neither needed nor read). Raises StepFailed naming the stack and
    output key that are missing, and what to do."""
    needed = {
        Component.STORAGE: (LANDING_OUTPUT, RAW_OUTPUT, CURATED_OUTPUT),
        Component.ETL: (INGEST_FUNCTION_OUTPUT, STATE_MACHINE_OUTPUT),
        Component.MODEL_SERVICE: (SERVICE_URL_OUTPUT,),
    }
    problems = []
    for component, keys in needed.items():
        if component not in components:
            continue
        outputs = stack_outputs.get(component)
        name = stack_name(project, workspace, component)
        if outputs is None:
            problems.append(f"stack {name} does not exist (deploy the workspace first)")
            continue
        problems += [
            f"stack {name} has no output {key} (deploy this code's version of it)" for key in keys if key not in outputs
        ]
    if problems:
        raise StepFailed("; ".join(problems))
    storage = stack_outputs[Component.STORAGE] or {}
    etl = (stack_outputs.get(Component.ETL) or {}) if Component.ETL in components else {}
    service = (stack_outputs.get(Component.MODEL_SERVICE) or {}) if Component.MODEL_SERVICE in components else {}
    return WorkspaceOutputs(
        storage[LANDING_OUTPUT],
        storage[RAW_OUTPUT],
        storage[CURATED_OUTPUT],
        etl.get(INGEST_FUNCTION_OUTPUT),
        etl.get(STATE_MACHINE_OUTPUT),
        service.get(SERVICE_URL_OUTPUT),
        service.get(SERVICE_ENDPOINT_OUTPUT),
        service.get(SERVICE_TARGET_GROUP_OUTPUT),
    )


CHECK_ROWS = (("smoke-1", "0.25", "0.5"), ("smoke-2", "0.5", "0.75"), ("smoke-3", "1", "0"))
"""The check file's rows: every one valid under the check contract (a test holds them to it)."""


def check_file(contract: Contract, run_id: str) -> tuple[str, bytes]:
    """The landing key and CSV body of one check file. The run id makes the name unique, so that two
    checks in the same second never meet in raw (raw is write-once)."""
    if not contract.check_only:
        raise ValueError(f"{contract.name} is not check-only: the smoke check must never land real data")
    header = ",".join(contract.column_names)
    body = "\n".join([header, *(",".join(row) for row in CHECK_ROWS)]) + "\n"
    return f"{contract.dataset}/{contract.table}/smoke-{run_id}.csv", body.encode()


def raw_key_for(landing_key: str, raw_keys: Iterable[str]) -> str | None:
    """The raw key ingest gave a landed file: same dataset, table and file name, any created_at."""
    dataset, table, file = landing_key.split("/", 2)
    for key in raw_keys:
        try:
            raw = parse_raw_key(key)
        except LayoutError:
            continue
        if (raw.dataset, raw.table, raw.file) == (dataset, table, file):
            return key
    return None


def ingest_outcome(landing_key: str, result: Mapping[str, Any]) -> str | None:
    """The raw key out of what the ingest handler returns (`moved`, `already_in_raw`, `quarantined`,
    `conflicts`); None when this run did not see the file (the scheduled ingest may have moved it first).
    Raises StepFailed when ingest quarantined it or hit a conflict."""
    if landing_key in result.get("quarantined", []):
        raise StepFailed(
            f"ingest quarantined {landing_key} (no contract for it?): see the quarantine bucket's "
            f"files/landing/{landing_key}.reason.json"
        )
    conflict = raw_key_for(landing_key, result.get("conflicts", []))
    if conflict:
        raise StepFailed(f"ingest found other content at {conflict} and left {landing_key} in landing")
    return raw_key_for(landing_key, [*result.get("moved", []), *result.get("already_in_raw", [])])


def event_key(execution_input: str | None) -> str | None:
    """The raw key in an execution's input (the EventBridge event's detail.object.key), decoded: S3 and
    EventBridge may URL-encode keys (`=` as %3D), and the raw layout has `=` in every key."""
    try:
        key = json.loads(execution_input or "{}")["detail"]["object"]["key"]
    except (ValueError, KeyError, TypeError):
        return None
    return unquote_plus(key) if isinstance(key, str) else None


def execution_for_key(executions: Iterable[Mapping[str, Any]], key: str) -> Mapping[str, Any] | None:
    """The execution (a describe_execution result, with `input`) whose input names the raw key; the
    newest if a retry started more than one."""
    matching = [e for e in executions if event_key(e.get("input")) == key]
    return max(matching, key=lambda e: e["startDate"]) if matching else None


@dataclass(frozen=True)
class Verdict:
    done: bool
    passed: bool
    detail: str


def entered_states(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """State names an execution entered, in order, from its history events."""
    return [
        e["stateEnteredEventDetails"]["name"]
        for e in sorted(events, key=lambda e: e["id"])
        if "stateEnteredEventDetails" in e
    ]


def execution_verdict(execution: Mapping[str, Any], states: list[str]) -> Verdict:
    """Passed only if the execution succeeded, its gate passed, it ended in CheckPassed and never entered
    the promotion to curated. Anything else finished is a failure with the reason."""
    status = execution["status"]
    if status == "RUNNING" or status == "PENDING_REDRIVE":
        where = f", at {states[-1]}" if states else ""
        return Verdict(False, False, f"{status.lower()}{where}")
    if status != "SUCCEEDED":
        reason = " ".join(str(execution[k]) for k in ("error", "cause") if execution.get(k))
        return Verdict(
            True,
            False,
            f"execution {status}: {reason or 'no reason given'} (last state: {states[-1] if states else '?'})",
        )
    output = json.loads(execution.get("output") or "{}")
    validation, gate = output.get("validation", {}), output.get("gate", {})
    if validation.get("valid") is False:
        return Verdict(True, False, f"validate quarantined the check file: {validation.get('reason')}")
    if PROMOTION_STATE in states:
        return Verdict(True, False, f"the check file reached {PROMOTION_STATE}: check data must never be promoted")
    if gate.get("passed") is not True:
        return Verdict(True, False, f"the gate did not pass: {gate.get('failures', gate)}")
    if CHECK_PASSED_STATE not in states:
        return Verdict(
            True, False, f"the execution succeeded without reaching {CHECK_PASSED_STATE} (states: {', '.join(states)})"
        )
    return Verdict(True, True, f"gate passed, ended in {CHECK_PASSED_STATE} ({gate.get('verdict', '')})")


def wait_for(
    poll: Callable[[], Verdict],
    *,
    timeout: float,
    interval: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    progress: Callable[[str], None],
) -> Verdict:
    """Poll until the verdict is done or `timeout` seconds have passed, with one progress line per poll.
    A timeout is a failure that says how long it waited and what it saw last."""
    started = clock()
    while True:
        verdict = poll()
        elapsed = clock() - started
        progress(f"  pipeline: {verdict.detail} ({elapsed:.0f} s of at most {timeout:.0f} s)")
        if verdict.done:
            return verdict
        if elapsed + interval > timeout:
            return Verdict(
                True,
                False,
                f"not finished after {elapsed:.0f} s (timeout {timeout:.0f} s; last seen: "
                f"{verdict.detail}); raise --timeout or look at the execution",
            )
        sleep(interval)


def service_result(url: str | None, health: tuple[int, str] | str, ready: tuple[int, str] | str | None) -> StepResult:
    """/health must answer 200; /ready is reported as it is (503 with a reason before the first model is
    normal). A string instead of (status, body) is why the request got no answer."""
    if url is None:
        return StepResult(
            Step.SERVICE,
            Status.SKIPPED,
            f"the stage exposes no service endpoint (no {SERVICE_URL_OUTPUT} output in the model-service stack)",
        )
    if isinstance(health, str) or health[0] != 200:
        got = health if isinstance(health, str) else f"HTTP {health[0]} {health[1][:200]}"
        return StepResult(Step.SERVICE, Status.FAILED, f"GET {url}/health: {got} (expected 200)")
    shown = ready if isinstance(ready, str) or ready is None else f"{ready[0]} {ready[1][:300]}"
    return StepResult(Step.SERVICE, Status.PASSED, f"/health 200; /ready {shown}")


def target_health_result(target_group: str, health: Sequence[Mapping[str, Any]]) -> StepResult:
    """An internal service, from its load balancer's health check (`/health`, every 15 s): passed when a
    task is healthy; else the states and reasons the load balancer gives (`describe_target_health`)."""
    states = [
        (d.get("TargetHealth", {}).get("State", "unknown"), d.get("TargetHealth", {}).get("Reason")) for d in health
    ]
    healthy = sum(state == "healthy" for state, _ in states)
    if healthy:
        return StepResult(
            Step.SERVICE,
            Status.PASSED,
            f"internal: {healthy} of {len(states)} task(s) healthy (the load balancer's /health check)",
        )
    seen = ", ".join(state + (f" ({reason})" if reason else "") for state, reason in states) or "no target"
    return StepResult(
        Step.SERVICE, Status.FAILED, f"internal: no healthy task in {target_group.rsplit(':', 1)[-1]}: {seen}"
    )


def not_run_after(failed: Step, steps: Iterable[Step]) -> list[StepResult]:
    return [StepResult(s, Status.NOT_RUN, f"needs {failed.value}") for s in steps]


def first_failure(results: Iterable[StepResult]) -> StepResult | None:
    return next((r for r in results if r.status == Status.FAILED), None)


PIPELINE_STEPS = [Step.LANDING, Step.INGEST, Step.PIPELINE, Step.CURATED]


def switched_off(steps: Sequence[Step], component: str) -> list[StepResult]:
    """The steps of a component the stage's config switches off: skipped, and why."""
    return [
        StepResult(step, Status.SKIPPED, f"the stage has no {component} (config components.{component}: false)")
        for step in steps
    ]


def report(workspace: str, stage: str, results: list[StepResult]) -> str:
    """Markdown: readable in a log and in the job summary."""
    failed = first_failure(results)
    verdict = f"**failed** at `{failed.step}`" if failed else "**passed**"
    lines = [
        f"### Smoke check of workspace `{workspace}` ({stage}): {verdict}",
        "",
        "| step | result | detail |",
        "|---|---|---|",
    ]
    lines += [f"| {r.step} | {r.status} | {r.detail.replace('|', '/')} |" for r in results]
    return "\n".join(lines) + "\n"


# --- the edge: AWS and HTTP -------------------------------------------------------------------------------

ClientFactory = Callable[[str], Any]
Invoker = Callable[[str], Mapping[str, Any]]
HttpGet = Callable[[str], "tuple[int, str] | str"]


def stack_outputs(cfn: CloudFormationClient, name: str) -> dict[str, str] | None:
    try:
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    except cfn.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def lambda_invoker(client: ClientFactory) -> Invoker:
    """Synchronous invoke; a function error becomes StepFailed with the function's own message."""

    def invoke(function: str) -> Mapping[str, Any]:
        lam: LambdaClient = client("lambda")
        response = lam.invoke(FunctionName=function, InvocationType="RequestResponse", Payload=b"{}")
        text = response["Payload"].read().decode("utf-8", "replace")
        try:
            payload = json.loads(text or "null")
        except ValueError:  # not the function's answer: the service's own error text (e.g. an emulator's)
            payload = text
        if response.get("FunctionError"):
            message = payload.get("errorMessage", payload) if isinstance(payload, dict) else payload
            raise StepFailed(f"invoking {function} failed ({response['FunctionError']}): {str(message)[:500]}")
        if not isinstance(payload, dict):
            raise StepFailed(f"{function} answered {text[:200]!r}, not the ingest result (a JSON object)")
        return payload

    return invoke


def http_get(url: str, timeout: float = 10.0, headers: Mapping[str, str] | None = None) -> tuple[int, str] | str:
    """(status, body), or why there was no answer."""
    if not url.startswith(("http://", "https://")):  # a stack output, but never a file: or custom scheme
        return f"not an http(s) URL: {url!r}"
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 (http(s) only, checked above)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) only, checked above)
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        return f"no answer ({getattr(exc, 'reason', exc)})"


def signed_http_get(region: str, credentials: Any = None) -> HttpGet:
    """GET with the request signed (SigV4, service `lambda`) by `credentials` (the process's, by default): how a
    serverless service's function URL takes requests (config `service.endpoint: iam`)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    if credentials is None:
        import boto3

        credentials = boto3.Session().get_credentials()

    def get(url: str) -> tuple[int, str] | str:
        if credentials is None:
            return "no AWS credentials to sign the request with"
        request = AWSRequest(method="GET", url=url)
        SigV4Auth(credentials.get_frozen_credentials(), "lambda", region).add_auth(request)
        return http_get(url, headers=dict(request.headers.items()))

    return get


def raw_keys_of(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def recent_executions(sfn: SFNClient, state_machine: str, since: datetime) -> list[DescribeExecutionOutputTypeDef]:
    """Executions started after `since`, described (the input is only in describe_execution)."""
    found: list[DescribeExecutionOutputTypeDef] = []
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine):
        for item in page["executions"]:  # newest first
            if item["startDate"] < since:
                return found
            found.append(sfn.describe_execution(executionArn=item["executionArn"]))
    return found


def history_states(sfn: SFNClient, execution_arn: str) -> list[str]:
    events: list[HistoryEventTypeDef] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events += page["events"]
    return entered_states(events)


@dataclass
class Edge:
    """Everything the check does outside this process; the tests swap any part."""

    client: ClientFactory
    invoke: Invoker | None = None
    get: HttpGet = http_get
    signed_get: HttpGet | None = None
    """A GET signed for a function URL (a serverless service); None: the check cannot call one."""
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    progress: Callable[[str], None] = field(default=lambda line: print(line, flush=True))


@dataclass(frozen=True)
class Settings:
    project: str
    workspace: str
    stage: str
    check_contract: Contract
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    interval: float = DEFAULT_INTERVAL_SECONDS
    components: tuple[Component, ...] = tuple(Component)
    """The stage's stacks (config `components`): the steps of a switched-off one are skipped, saying so."""


def run(settings: Settings, edge: Edge) -> list[StepResult]:
    """Every step in order; a step whose input a failed step should have made is `not run`. The service
    is checked whatever the pipeline did (it needs only the outputs)."""
    results: list[StepResult] = []
    cfn: CloudFormationClient = edge.client("cloudformation")
    try:
        outputs = workspace_outputs(
            settings.project,
            settings.workspace,
            {c: stack_outputs(cfn, stack_name(settings.project, settings.workspace, c)) for c in settings.components},
            settings.components,
        )
    except StepFailed as exc:
        return [StepResult(Step.OUTPUTS, Status.FAILED, str(exc)), *not_run_after(Step.OUTPUTS, list(Step)[1:])]
    ingest, machine = outputs.ingest_function, outputs.state_machine_arn  # both there when the stage has ETL
    pipeline = f"ingest {ingest}, pipeline {machine.rsplit(':', 1)[-1]}" if ingest and machine else "no ETL"
    results.append(StepResult(Step.OUTPUTS, Status.PASSED, f"landing {outputs.landing_bucket}, {pipeline}"))
    if ingest and machine:
        results += _pipeline_steps(settings, edge, outputs, ingest, machine)
    else:
        results += switched_off(PIPELINE_STEPS, "etl")
    if Component.MODEL_SERVICE not in settings.components:
        results += switched_off([Step.SERVICE], "model_service")
    elif outputs.service_endpoint == "internal" and outputs.service_target_group:
        results.append(_internal_service_step(outputs.service_target_group, edge))
    elif outputs.service_endpoint == "iam":  # serverless: the function URL takes signed requests only
        if edge.signed_get is None:
            results.append(StepResult(Step.SERVICE, Status.FAILED, "the service takes IAM-signed requests: no signer"))
        else:
            results.append(_service_step(outputs.service_url, _until_answered(edge.signed_get, edge)))
    else:
        results.append(_service_step(outputs.service_url, edge.get))
    return results


def _pipeline_steps(
    settings: Settings, edge: Edge, outputs: WorkspaceOutputs, ingest_function: str, state_machine: str
) -> list[StepResult]:
    s3: S3Client = edge.client("s3")
    contract = settings.check_contract
    landing_key, body = check_file(contract, f"{edge.now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}")
    put_at = edge.now()
    results: list[StepResult] = []
    raw_key: str | None = None  # what ingest made of the landed file
    steps = PIPELINE_STEPS
    for index, step in enumerate(steps):
        try:
            if step == Step.LANDING:
                s3.put_object(Bucket=outputs.landing_bucket, Key=landing_key, Body=body, ContentType="text/csv")
                detail = f"s3://{outputs.landing_bucket}/{landing_key} ({len(CHECK_ROWS)} rows of {contract.name})"
            elif step == Step.INGEST:
                invoke = edge.invoke or lambda_invoker(edge.client)
                raw_key = ingest_outcome(landing_key, invoke(ingest_function)) or raw_key_for(
                    landing_key, raw_keys_of(s3, outputs.raw_bucket, f"{contract.dataset}/{contract.table}/")
                )
                if raw_key is None:
                    raise StepFailed(f"{landing_key} is neither moved by ingest nor in raw")
                detail = f"s3://{outputs.raw_bucket}/{raw_key}"
            elif step == Step.PIPELINE:
                if raw_key is None:  # never: a failed ingest step ends the loop before this one
                    raise RuntimeError("the pipeline step ran without the ingest step's raw key")
                verdict = _wait_for_execution(settings, edge, state_machine, raw_key, put_at - START_SLACK)
                if not verdict.passed:
                    raise StepFailed(verdict.detail)
                detail = verdict.detail
            else:
                prefix = f"{contract.dataset}/"
                found = raw_keys_of(s3, outputs.curated_bucket, prefix)
                if found:
                    raise StepFailed(
                        f"check data under curated: s3://{outputs.curated_bucket}/{found[0]} "
                        f"({len(found)} objects under {prefix})"
                    )
                detail = f"nothing under s3://{outputs.curated_bucket}/{prefix}"
        except StepFailed as exc:
            return [*results, StepResult(step, Status.FAILED, str(exc)), *not_run_after(step, steps[index + 1 :])]
        except Exception as exc:  # an AWS error: name the step, keep the service check going
            return [
                *results,
                StepResult(step, Status.FAILED, aws_error_detail(exc)),
                *not_run_after(step, steps[index + 1 :]),
            ]
        results.append(StepResult(step, Status.PASSED, detail))
    return results


DENIED_CODES = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")


def aws_error_detail(exc: Exception) -> str:
    """An AWS error as the report says it; a refusal says the likely fix: the deploy role predates the check."""
    detail = f"{type(exc).__name__}: {exc}"
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    if code in DENIED_CODES:
        detail += (
            " (the stage's deploy role may not do this: redeploy the one-time OIDC stack of this stage, "
            "<project>-github-oidc-<stage>, which grants what the smoke check does; README: one-time set-up)"
        )
    return detail


def _wait_for_execution(settings: Settings, edge: Edge, state_machine: str, raw_key: str, since: datetime) -> Verdict:
    sfn: SFNClient = edge.client("stepfunctions")

    def poll() -> Verdict:
        execution = execution_for_key(recent_executions(sfn, state_machine, since), raw_key)
        if execution is None:
            return Verdict(False, False, f"no execution for {raw_key} yet")
        return execution_verdict(execution, history_states(sfn, execution["executionArn"]))

    return wait_for(
        poll,
        timeout=settings.timeout,
        interval=settings.interval,
        clock=edge.clock,
        sleep=edge.sleep,
        progress=edge.progress,
    )


def _internal_service_step(target_group: str, edge: Edge) -> StepResult:
    elbv2: ElasticLoadBalancingv2Client = edge.client("elbv2")
    try:
        health = elbv2.describe_target_health(TargetGroupArn=target_group)["TargetHealthDescriptions"]
    except Exception as exc:
        return StepResult(Step.SERVICE, Status.FAILED, aws_error_detail(exc))
    return target_health_result(target_group, health)


SERVERLESS_FIRST_ANSWER_SECONDS = 90.0
"""How long a serverless service's first /health may take after a deploy: a cold start of an image Lambda has
not cached yet, and a new function URL or grant that answers 403 for a few seconds."""


def _until_answered(get: HttpGet, edge: Edge, seconds: float = SERVERLESS_FIRST_ANSWER_SECONDS) -> HttpGet:
    """`get`, tried again every 10 s while it gets no answer, 403, 502, 503 or 504, for `seconds` at most."""

    def patient(url: str) -> tuple[int, str] | str:
        deadline = edge.clock() + seconds
        while True:
            answer = get(url)
            settled = not isinstance(answer, str) and answer[0] not in (403, 502, 503, 504)
            if settled or url.endswith("/ready") or edge.clock() >= deadline:
                return answer  # /ready's 503 before a model is an answer: it is reported as it is
            edge.sleep(10)

    return patient


def _service_step(url: str | None, get: HttpGet) -> StepResult:
    if url is None:
        return service_result(None, "", None)
    base = url.rstrip("/")
    try:
        health = get(f"{base}/health")
        ready = get(f"{base}/ready") if not isinstance(health, str) and health[0] == 200 else None
    except Exception as exc:
        return StepResult(Step.SERVICE, Status.FAILED, f"GET {base}/health: {type(exc).__name__}: {exc}")
    return service_result(base, health, ready)


def main(argv: list[str] | None = None, edge: Edge | None = None) -> int:
    from infra.config import DEFAULT_CONFIG_PATH
    from infra.workspace.cli import configured_target
    from pipeline.contract import load_contracts

    parser = argparse.ArgumentParser(prog="python -m infra.smoke", description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="the ref that was deployed (as given to `cdk deploy -c branch=...`)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="seconds to wait for the pipeline execution (default %(default)s)",
    )
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_SECONDS, help="seconds between polls")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="project config file")
    args = parser.parse_args(argv)
    found = configured_target(args.ref, args.config)
    if found is None:
        return 2
    config, target = found
    contracts = load_contracts()
    if CHECK_CONTRACT not in contracts or not contracts[CHECK_CONTRACT].check_only:
        print(f"error: the smoke check needs contracts/{CHECK_CONTRACT}.yaml with check_only: true", file=sys.stderr)
        return 2
    region = config.stage(target.stage).region
    if edge is None:
        from botocore.config import Config

        from infra.aws_clients import client

        long_reads = Config(read_timeout=360)  # a synchronous invoke waits for ingest (timeout 5 minutes)
        edge = Edge(
            client=lambda service: client(service, region_name=region, config=long_reads),
            signed_get=signed_http_get(region),
        )
    settings = Settings(
        config.project,
        target.workspace,
        target.stage.value,
        contracts[CHECK_CONTRACT],
        timeout=args.timeout,
        interval=args.interval,
        components=config.stage(target.stage).components.stacks,
    )
    print(f"smoke check of workspace {target.workspace} ({target.stage.value}, {region})", flush=True)
    results = run(settings, edge)
    text = report(target.workspace, target.stage.value, results)
    print(text)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(text)
    failed = first_failure(results)
    if failed:
        print(f"smoke check failed at step {failed.step.value!r}: {failed.detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
