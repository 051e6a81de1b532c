"""CI upkeep: every action pinned by commit with its version beside it, a time limit on every job, superseded
checks cancelled (never a deploy or a destroy), the setup's Node and caches, the model service image built and
probed before any model exists, the dependency and image audit, and Dependabot keeping all of it current."""

from __future__ import annotations

import fnmatch
import http.server
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / ".github"
WORKFLOW_FILES = sorted((GITHUB / "workflows").glob("*.yml"))
ACTION_FILES = sorted((GITHUB / "actions").glob("*/action.yml"))
WORKFLOWS = {p.stem: yaml.safe_load(p.read_text()) for p in WORKFLOW_FILES}
SETUP = yaml.safe_load((GITHUB / "actions" / "setup" / "action.yml").read_text())
PROBE = GITHUB / "scripts" / "probe-model-service.sh"

USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)\s*(?:#\s*(?P<comment>.*?))?\s*$")
PINNED = re.compile(r"^(?P<action>[\w.-]+/[\w.-]+(?:/[\w./-]+)?)@(?P<sha>[0-9a-f]{40})$")
VERSION = re.compile(r"^v\d+\.\d+\.\d+$")


def parsed_uses(document: dict) -> list[str]:
    """Every `uses:` of a workflow (steps and reusable-workflow jobs) or of a composite action, from the YAML."""
    found = [job["uses"] for job in document.get("jobs", {}).values() if "uses" in job]
    steps = [s for job in document.get("jobs", {}).values() for s in job.get("steps", [])]
    steps += document.get("runs", {}).get("steps", [])
    return found + [step["uses"] for step in steps if "uses" in step]


def text_uses(path: Path) -> list[tuple[str, str | None]]:
    """Every `uses:` line of the raw file with its trailing comment (YAML drops comments)."""
    return [(m["ref"], m["comment"]) for line in path.read_text().splitlines() if (m := USES_LINE.match(line))]


# --- pins ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", WORKFLOW_FILES + ACTION_FILES, ids=lambda p: str(p.relative_to(GITHUB)))
def test_every_action_is_pinned_to_a_commit_with_its_version_in_a_comment(path: Path) -> None:
    """A tag can be moved to other code (trivy-action's were, in 2026); a commit cannot. The `# vX.Y.Z`
    comment says which release the commit is, and Dependabot moves both together."""
    lines = text_uses(path)
    assert sorted(ref for ref, _ in lines) == sorted(parsed_uses(yaml.safe_load(path.read_text()))), (
        "every `uses:` is on a line of its own, so its comment can be read"
    )
    for ref, comment in lines:
        if ref.startswith("./"):
            continue  # this repository's own action, at the same commit as the workflow
        assert PINNED.match(ref), f"{path.name}: {ref} is not pinned to a full commit SHA"
        assert comment and VERSION.match(comment), (
            f"{path.name}: {ref} needs its release as the line's comment (`# vX.Y.Z`), not {comment!r}"
        )


def test_one_action_is_pinned_to_one_commit_and_release_everywhere() -> None:
    pins: dict[str, set[tuple[str, str | None]]] = {}
    for path in WORKFLOW_FILES + ACTION_FILES:
        for ref, comment in text_uses(path):
            if not ref.startswith("./"):
                action, sha = ref.split("@")
                pins.setdefault(action, set()).add((sha, comment))
    assert {action: found for action, found in pins.items() if len(found) > 1} == {}
    assert {
        "actions/checkout",
        "actions/setup-python",
        "actions/setup-node",
        "actions/github-script",
        "aws-actions/configure-aws-credentials",
        "actions/upload-artifact",
    } <= set(pins)


# --- time limits and concurrency -------------------------------------------------------------------------


def test_every_job_has_a_time_limit() -> None:
    """GitHub's default is six hours: a hung `cdk deploy` or a service that never answers would hold a runner
    (and a workspace's concurrency group) that long."""
    missing = [
        f"{name}.{job_name}"
        for name, workflow in WORKFLOWS.items()
        for job_name, job in workflow["jobs"].items()
        if not (isinstance(job.get("timeout-minutes"), int) and 0 < job["timeout-minutes"] <= 180)
    ]
    assert missing == []


@pytest.mark.parametrize("name", ["ci", "pr-diff"])
def test_checks_cancel_the_run_a_newer_push_replaces(name: str) -> None:
    """One group per workflow and PR (or ref): a new push cancels the same PR's older run of the same workflow,
    never another PR's and never another workflow's."""
    concurrency = WORKFLOWS[name]["concurrency"]
    assert concurrency["cancel-in-progress"] is True
    group = concurrency["group"]
    assert "github.event.pull_request.number" in group
    assert "github.workflow" in group or group.startswith(f"{name}-")
    if "push" in WORKFLOWS[name].get("on", WORKFLOWS[name].get(True)):
        assert "github.ref" in group, "a push has no PR number: its ref names the group"


@pytest.mark.parametrize("name", ["deploy-feature", "deploy-persistent", "destroy", "janitor"])
def test_deploys_destroys_and_the_janitor_are_never_cancelled(name: str) -> None:
    """A cancelled deploy or destroy leaves stacks half-changed (UPDATE_ROLLBACK_FAILED, buckets half-emptied)."""
    workflow = WORKFLOWS[name]
    groups = [workflow.get("concurrency")] + [job.get("concurrency") for job in workflow["jobs"].values()]
    for concurrency in filter(None, groups):
        assert isinstance(concurrency, dict) and concurrency.get("cancel-in-progress") is False, (name, concurrency)


# --- the setup action ------------------------------------------------------------------------------------


def setup_step(action: str) -> dict:
    return next(s for s in SETUP["runs"]["steps"] if s.get("uses", "").split("@")[0] == action)


def test_the_cdk_cli_runs_on_node_22_or_newer_without_silencing_jsii() -> None:
    """Node 20 reached its end of life (jsii prints a banner on every run); on a supported Node there is nothing
    to silence, so no workflow sets JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION."""
    version = str(setup_step("actions/setup-node")["with"]["node-version"])
    assert re.fullmatch(r"\d+(\.\d+)*(\.x)?", version) and int(version.split(".")[0]) >= 22, version
    for path in WORKFLOW_FILES + ACTION_FILES:
        assert "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION" not in path.read_text(), path.name


def test_the_setup_caches_pip_and_npm_keyed_by_the_files_that_pin_them() -> None:
    python = setup_step("actions/setup-python")["with"]
    assert python["cache"] == "pip"
    assert set(python["cache-dependency-path"].split()) == {"pyproject.toml", "uv.lock"}
    node = setup_step("actions/setup-node")["with"]
    assert node["cache"] == "npm" and node["cache-dependency-path"] == "package-lock.json"
    assert (ROOT / "package-lock.json").is_file() and (ROOT / "pyproject.toml").is_file()


# --- the model service image -----------------------------------------------------------------------------

IMAGE = WORKFLOWS["ci"]["jobs"]["image"]


def image_step(text: str) -> dict:
    (step,) = [s for s in IMAGE["steps"] if text in s.get("run", "")]
    return step


def words(run: str) -> list[str]:
    return shlex.split(run.replace("\\\n", " "))


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_the_image_job_builds_the_dockerfile_from_the_repository_root_on_ubuntu() -> None:
    assert str(IMAGE["runs-on"]).startswith("ubuntu-"), "GitHub's Ubuntu runners have Docker"
    build = words(image_step("docker build")["run"])
    assert option(build, "--file") == "model_service/Dockerfile" and build[-1] == ".", (
        "context: the repository root, as the Dockerfile's COPY lines and the root .dockerignore expect"
    )
    copied = [
        line.split()[1]
        for line in (ROOT / "model_service" / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
    ]
    assert copied and all((ROOT / source).exists() for source in copied), copied
    tag = option(build, "--tag")
    run = words(image_step("docker run")["run"])
    assert run[-1] == tag and "--detach" in run
    cleanup = image_step("docker rm")
    assert cleanup.get("if") == "always()" and option(words(cleanup["run"]), "--force") == option(run, "--name"), (
        "the container is removed whatever happened"
    )


def test_the_training_image_job_builds_its_dockerfile_and_starts_its_entry_point() -> None:
    """The training job's image is built by CI from the same context as the CDK asset, and its entry point (the
    one the state machine's job runs) starts and knows the options the job passes."""
    from infra.constructs.training_pipeline import TRAINING_ENTRYPOINT
    from scripts.service_image import read_dockerfile

    job = WORKFLOWS["ci"]["jobs"]["training-image"]
    assert str(job["runs-on"]).startswith("ubuntu-")
    (build,) = [words(s["run"]) for s in job["steps"] if "docker build" in s.get("run", "")]
    assert option(build, "--file") == "training/Dockerfile" and build[-1] == "."
    (check,) = [s["run"] for s in job["steps"] if "docker run" in s.get("run", "")]
    tag = option(build, "--tag")
    assert f"docker run --rm {tag} --help" in check and "--metrics-namespace" in check
    spec = read_dockerfile(ROOT / "training" / "Dockerfile")
    assert spec.entrypoint == TRAINING_ENTRYPOINT
    assert "= 10001" in check and "USER 10001" in (ROOT / "training" / "Dockerfile").read_text()


def probe_call() -> tuple[dict[str, str], list[str]]:
    """The start step's environment and the probe's arguments, as the workflow has them."""
    start = image_step("docker run")
    run = words(start["run"])
    passed = [run[i + 1] for i, word in enumerate(run) if word == "--env"]
    assert sorted(passed) == sorted(start["env"]), "docker run passes the step's environment on, all of it"
    probe = words(image_step("probe-model-service.sh")["run"])
    assert probe[:2] == ["bash", ".github/scripts/probe-model-service.sh"]
    host_port, container_port = option(run, "--publish").removeprefix("127.0.0.1:").split(":")
    dockerfile = (ROOT / "model_service" / "Dockerfile").read_text()
    assert f"EXPOSE {container_port}" in dockerfile and f'"--port", "{container_port}"' in dockerfile
    assert option(probe, "--url") == f"http://127.0.0.1:{host_port}"
    assert option(probe, "--container") == option(run, "--name"), "on a mismatch the probe prints its logs"
    return {k: str(v) for k, v in start["env"].items()}, probe[2:]


def test_the_image_job_starts_the_service_without_a_model_and_probes_health_and_ready() -> None:
    environment, probe = probe_call()
    assert {
        "MODEL_SERVICE_MODEL_NAME",
        "MODEL_SERVICE_MODEL_ALIAS",
        "MODEL_SERVICE_REFRESH_SECONDS",
        "MLFLOW_TRACKING_URI",
    } <= set(environment)
    assert option(probe, "--reason-mentions") == environment["MLFLOW_TRACKING_URI"], (
        "ready only once the service has looked, and the reason names where it looked"
    )
    script = PROBE.read_text()
    assert "get /health" in script and "get /ready" in script and "503)" in script and "200) fail" in script


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


FAKE_DOCKER = """#!/bin/sh
# the probe's only docker calls: whether the container runs (the process FAKE_DOCKER_PID, when set, alive and
# not a zombie) and its logs
case "$1" in
  inspect)
    state=$(ps -o stat= -p "${FAKE_DOCKER_PID:-$$}" 2>/dev/null)
    case "$state" in ""|Z*) echo false ;; *) echo true ;; esac ;;
  logs) echo "LOGS OF $2"; if [ -n "$FAKE_DOCKER_LOG" ]; then cat "$FAKE_DOCKER_LOG"; fi ;;
esac
"""


@pytest.fixture
def fake_docker(tmp_path) -> dict[str, str]:
    assert shutil.which("curl") and shutil.which("jq"), "the probe needs curl and jq (as GitHub's runners have)"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path)}


def probe(args: list[str], url: str, environment: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    args = [*args]
    args[args.index("--url") + 1] = url
    args[args.index("--timeout") + 1] = str(timeout)
    return subprocess.run(
        ["bash", str(PROBE), *args], capture_output=True, text=True, env=environment, timeout=timeout + 30
    )


def test_the_probe_passes_against_the_service_started_as_the_workflow_starts_it(fake_docker, tmp_path) -> None:
    """The image's entry point (`python -m model_service`) from the project's environment, with the workflow's
    settings: no model anywhere, so live and not ready, with the reason."""
    environment, args = probe_call()
    port = free_port()
    log = (tmp_path / "service.log").open("w")
    service = subprocess.Popen(
        [sys.executable, "-m", "model_service", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env={**fake_docker, **environment},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        result = probe(
            args,
            f"http://127.0.0.1:{port}",
            {**fake_docker, "FAKE_DOCKER_PID": str(service.pid), "FAKE_DOCKER_LOG": str(tmp_path / "service.log")},
            timeout=120,
        )
    finally:
        service.terminate()
        service.wait(timeout=30)
        log.close()
    assert result.returncode == 0, result.stdout + result.stderr + (tmp_path / "service.log").read_text()
    assert "/health: 200" in result.stdout and "/ready: 503" in result.stdout
    assert environment["MLFLOW_TRACKING_URI"] in result.stdout


class Answers(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, bytes]]] = {}

    def do_GET(self) -> None:
        code, body = self.routes.get(self.path, (404, b"{}"))
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[Callable[[dict[str, tuple[int, bytes]]], str]]:
    servers = []

    def start(routes: dict[str, tuple[int, bytes]]) -> str:
        handler = type("Routes", (Answers,), {"routes": routes})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


NO_MODEL = b'{"status": "not ready", "reason": "cannot reach http://127.0.0.1:9", "model": "m"}'


@pytest.mark.parametrize(
    ("routes", "why"),
    [
        ({"/health": (200, b"{}"), "/ready": (200, b'{"status": "ready"}')}, "a model is served, but none exists"),
        ({"/health": (200, b"{}"), "/ready": (503, b'{"status": "not ready"}')}, "without a reason"),
        (
            {"/health": (200, b"{}"), "/ready": (503, b'{"reason": "the first check has not finished yet"}')},
            "did not answer 503 with a reason mentioning",
        ),
        ({"/health": (500, b"{}"), "/ready": (503, NO_MODEL)}, "/health answered 500, not 200"),
        ({"/ready": (503, NO_MODEL)}, "/health answered 404, not 200"),
    ],
    ids=["ready-200", "no-reason", "reason-never-names-the-uri", "health-500", "no-health"],
)
def test_the_probe_fails_with_the_containers_logs_on_any_mismatch(fake_docker, answering, routes, why) -> None:
    _, args = probe_call()
    result = probe(args, answering(routes), fake_docker, timeout=4)
    assert result.returncode == 1, result.stdout + result.stderr
    assert why in result.stdout and "::error::" in result.stdout
    assert f"LOGS OF {option(args, '--container')}" in result.stdout


def test_the_probe_accepts_what_the_service_answers_before_its_first_model(fake_docker, answering) -> None:
    """The same fake server shape with the right answers passes: the failures above are the answers' fault."""
    _, args = probe_call()
    result = probe(
        args, answering({"/health": (200, b'{"status": "ok"}'), "/ready": (503, NO_MODEL)}), fake_docker, timeout=4
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "LOGS OF" not in result.stdout


# --- the audit -------------------------------------------------------------------------------------------

AUDIT = WORKFLOWS["ci"]["jobs"]["audit"]
AUDIT_RUN = "\n".join(step.get("run", "") for step in AUDIT["steps"])


def test_the_audit_runs_pip_audit_on_the_uv_export_and_on_the_images_requirements() -> None:
    tools = (GITHUB / "requirements-ci.txt").read_text()
    pins = dict(line.split("==") for line in tools.splitlines() if line and not line.startswith("#"))
    assert set(pins) == {"uv", "pip-audit"}, "pinned, so that Dependabot moves them"
    assert "pip install" in AUDIT_RUN and "-r .github/requirements-ci.txt" in AUDIT_RUN
    lines = [line.strip() for line in AUDIT_RUN.replace("\\\n", " ").splitlines()]
    export = next(words(line) for line in lines if line.startswith("uv export"))
    assert "--frozen" in export and option(export, "--format") == "requirements-txt" and "--all-extras" in export
    audited = [option(words(line), "-r") for line in lines if line.startswith("pip-audit")]
    assert option(export, "-o") in audited, "pip-audit reads what uv exported from uv.lock"
    compiled = next(words(line) for line in lines if "model_service/requirements.txt" in line)
    assert compiled[:3] == ["uv", "pip", "compile"] and option(compiled, "-o") in audited, (
        "the image's requirements, with what they pull in, as the image installs them"
    )
    assert all("--strict" in line for line in lines if line.startswith("pip-audit")), (
        "a dependency pip-audit cannot collect fails the audit instead of passing it unread"
    )


def test_the_audit_runs_npm_audit_and_scans_the_image() -> None:
    assert "npm audit --audit-level=high" in AUDIT_RUN and (ROOT / "package-lock.json").is_file()
    build = next(words(s["run"]) for s in AUDIT["steps"] if "docker build" in s.get("run", ""))
    assert option(build, "--file") == "model_service/Dockerfile" and build[-1] == "."
    (scan,) = [s for s in AUDIT["steps"] if s.get("uses", "").split("@")[0] == "aquasecurity/trivy-action"]
    assert scan["with"]["image-ref"] == option(build, "--tag")
    assert str(scan["with"]["exit-code"]) == "1" and "CRITICAL" in scan["with"]["severity"]
    assert VERSION.match(scan["with"]["version"]), "the Trivy binary's version, explicit"
    assert isinstance(AUDIT.get("timeout-minutes"), int) and str(AUDIT["runs-on"]).startswith("ubuntu-")


# --- Dependabot ------------------------------------------------------------------------------------------

DEPENDABOT = yaml.safe_load((GITHUB / "dependabot.yml").read_text())


def updates(ecosystem: str) -> list[dict]:
    return [u for u in DEPENDABOT["updates"] if u["package-ecosystem"] == ecosystem]


def directories(update: dict) -> list[str]:
    return update.get("directories") or [update["directory"]]


def test_dependabot_keeps_python_npm_actions_and_the_base_image_current() -> None:
    assert DEPENDABOT["version"] == 2
    python_root = [u for u in updates("uv") + updates("pip") if "/" in directories(u)]
    assert python_root, "the project's Python dependencies (pyproject.toml, uv.lock)"
    assert any("/model_service" in directories(u) for u in updates("pip")), "the image's requirements.txt"
    assert any("/" in directories(u) for u in updates("npm")), "package.json and package-lock.json"
    (actions,) = updates("github-actions")
    for action in ACTION_FILES:  # `/` covers only .github/workflows: each composite action's folder is listed
        folder = "/" + str(action.parent.relative_to(ROOT))
        assert any(fnmatch.fnmatch(folder, pattern) for pattern in directories(actions)), folder
    assert "/" in directories(actions)
    (docker,) = updates("docker")
    assert directories(docker) == ["/model_service"] and (ROOT / "model_service" / "Dockerfile").is_file()
    for update in DEPENDABOT["updates"]:
        assert update["schedule"]["interval"] == "weekly", update["package-ecosystem"]
        for folder in directories(update):
            assert (ROOT / folder.lstrip("/")).is_dir() or "*" in folder, folder


def test_dependabot_never_proposes_the_broken_cdk_cli_3_or_another_python_for_the_image() -> None:
    (npm,) = updates("npm")
    assert {"dependency-name": "aws-cdk", "update-types": ["version-update:semver-major"]} in npm["ignore"]
    (docker,) = updates("docker")
    (python,) = [rule for rule in docker["ignore"] if rule["dependency-name"] == "python"]
    assert set(python["update-types"]) == {"version-update:semver-major", "version-update:semver-minor"}


def test_every_pull_request_checks_its_contract_changes_against_its_base() -> None:
    """The contracts job runs the evolution check on pull requests only, with the base branch's history
    fetched, the base ref passed through the environment (never spliced into the script)."""
    job = WORKFLOWS["ci"]["jobs"]["contracts"]
    assert job["if"] == "github.event_name == 'pull_request'"
    assert WORKFLOWS["ci"][True]["pull_request"] is None, "every pull request, whatever its files"
    checkout, setup, check = job["steps"]
    assert checkout["uses"].startswith("actions/checkout@") and checkout["with"]["fetch-depth"] == 0
    assert setup["uses"] == "./.github/actions/setup"
    assert check["env"] == {"BASE_REF": "origin/${{ github.base_ref }}"}
    assert check["run"] == '.venv/bin/python -m pipeline.evolution --base "$BASE_REF"'
