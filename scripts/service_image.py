"""The model-service image without Docker: what its Dockerfile copies, installs and runs, reproduced in a
virtual environment built from the image's requirements file alone (nothing from the development
environment), so that a dependency the image lacks fails here as it would on ECS; and a local MLflow server
for it to talk to. Used by tests/model_service/test_image.py and by the cold-start benchmark."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import venv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "model_service" / "Dockerfile"
CACHE = Path(os.environ.get("MODEL_SERVICE_VENV_CACHE", Path.home() / ".cache" / "data-platform" / "image-venvs"))


@dataclass(frozen=True)
class ImageSpec:
    base: str
    workdir: PurePosixPath
    copies: tuple[tuple[str, PurePosixPath], ...]  # (path in the build context, path in the image)
    installs: tuple[PurePosixPath, ...]  # requirements files that `pip install -r` reads, as image paths
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    healthcheck: str
    environment: tuple[tuple[str, str], ...] = ()  # its ENV lines

    def context_path(self, image_path: PurePosixPath) -> Path:
        """The build-context file that the image has at `image_path` (through its COPY)."""
        for source, target in self.copies:
            if target == image_path:
                return ROOT / source
        raise LookupError(f"{image_path} is not copied into the image")

    @property
    def python_version(self) -> str:
        """The base image's Python minor version: python:3.11.14-slim-bookworm -> 3.11 (the patch is the
        base image's, kept current by Dependabot; the tests' interpreter has its own)."""
        return ".".join(self.base.split(":", 1)[1].split("-", 1)[0].split(".")[:2])


def read_dockerfile(path: Path = DOCKERFILE) -> ImageSpec:
    """The instructions that decide what runs; continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip().removesuffix("\\") + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    base, workdir, copies, installs, entrypoint, cmd, healthcheck = "", PurePosixPath("/"), [], [], (), (), ""
    environment: list[tuple[str, str]] = []
    for instruction in logical:
        keyword, _, rest = instruction.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            base = rest.split()[0]
        elif keyword == "WORKDIR":
            workdir = workdir / rest.strip()
        elif keyword == "COPY":
            *sources, target = shlex.split(rest)
            (source,) = sources
            copies.append((source, workdir / target))
        elif keyword == "RUN" and "pip install" in rest:
            words = shlex.split(rest)
            installs += [workdir / words[i + 1] for i, word in enumerate(words) if word in ("-r", "--requirement")]
        elif keyword == "ENTRYPOINT":
            entrypoint = tuple(json.loads(rest))
        elif keyword == "CMD":
            cmd = tuple(json.loads(rest))
        elif keyword == "HEALTHCHECK":
            healthcheck = rest
        elif keyword == "ENV":
            environment += [tuple(pair.split("=", 1)) for pair in shlex.split(rest)]  # type: ignore[misc]
    return ImageSpec(base, workdir, tuple(copies), tuple(installs), entrypoint, cmd, healthcheck, tuple(environment))


def requirements_venv(requirements: Path) -> Path:
    """A virtual environment with exactly `requirements` installed (and their dependencies), cached per
    hash of the file and the Python version: built once per machine, not once per run. The project's uv installs
    them from its cache where it holds every pinned wheel (the lock's: `make install` put them there; seconds, no
    network), else pip from the package index (minutes): the same pins either way."""
    digest = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()[:16]
    target = CACHE / f"service-{digest}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"service-{digest}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers wait for one build
        if (target / ".complete").exists():
            return target
        failures = []
        for install in _installers(target, requirements):
            shutil.rmtree(target, ignore_errors=True)
            venv.EnvBuilder(with_pip=install[0] != "uv", clear=True).create(target)
            command = [str(Path(sys.executable).with_name("uv")), *install[1:]] if install[0] == "uv" else install
            run = subprocess.run(command, capture_output=True, text=True, timeout=1200, env=clean_environment())
            if run.returncode == 0:
                (target / ".complete").write_text(requirements.read_text())
                return target
            failures.append(f"{' '.join(command[:3])}: {run.stdout[-1500:]}{run.stderr[-1500:]}")
        shutil.rmtree(target, ignore_errors=True)
        raise RuntimeError(f"could not install {requirements}:\n" + "\n".join(failures))


def _installers(target: Path, requirements: Path) -> list[list[str]]:
    python = str(target / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)]
    if not Path(sys.executable).with_name("uv").is_file():
        return [pip]
    return [["uv", "pip", "install", "--offline", "--quiet", "--python", python, "-r", str(requirements)], pip]


def lay_out(spec: ImageSpec, destination: Path) -> Path:
    """The image's files (what its COPY lines put there) under `destination`; returns the workdir."""
    for source, target in spec.copies:
        where = destination / target.relative_to("/")
        where.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, where, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
        else:
            shutil.copy2(ROOT / source, where)
    return destination / spec.workdir.relative_to("/")


def clean_environment(**extra: str) -> dict[str, str]:
    """What a container starts with: no variable of the development environment leaks in."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", tempfile.gettempdir()),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


class MlflowServerError(RuntimeError):
    """The local MLflow server did not start; the message holds its log."""


@contextmanager
def local_mlflow_server(folder: Path, port: int, seconds: float = 120) -> Iterator[str]:
    """A local MLflow tracking server over HTTP on 127.0.0.1:`port` (its store and artifacts in `folder`,
    artifacts proxied), from the development environment: the image has mlflow-skinny only, which cannot open a
    SQLite store; it talks to a server, as it does to managed MLflow. Yields its base URL; stopped on exit."""
    log_path = folder / "mlflow.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "mlflow"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{folder / 'mlflow.db'}",
                "--artifacts-destination",
                str(folder / "artifacts"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            # no job runner: MLflow 3 starts five more processes for its GenAI jobs (trace roll-ups), which
            # tracking and the registry never use, each importing mlflow on these two cores
            env={**os.environ, "MLFLOW_TRACKING_URI": "", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + seconds
            while not _answers(f"{base}/health"):  # answers plain "OK"
                if process.poll() is not None or time.monotonic() > deadline:
                    raise MlflowServerError(f"the MLflow server did not start: {log_path.read_text()}")
                time.sleep(0.3)
            yield base
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:  # refused, reset or timed out (URLError, ConnectionError and TimeoutError are OSErrors)
        return False
