"""`python -m infra.smoke` end to end against moto's in-process AWS: real stack outputs, the real ingest
handler in place of the Lambda invoke (moto cannot run Lambda code without Docker), a real state machine
whose execution the check must find by its input; only the execution's result is scripted (moto does not
run the definition)."""

from __future__ import annotations

import fnmatch
import json
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from moto import mock_aws

from infra import smoke
from infra.stack_outputs import INVOKED_BY_SMOKE_CHECK_TAG
from infra.workspace import Stage
from pipeline.ledger import LEDGER_TABLE_ENV, create_table
from tests.lambdas.conftest import FakeContext
from tests.smoke.test_logic import CHECK_PATH
from tests.workflows.test_role_calls import op_action

REF = "feature/smoke-command"
PROJECT, WORKSPACE, REGION = "dataplat", "smoke-command", "eu-west-1"
BUCKETS = {"landing": "t-landing", "raw": "t-raw", "quarantine": "t-quarantine", "curated": "t-curated"}
PASSED = {
    "status": "SUCCEEDED",
    "states": CHECK_PATH,
    "output": json.dumps({"validation": {"valid": True}, "gate": {"passed": True, "verdict": "s3://v"}}),
}


def _stack(cfn: Any, component: str, outputs: dict[str, str]) -> None:
    template = {
        "Resources": {"Marker": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cfn.create_stack(StackName=f"{PROJECT}-{WORKSPACE}-{component}", TemplateBody=json.dumps(template))


class ScriptedStepFunctions:
    """Moto's Step Functions for listing and describing executions; the result (status, output, states
    entered) scripted, since moto does not run the definition."""

    def __init__(self, real: Any, outcome: dict[str, Any]) -> None:
        self.real, self.outcome = real, outcome

    def get_paginator(self, name: str) -> Any:
        if name != "get_execution_history":
            return self.real.get_paginator(name)
        events = [{"id": i, "stateEnteredEventDetails": {"name": s}} for i, s in enumerate(self.outcome["states"])]
        return type("Pages", (), {"paginate": lambda _self, **_: [{"events": events}]})()

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        found = self.real.describe_execution(executionArn=executionArn)
        return {**found, **{k: v for k, v in self.outcome.items() if k != "states"}}


@pytest.fixture
def aws(monkeypatch, tmp_path):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_METRICS_NAMESPACE": "Test",
        "LANDING_BUCKET": BUCKETS["landing"],
        "RAW_BUCKET": BUCKETS["raw"],
        "QUARANTINE_BUCKET": BUCKETS["quarantine"],
        LEDGER_TABLE_ENV: "ledger",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        s3, sfn = boto3.client("s3", region_name=REGION), boto3.client("stepfunctions", region_name=REGION)
        for bucket in BUCKETS.values():
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        create_table(boto3.client("dynamodb", region_name=REGION), "ledger")  # the ingest function records in it
        definition = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}})
        machine = sfn.create_state_machine(
            name="pipeline", roleArn="arn:aws:iam::123456789012:role/sfn", definition=definition
        )
        cfn = boto3.client("cloudformation", region_name=REGION)
        _stack(
            cfn,
            "storage",
            {
                "LandingBucketName": BUCKETS["landing"],
                "RawBucketName": BUCKETS["raw"],
                "CuratedBucketName": BUCKETS["curated"],
            },
        )
        _stack(
            cfn, "etl", {"IngestFunctionName": "dataplat-ingest", "PipelineStateMachineArn": machine["stateMachineArn"]}
        )
        _stack(cfn, "model-service", {"ServiceUrl": "http://service.example"})
        yield {"s3": s3, "sfn": sfn, "machine": machine["stateMachineArn"], "summary": tmp_path / "summary.md"}


def real_ingest_then_eventbridge(aws: dict[str, Any], calls: list[str]):
    """The ingest Lambda's own handler; then what the RawObjectCreated rule does: start the pipeline with
    the S3 event (key URL-encoded, as S3 may send it)."""
    from lambdas.ingest import handler

    def invoke(function: str) -> dict[str, Any]:
        calls.append(function)
        result = handler.handler({}, FakeContext())
        for key in result["moved"]:
            event = {"detail": {"bucket": {"name": BUCKETS["raw"]}, "object": {"key": quote_plus(key, safe="/")}}}
            aws["sfn"].start_execution(stateMachineArn=aws["machine"], input=json.dumps(event))
        return result

    return invoke


def run(
    aws: dict[str, Any],
    outcome: dict[str, Any],
    *,
    http=None,
    timeout: str = "60",
    config: str | None = None,
    signed=None,
) -> tuple[int, list[str]]:
    calls: list[str] = []
    clock = {"t": 0.0}
    edge = smoke.Edge(
        client=lambda service: (
            ScriptedStepFunctions(aws["sfn"], outcome)
            if service == "stepfunctions"
            else boto3.client(service, region_name=REGION)
        ),
        invoke=real_ingest_then_eventbridge(aws, calls),
        get=http or (lambda url: (200, "{}") if url.endswith("/health") else (503, '{"reason": "no champion"}')),
        signed_get=signed,
        clock=lambda: clock["t"],
        sleep=lambda s: clock.__setitem__("t", clock["t"] + s),
        progress=lambda _: None,
    )
    code = smoke.main([REF, "--timeout", timeout, "--interval", "10", *(["--config", config] if config else [])], edge)
    return code, calls


def keys(aws: dict[str, Any], bucket: str) -> list[str]:
    return [o["Key"] for o in aws["s3"].list_objects_v2(Bucket=BUCKETS[bucket]).get("Contents", [])]


def test_a_passing_workspace_passes_every_step_and_check_data_stay_out_of_curated(aws, capsys) -> None:
    code, calls = run(aws, PASSED)
    out = capsys.readouterr().out
    assert code == 0, out
    assert calls == ["dataplat-ingest"]
    (raw_key,) = keys(aws, "raw")
    assert raw_key.startswith("platform_check/smoke/created_at=") and keys(aws, "landing") == []
    assert keys(aws, "curated") == []
    assert f"| ingest | passed | s3://{BUCKETS['raw']}/{raw_key} |" in out
    assert "| pipeline | passed | gate passed, ended in CheckPassed" in out
    assert '| service | passed | /health 200; /ready 503 {"reason": "no champion"} |' in out
    assert "**passed**" in aws["summary"].read_text()


def test_a_failed_execution_fails_the_pipeline_step_with_its_cause(aws, capsys) -> None:
    code, _ = run(
        aws, {"status": "FAILED", "error": "PipelineFailed", "cause": "Glue job failed", "states": ["Failed"]}
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "smoke check failed at step 'pipeline': execution FAILED: PipelineFailed Glue job failed" in captured.err
    assert "| curated | not run | needs pipeline |" in captured.out
    assert "| service | passed |" in captured.out, "the service is checked whatever the pipeline did"
    assert "failed** at `pipeline`" in aws["summary"].read_text()


def test_an_execution_that_never_finishes_times_out(aws, capsys) -> None:
    code, _ = run(aws, {"status": "RUNNING", "states": ["Input", "RawToStagingRun"]}, timeout="30")
    assert code == 1
    assert (
        "step 'pipeline': not finished after 30 s (timeout 30 s; last seen: running, at RawToStagingRun)"
        in capsys.readouterr().err
    )


def test_check_data_under_curated_fail_the_check(aws, capsys) -> None:
    aws["s3"].put_object(Bucket=BUCKETS["curated"], Key="platform_check/smoke/part-0.parquet", Body=b"x")
    code, _ = run(aws, PASSED)
    assert code == 1
    assert (
        "step 'curated': check data under curated: s3://t-curated/platform_check/smoke/part-0.parquet"
        in capsys.readouterr().err
    )


def test_an_unhealthy_service_fails_the_service_step(aws, capsys) -> None:
    code, _ = run(aws, PASSED, http=lambda url: (502, "Bad Gateway"))
    assert code == 1
    assert "step 'service': GET http://service.example/health: HTTP 502 Bad Gateway" in capsys.readouterr().err


def _internal_service(aws: dict[str, Any], *, healthy: bool) -> None:
    """The model-service stack of an internal service (int, prd): its target group in moto's ELB."""
    ec2, elbv2 = boto3.client("ec2", region_name=REGION), boto3.client("elbv2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    group = elbv2.create_target_group(Name="service", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip")[
        "TargetGroups"
    ][0]["TargetGroupArn"]
    if healthy:
        elbv2.register_targets(TargetGroupArn=group, Targets=[{"Id": "10.0.1.5", "Port": 8080}])
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.delete_stack(StackName=f"{PROJECT}-{WORKSPACE}-model-service")
    _stack(
        cfn,
        "model-service",
        {"ServiceUrl": "http://internal-service.example", "ServiceEndpoint": "internal", "ServiceTargetGroup": group},
    )


@pytest.mark.parametrize("healthy", [True, False], ids=["healthy", "no-task"])
def test_an_internal_service_is_checked_through_its_load_balancer_not_called(aws, capsys, healthy: bool) -> None:
    """int and prd serve from inside their VPC: a runner cannot call them, the load balancer's check can."""
    _internal_service(aws, healthy=healthy)
    called: list[str] = []
    code, _ = run(aws, PASSED, http=lambda url: called.append(url) or (200, "{}"))
    captured = capsys.readouterr()
    assert called == [], "an internal URL is not called from outside its VPC"
    if healthy:
        assert code == 0 and "| service | passed | internal: 1 of 1 task(s) healthy" in captured.out
    else:
        assert code != 0 and "step 'service': internal: no healthy task in targetgroup/service/" in captured.err


def test_a_serverless_service_is_called_with_signed_requests_only(aws, capsys) -> None:
    """A feature stage's serverless service (endpoint iam): its function URL answers signed requests alone, so
    the check signs (Edge.signed_get, SigV4) and never sends an unsigned one."""
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.delete_stack(StackName=f"{PROJECT}-{WORKSPACE}-model-service")
    url = "https://abc123.lambda-url.eu-west-1.on.aws/"
    _stack(cfn, "model-service", {"ServiceUrl": url, "ServiceEndpoint": "iam"})
    unsigned: list[str] = []
    signed: list[str] = []

    def signed_get(target: str) -> tuple[int, str]:
        signed.append(target)
        return (200, "{}") if target.endswith("/health") else (503, '{"reason": "no champion yet"}')

    code, _ = run(aws, PASSED, http=lambda target: unsigned.append(target) or (403, "Forbidden"), signed=signed_get)
    out = capsys.readouterr().out
    assert code == 0 and unsigned == [] and signed == [f"{url}health", f"{url}ready"]
    assert "| service | passed | /health 200; /ready 503" in out
    code, _ = run(aws, PASSED, signed=None)
    assert code != 0 and "the service takes IAM-signed requests: no signer" in capsys.readouterr().err
    # right after a deploy: the new URL's grant answers 403, then the cold start 502, then the service
    answers = iter([(403, "Forbidden"), (502, "Bad Gateway"), (200, "{}"), (503, '{"reason": "no champion"}')])
    waited: list[str] = []
    code, _ = run(aws, PASSED, signed=lambda target: waited.append(target) or next(answers))
    assert code == 0 and [t.rsplit("/", 1)[1] for t in waited] == ["health", "health", "health", "ready"]
    code, _ = run(aws, PASSED, signed=lambda target: (403, "Forbidden"))  # never allowed: fails, after the wait
    assert code != 0 and "/health: HTTP 403 Forbidden" in capsys.readouterr().err


def test_the_signed_get_signs_for_lambda_with_the_callers_credentials() -> None:
    """What a function URL with AWS_IAM auth checks: a SigV4 signature for service `lambda` in the region, with
    the session token of temporary credentials (the deploy role's)."""
    import http.server
    import threading

    from botocore.credentials import Credentials

    seen: dict[str, str] = {}

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.update({k.lower(): v for k, v in self.headers.items()}, path=self.path)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        get = smoke.signed_http_get("eu-west-1", Credentials("AKIDEXAMPLE", "secret", "session-token"))
        assert get(f"http://127.0.0.1:{server.server_port}/health") == (200, "{}")
    finally:
        server.shutdown()
    assert seen["path"] == "/health"
    assert seen["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/lambda/aws4_request" in seen["authorization"]
    assert seen["x-amz-security-token"] == "session-token" and seen["x-amz-date"]
    assert smoke.signed_http_get("eu-west-1", None)("http://127.0.0.1:1/health") != (200, "{}")


def test_a_missing_stack_fails_the_outputs_step_and_runs_nothing(aws, capsys) -> None:
    boto3.client("cloudformation", region_name=REGION).delete_stack(StackName=f"{PROJECT}-{WORKSPACE}-etl")
    code, calls = run(aws, PASSED)
    assert code == 1 and calls == [] and keys(aws, "landing") == []
    assert f"step 'outputs': stack {PROJECT}-{WORKSPACE}-etl does not exist" in capsys.readouterr().err


def test_the_steps_of_switched_off_components_are_skipped_and_say_why(aws, capsys, tmp_path) -> None:
    """A feature stage with storage only: nothing lands, nothing is invoked or called, and the check passes;
    the stacks of the switched-off components are not even read (deployed before the switch, or gone)."""
    from infra.config import DEFAULT_CONFIG_PATH

    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.delete_stack(StackName=f"{PROJECT}-{WORKSPACE}-etl")
    copied = tmp_path / "project.yaml"
    copied.write_text(
        DEFAULT_CONFIG_PATH.read_text().replace(
            '    account: "111111111111"\n',
            '    account: "111111111111"\n'
            "    components: {etl: false, notebook: false, mlflow: false, model_service: false}\n",
        )
    )
    fetched: list[str] = []
    code, calls = run(aws, PASSED, http=lambda url: fetched.append(url) or (200, "{}"), config=str(copied))
    out = capsys.readouterr().out
    assert code == 0, out
    assert calls == [] and fetched == [] and keys(aws, "landing") == []
    for step in ("landing", "ingest", "pipeline", "curated"):
        assert f"| {step} | skipped | the stage has no etl (config components.etl: false) |" in out
    assert "| service | skipped | the stage has no model_service (config components.model_service: false) |" in out


def test_the_refs_own_stage_decides_which_steps_run(aws, capsys, tmp_path) -> None:
    """int with storage only (its config), feature with everything: `main` checks int's storage alone."""
    import yaml

    from infra.config import DEFAULT_CONFIG_PATH

    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["stages"]["int"]["components"] = {"etl": False, "notebook": False, "mlflow": False, "model_service": False}
    raw["stages"]["int"]["ml"].pop("training")  # training needs MLflow (config validation)
    copied = tmp_path / "project.yaml"
    copied.write_text(yaml.safe_dump(raw))
    cfn = boto3.client("cloudformation", region_name=REGION)
    storage = {"LandingBucketName": "l", "RawBucketName": "r", "CuratedBucketName": "c"}
    cfn.create_stack(
        StackName=f"{PROJECT}-int-storage",
        TemplateBody=json.dumps(
            {
                "Resources": {"Marker": {"Type": "AWS::SQS::Queue"}},
                "Outputs": {k: {"Value": v} for k, v in storage.items()},
            }
        ),
    )
    edge = smoke.Edge(
        client=lambda service: boto3.client(service, region_name=REGION),
        invoke=lambda function: pytest.fail(f"{function} invoked"),
        get=lambda url: pytest.fail(f"{url} fetched"),
        progress=lambda _: None,
    )
    assert smoke.main(["main", "--config", str(copied)], edge) == 0
    out = capsys.readouterr().out
    assert "| outputs | passed | landing l, no ETL |" in out
    assert "| pipeline | skipped | the stage has no etl (config components.etl: false) |" in out


def test_a_bad_ref_is_a_usage_error(capsys) -> None:
    assert smoke.main(["refs/pull/1/merge"], smoke.Edge(client=lambda _: None)) == 2
    assert "error:" in capsys.readouterr().err


def test_the_lambda_invoke_edge_reads_the_handlers_answer_and_names_a_function_error() -> None:
    """The default invoker (the one the workflows use): the ingest result comes back as the handler's dict;
    an error, JSON or not (moto without Docker answers plain text), fails the step with the function's words."""
    import io

    answers = iter(
        [
            {"Payload": io.BytesIO(b'{"moved": ["k"]}')},
            {"FunctionError": "Unhandled", "Payload": io.BytesIO(b'{"errorMessage": "boom"}')},
            {"FunctionError": "Handled", "Payload": io.BytesIO(b"error running docker: no socket")},
        ]
    )
    lam = type("Lambda", (), {"invoke": lambda _self, **kw: next(answers)})()
    invoke = smoke.lambda_invoker(lambda _service: lam)
    assert invoke("f") == {"moved": ["k"]}
    with pytest.raises(smoke.StepFailed, match=r"invoking f failed \(Unhandled\): boom"):
        invoke("f")
    with pytest.raises(smoke.StepFailed, match=r"invoking f failed \(Handled\): error running docker"):
        invoke("f")


class Recorder:
    """A client (boto3's, or the scripted one) whose calls are written down as IAM actions."""

    def __init__(self, service: str, client: Any, actions: set[str]) -> None:
        self._service, self._client, self._actions = service, client, actions

    def _record(self, operation: str) -> None:
        self._actions.update(op_action(self._service, operation))  # the static role test's one mapping

    def get_paginator(self, name: str) -> Any:
        self._record(name)
        return self._client.get_paginator(name)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self._record(name)
            return attribute(*args, **kwargs)

        return call


def allowed_actions(statements: list[dict[str, Any]]) -> set[str]:
    actions: set[str] = set()
    for statement in statements:
        if statement["Effect"] == "Allow":
            found = statement["Action"]
            actions.update([found] if isinstance(found, str) else found)
    return actions


@pytest.mark.parametrize("stage", list(Stage), ids=lambda s: s.value)
def test_the_deploy_role_of_every_stage_may_do_what_the_check_does(aws, config, tmp_path, stage) -> None:
    """The workflows run the check with the stage's deploy role (infra/oidc.py): every call it makes must be
    allowed there, or the first real deploy ends red at the check (moto authorises everything)."""
    from aws_cdk.assertions import Template

    from infra.oidc import GitHubDeployStack
    from infra.platform import create_app

    used: set[str] = {"lambda:InvokeFunction"}  # the workflows' invoker (the test runs the handler in place)
    clock = {"t": 0.0}
    edge = smoke.Edge(
        client=lambda service: Recorder(
            service,
            ScriptedStepFunctions(aws["sfn"], PASSED)
            if service == "stepfunctions"
            else boto3.client(service, region_name=REGION),
            used,
        ),
        invoke=real_ingest_then_eventbridge(aws, []),
        get=lambda url: (200, "{}"),
        clock=lambda: clock["t"],
        sleep=lambda s: clock.__setitem__("t", clock["t"] + s),
        progress=lambda _: None,
    )
    assert smoke.main([REF, "--timeout", "60", "--interval", "10"], edge) == 0
    _internal_service(aws, healthy=True)  # and the check of an internal service (int and prd)
    assert smoke.main([REF, "--timeout", "60", "--interval", "10"], edge) == 0
    assert {
        "s3:PutObject",
        "states:ListExecutions",
        "states:DescribeExecution",
        "elasticloadbalancing:DescribeTargetHealth",
    } <= used

    stack = GitHubDeployStack(create_app(outdir=str(tmp_path / "cdk.out")), config, stage)
    (policy,) = [
        p
        for k, p in Template.from_stack(stack).find_resources("AWS::IAM::Policy").items()
        if k.startswith("DeployRole")
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    missing = used - allowed_actions(statements)
    assert not missing, f"the {stage.value} deploy role cannot {sorted(missing)}"
    tag, value = INVOKED_BY_SMOKE_CHECK_TAG
    (invoke,) = [s for s in statements if s["Action"] == "lambda:InvokeFunction" and "Condition" in s]
    assert invoke["Condition"]["StringEquals"][f"aws:ResourceTag/{tag}"] == value, "ingest only"
    # a serverless service (feature stages): both actions a function URL asks for, on the service's name alone
    url_calls = [s for s in statements if s["Action"] == "lambda:InvokeFunctionUrl"]
    plain = [s for s in statements if s["Action"] == "lambda:InvokeFunction" and "Condition" not in s]
    from infra.naming import resource_name

    (url_call,) = url_calls
    (function_call,) = plain
    assert url_call["Condition"] == {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}
    assert url_call["Resource"] == function_call["Resource"]
    service = resource_name(config.project, WORKSPACE, "service")
    assert fnmatch.fnmatchcase(
        f"arn:aws:lambda:{REGION}:{config.stage(stage).account}:function:{service}", url_call["Resource"]
    )
    assert not fnmatch.fnmatchcase(
        f"arn:aws:lambda:{REGION}:{config.stage(stage).account}:function:{PROJECT}-x-ingest", url_call["Resource"]
    )
