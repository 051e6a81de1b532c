"""What deploys is what was tested: the Glue version's Spark is the installed pyspark, and every Lambda
runs the tested Python and imports from its synthesised asset with only what the Lambda runtime provides."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.runtimes import GLUE_SPARK, LAMBDA_RUNTIME
from infra.workspace import Stage

LAMBDA_BOTO3 = "boto3==1.40.4"
"""The boto3 of the python3.11 Lambda runtime (close to it: AWS updates it without notice): the one
third-party package a handler may import without bundling it."""
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "data-platform" / "lambda-runtime"


def resources(workspace, resource_type: str) -> list[tuple[str, dict]]:
    return [
        (logical_id, resource)
        for template in workspace.templates.values()
        for logical_id, resource in template.find_resources(resource_type).items()
    ]


def test_the_installed_pyspark_is_the_glue_versions_spark(workspaces) -> None:
    import pyspark

    versions = {r["Properties"]["GlueVersion"] for w in workspaces.values() for _, r in resources(w, "AWS::Glue::Job")}
    assert len(versions) == 1, versions
    (glue_version,) = versions
    assert pyspark.__version__ == GLUE_SPARK[glue_version], (
        f"Glue {glue_version} runs Spark {GLUE_SPARK[glue_version]}; pin pyspark=={GLUE_SPARK[glue_version]}"
    )


def test_every_lambda_runs_the_python_the_tests_run(workspaces) -> None:
    runtimes = {
        r["Properties"]["Runtime"]
        for w in workspaces.values()
        for _, r in resources(w, "AWS::Lambda::Function")
        if "Handler" in r["Properties"] and str(r["Properties"]["Handler"]).startswith("lambdas.")
    }
    assert runtimes == {LAMBDA_RUNTIME.name} == {f"python{sys.version_info.major}.{sys.version_info.minor}"}


@pytest.fixture(scope="session")
def runtime_packages() -> Path:
    """boto3 alone (and its dependencies) in a directory: what the Lambda runtime puts on the path."""
    target = CACHE / LAMBDA_BOTO3.replace("==", "-")
    if not (target / "boto3").is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(target), LAMBDA_BOTO3],
            check=True,
            timeout=600,
        )
    return target


def test_every_handler_imports_from_its_asset_with_only_the_runtimes_packages(
    workspaces, cdk_out, runtime_packages
) -> None:
    """In a clean interpreter (-I -S: no site-packages, no user path), as the Lambda runtime loads it:
    the asset directory and the runtime's boto3 on the path, the function's own environment, and
    LAMBDA_TASK_ROOT, so that Powertools' Tracer starts as in Lambda (it imports and patches the X-Ray SDK,
    which the asset must bring)."""
    by_handler = {  # feature's, and int's extractor (a database source: pg8000 and what it imports)
        r["Properties"]["Handler"]: r
        for stage in (Stage.INT, Stage.FEATURE)
        for _, r in resources(workspaces[stage], "AWS::Lambda::Function")
        if str(r["Properties"].get("Handler", "")).startswith("lambdas.")
    }
    assert "lambdas.extract.handler.handler" in by_handler
    functions = list(by_handler.values())
    assert len(functions) >= 3
    for function in functions:
        asset = cdk_out / f"asset.{function['Properties']['Code']['S3Key'].removesuffix('.zip')}"
        assert (asset / "lambdas").is_dir(), asset
        module, _, attribute = function["Properties"]["Handler"].rpartition(".")
        environment = {
            k: v
            for k, v in function["Properties"].get("Environment", {}).get("Variables", {}).items()
            if isinstance(v, str)
        }
        code = (
            f"import sys; sys.path[:0] = [{str(asset)!r}, {str(runtime_packages)!r}]\n"
            f"import importlib; handler = getattr(importlib.import_module({module!r}), {attribute!r})\n"
            "assert callable(handler)\n"
            "from lambdas.observability import tracer; assert not tracer.disabled, 'tracer off'\n"
            "import json; print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
        )
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            env={
                "AWS_DEFAULT_REGION": "eu-west-1",
                "AWS_REGION": "eu-west-1",
                "LAMBDA_TASK_ROOT": str(asset),
                "PATH": os.environ["PATH"],
                **environment,
            },
        )
        assert done.returncode == 0, f"{module}: {done.stderr[-2000:]}"
        loaded = set(json.loads(done.stdout.splitlines()[-1]))
        assert "pyspark" not in loaded and "moto" not in loaded and "pandas" not in loaded, module
        assert "aws_xray_sdk" in loaded, f"{module}: the tracer did not start"
