"""One lock for everything: uv.lock is what pyproject.toml resolves to, this environment is exactly it, and
the image's requirements are exported from it (so the image runs the versions the tests ran)."""

from __future__ import annotations

import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".venv" / "bin" / "uv"
REQUIREMENTS = ROOT / "model_service" / "requirements.txt"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, set[str]]:
    packages: dict[str, set[str]] = {}
    for package in tomllib.loads((ROOT / "uv.lock").read_text())["package"]:
        if "version" in package:
            packages.setdefault(canonical(package["name"]), set()).add(package["version"])
    return packages


def test_the_lock_is_what_pyproject_resolves_to() -> None:
    done = subprocess.run([str(UV), "lock", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"uv.lock is stale: run `make lock` and commit it\n{done.stderr[-2000:]}"


def test_this_environment_is_exactly_the_lock() -> None:
    lock = locked()
    installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    differ = {
        name: (version, sorted(lock[name]))
        for name, version in installed.items()
        if name in lock and version not in lock[name]
    }
    assert not differ, f"installed vs uv.lock (run `make install`): {differ}"
    assert {"pyspark", "boto3", "mlflow", "fastapi", "aws-cdk-lib"} <= installed.keys() & lock.keys()


IMAGES = {"service": REQUIREMENTS, "training": ROOT / "training" / "requirements.txt"}
"""Each image's requirements file, by the pyproject extra it is exported from."""


def pins(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("extra", sorted(IMAGES))
def test_the_images_requirements_are_exported_from_the_lock(extra: str) -> None:
    exported = subprocess.run(
        [
            str(UV),
            "export",
            "--frozen",
            "--extra",
            extra,
            "--no-dev",
            "--no-emit-project",
            "--no-hashes",
            "--no-header",
            "--no-annotate",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    pinned = pins(IMAGES[extra])
    assert pinned == exported.splitlines(), f"{IMAGES[extra].relative_to(ROOT)} is not uv.lock's: run `make lock`"
    lock = locked()
    for line in pinned:
        name, version = line.split(";")[0].strip().split("==")
        assert version in lock[canonical(name)], line
    assert not {canonical(line.split("==")[0]) for line in pinned} & {"aws-cdk-lib", "pyspark", "pytest"}, (
        "the image holds its own dependencies only"
    )


def test_training_and_serving_load_the_same_libraries() -> None:
    """A model pickled by one scikit-learn and loaded by another may predict differently, or not load: what the
    two images share, they pin alike (one lock), and the model's own libraries are in both."""
    service, training = ({line.split(";")[0].split("==")[0]: line for line in pins(path)} for path in IMAGES.values())
    shared = service.keys() & training.keys()
    assert {"scikit-learn", "numpy", "pandas", "mlflow-skinny", "skops", "sagemaker-mlflow"} <= shared
    assert {name: service[name] for name in shared} == {name: training[name] for name in shared}
    assert "matplotlib" in training and "matplotlib" not in service, "the run's figures: training's only"
