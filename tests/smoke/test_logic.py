"""The smoke check's pure logic: outputs, the check file, ingest's answer, the execution of the file,
the verdict, the bounded wait, the service and the report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from infra import smoke
from infra.naming import Component
from infra.smoke import Status, Step, StepFailed, StepResult, Verdict
from infra.stack_outputs import CHECK_PASSED_STATE, PROMOTION_STATE
from pipeline.contract import load_contracts

CHECK = load_contracts()["platform_check/smoke"]
LANDING = "platform_check/smoke/smoke-1.csv"
RAW = "platform_check/smoke/created_at=20261201T101010Z/smoke-1.csv"
OUTPUTS = {
    Component.STORAGE: {"LandingBucketName": "l", "RawBucketName": "r", "CuratedBucketName": "c"},
    Component.ETL: {"IngestFunctionName": "f", "PipelineStateMachineArn": "arn:sm"},
    Component.MODEL_SERVICE: {"ServiceUrl": "http://alb"},
}


def test_outputs_are_read_from_their_stacks() -> None:
    found = smoke.workspace_outputs("p", "ws", OUTPUTS)
    assert (found.landing_bucket, found.ingest_function, found.state_machine_arn, found.service_url) == (
        "l",
        "f",
        "arn:sm",
        "http://alb",
    )
    with pytest.raises(StepFailed, match=r"stack p-ws-model-service does not exist"):
        smoke.workspace_outputs("p", "ws", {**OUTPUTS, Component.MODEL_SERVICE: None})


def test_a_switched_off_component_is_neither_needed_nor_read() -> None:
    storage_only = (Component.STORAGE, Component.MONITORING)
    found = smoke.workspace_outputs("p", "ws", OUTPUTS, storage_only)
    assert (found.landing_bucket, found.ingest_function, found.state_machine_arn, found.service_url) == (
        "l",
        None,
        None,
        None,
    ), "a stack deployed before its component was switched off is not read"
    missing = {Component.STORAGE: OUTPUTS[Component.STORAGE], Component.ETL: None, Component.MODEL_SERVICE: None}
    assert smoke.workspace_outputs("p", "ws", missing, storage_only).ingest_function is None
    with pytest.raises(StepFailed, match="stack p-ws-etl does not exist"):
        smoke.workspace_outputs("p", "ws", missing, (*storage_only, Component.ETL))


def test_missing_stacks_and_outputs_are_named() -> None:
    with pytest.raises(StepFailed, match=r"stack p-ws-etl does not exist \(deploy the workspace first\)"):
        smoke.workspace_outputs("p", "ws", {**OUTPUTS, Component.ETL: None})
    with pytest.raises(StepFailed, match="stack p-ws-etl has no output PipelineStateMachineArn"):
        smoke.workspace_outputs("p", "ws", {**OUTPUTS, Component.ETL: {"IngestFunctionName": "f"}})


def test_the_check_file_is_valid_under_the_check_contract_and_unique() -> None:
    key, body = smoke.check_file(CHECK, "run-1")
    assert key == "platform_check/smoke/smoke-run-1.csv" and smoke.check_file(CHECK, "run-2")[0] != key
    header, *rows = body.decode().splitlines()
    assert CHECK.header_problems(header.split(",")) == ([], [])
    assert len(rows) >= CHECK.quality.min_rows
    for row in rows:
        assert CHECK.check_row(dict(zip(header.split(","), row.split(","), strict=True)))[1] == []


def test_the_check_file_is_never_made_for_a_real_dataset() -> None:
    with pytest.raises(ValueError, match="diabetes/patients is not check-only"):
        smoke.check_file(load_contracts()["diabetes/patients"], "x")


@pytest.mark.parametrize(
    "result", [{"moved": [RAW]}, {"already_in_raw": ["diabetes/patients/created_at=20261201T101010Z/smoke-1.csv", RAW]}]
)
def test_ingest_result_gives_the_raw_key(result) -> None:
    assert smoke.ingest_outcome(LANDING, result) == RAW


def test_ingest_result_without_the_file_is_none_and_quarantine_or_conflict_fail() -> None:
    assert smoke.ingest_outcome(LANDING, {"moved": ["platform_check/smoke/created_at=20261201T101010Z/o.csv"]}) is None
    with pytest.raises(StepFailed, match=r"ingest quarantined platform_check/smoke/smoke-1\.csv"):
        smoke.ingest_outcome(LANDING, {"quarantined": [LANDING]})
    with pytest.raises(StepFailed, match="other content at"):
        smoke.ingest_outcome(LANDING, {"conflicts": [RAW]})


def execution(key: str, started: int, **extra) -> dict:
    event = {"detail": {"bucket": {"name": "r"}, "object": {"key": key}}}
    return {
        "executionArn": f"arn:{started}",
        "input": json.dumps(event),
        "startDate": datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=started),
        **extra,
    }


def test_the_execution_is_found_by_its_input_key_in_either_encoding() -> None:
    encoded = RAW.replace("=", "%3D")
    assert (
        smoke.execution_for_key([execution("other/x/created_at=1/y", 1), execution(RAW, 2)], RAW)["executionArn"]
        == "arn:2"
    )
    assert smoke.execution_for_key([execution(encoded, 3)], RAW)["executionArn"] == "arn:3"
    assert smoke.execution_for_key([execution(RAW, 4), execution(RAW, 9)], RAW)["executionArn"] == "arn:9"
    assert smoke.execution_for_key([execution(RAW + "x", 1), {"input": "not json"}], RAW) is None


PASSED_OUTPUT = json.dumps({"validation": {"valid": True}, "gate": {"passed": True, "verdict": "s3://s/v"}})
CHECK_PATH = [
    "Input",
    "ValidateFile",
    "Readable?",
    "RawToStagingRun",
    "QualityGate",
    "GatePassed?",
    "CheckOnly?",
    CHECK_PASSED_STATE,
]


@pytest.mark.parametrize(
    ("status", "output", "states", "done", "passed", "says"),
    [
        ("RUNNING", None, ["Input", "ValidateFile"], False, False, "running, at ValidateFile"),
        ("SUCCEEDED", PASSED_OUTPUT, CHECK_PATH, True, True, "gate passed, ended in CheckPassed"),
        (
            "SUCCEEDED",
            PASSED_OUTPUT,
            [*CHECK_PATH[:-1], PROMOTION_STATE],
            True,
            False,
            f"reached {PROMOTION_STATE}",
        ),
        (
            "SUCCEEDED",
            json.dumps({"validation": {"valid": False, "reason": "no header"}}),
            ["FileQuarantined"],
            True,
            False,
            "quarantined the check file: no header",
        ),
        ("SUCCEEDED", json.dumps({"gate": {"passed": False}}), CHECK_PATH, True, False, "the gate did not pass"),
        ("SUCCEEDED", PASSED_OUTPUT, CHECK_PATH[:-1], True, False, "without reaching CheckPassed"),
    ],
)
def test_the_verdict_needs_success_a_passed_gate_and_the_check_only_end(
    status, output, states, done, passed, says
) -> None:
    verdict = smoke.execution_verdict({"status": status, "output": output}, states)
    assert (verdict.done, verdict.passed) == (done, passed)
    assert says in verdict.detail


def test_a_failed_execution_gives_its_error_and_cause() -> None:
    verdict = smoke.execution_verdict(
        {"status": "FAILED", "error": "QualityGateFailed", "cause": "rules broken"}, ["GateFailed"]
    )
    assert verdict == Verdict(True, False, "execution FAILED: QualityGateFailed rules broken (last state: GateFailed)")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_wait_ends_at_the_verdict_with_a_progress_line_per_poll() -> None:
    clock, lines = FakeClock(), []
    answers = iter(
        [Verdict(False, False, "no execution yet"), Verdict(False, False, "running"), Verdict(True, True, "ok")]
    )
    verdict = smoke.wait_for(
        lambda: next(answers), timeout=100, interval=10, clock=clock, sleep=clock.sleep, progress=lines.append
    )
    assert verdict == Verdict(True, True, "ok") and clock.now == 20
    assert lines == [
        "  pipeline: no execution yet (0 s of at most 100 s)",
        "  pipeline: running (10 s of at most 100 s)",
        "  pipeline: ok (20 s of at most 100 s)",
    ]


def test_the_wait_is_bounded_and_a_timeout_says_what_it_saw_last() -> None:
    clock = FakeClock()
    verdict = smoke.wait_for(
        lambda: Verdict(False, False, "running, at QualityGate"),
        timeout=60,
        interval=15,
        clock=clock,
        sleep=clock.sleep,
        progress=lambda _: None,
    )
    assert (verdict.done, verdict.passed) == (True, False)
    assert clock.now <= 60
    assert "not finished after 60 s (timeout 60 s; last seen: running, at QualityGate)" in verdict.detail


@pytest.mark.parametrize(
    ("url", "health", "ready", "status", "says"),
    [
        (
            "http://a",
            (200, "{}"),
            (503, '{"reason": "no champion"}'),
            Status.PASSED,
            '/ready 503 {"reason": "no champion"}',
        ),
        ("http://a", (200, "{}"), (200, "{}"), Status.PASSED, "/health 200; /ready 200"),
        ("http://a", (502, "bad gateway"), None, Status.FAILED, "GET http://a/health: HTTP 502 bad gateway"),
        ("http://a", "no answer (timed out)", None, Status.FAILED, "no answer (timed out) (expected 200)"),
        (None, "", None, Status.SKIPPED, "exposes no service endpoint"),
    ],
)
def test_the_service_needs_health_200_and_reports_ready_as_it_is(url, health, ready, status, says) -> None:
    result = smoke.service_result(url, health, ready)
    assert result.status == status and says in result.detail


def test_the_report_names_the_first_failed_step() -> None:
    results = [
        StepResult(Step.OUTPUTS, Status.PASSED, "found"),
        StepResult(Step.INGEST, Status.FAILED, "a|b"),
        *smoke.not_run_after(Step.INGEST, [Step.PIPELINE]),
        StepResult(Step.SERVICE, Status.FAILED, "x"),
    ]
    text = smoke.report("ws", "feature", results)
    assert text.splitlines()[0] == "### Smoke check of workspace `ws` (feature): **failed** at `ingest`"
    assert "| ingest | failed | a/b |" in text and "| pipeline | not run | needs ingest |" in text
    assert smoke.first_failure(results).step == Step.INGEST
    passed = smoke.report("ws", "prd", [StepResult(Step.OUTPUTS, Status.PASSED, "found")])
    assert "**passed**" in passed and smoke.first_failure([StepResult(Step.SERVICE, Status.SKIPPED, "")]) is None


def test_a_refused_call_says_to_redeploy_the_oidc_stack() -> None:
    from botocore.exceptions import ClientError

    from infra.smoke import aws_error_detail

    denied = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "not authorized to perform: lambda:InvokeFunction"}},
        "Invoke",
    )
    assert "redeploy the one-time OIDC stack of this stage" in aws_error_detail(denied)
    other = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "Invoke")
    assert "OIDC" not in aws_error_detail(other) and "slow down" in aws_error_detail(other)
    assert aws_error_detail(ValueError("x")) == "ValueError: x"


def test_an_internal_service_is_read_from_its_outputs() -> None:
    internal = {
        **OUTPUTS,
        Component.MODEL_SERVICE: {
            "ServiceUrl": "http://internal-alb",
            "ServiceEndpoint": "internal",
            "ServiceTargetGroup": "arn:tg",
        },
    }
    found = smoke.workspace_outputs("p", "ws", internal)
    assert (found.service_endpoint, found.service_target_group) == ("internal", "arn:tg")
    assert smoke.workspace_outputs("p", "ws", OUTPUTS).service_endpoint is None, "a stack from before: called"


TG = "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/p-ws-service/0a1b"


def test_an_internal_service_passes_when_the_load_balancer_sees_a_healthy_task() -> None:
    health = [
        {"TargetHealth": {"State": "unhealthy", "Reason": "Target.ResponseCodeMismatch"}},
        {"TargetHealth": {"State": "healthy"}},
    ]
    result = smoke.target_health_result(TG, health)
    assert result.status == Status.PASSED and "1 of 2 task(s) healthy" in result.detail


@pytest.mark.parametrize(
    ("health", "detail"),
    [
        ([], "no healthy task in targetgroup/p-ws-service/0a1b: no target"),
        (
            [
                {"TargetHealth": {"State": "unhealthy", "Reason": "Target.Timeout"}},
                {"TargetHealth": {"State": "initial"}},
            ],
            "no healthy task in targetgroup/p-ws-service/0a1b: unhealthy (Target.Timeout), initial",
        ),
    ],
)
def test_an_internal_service_fails_with_what_the_load_balancer_says(health, detail) -> None:
    result = smoke.target_health_result(TG, health)
    assert result.status == Status.FAILED and result.detail == f"internal: {detail}"
