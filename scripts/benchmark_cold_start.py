"""Benchmark (not a test): the serverless service's cold start, in the form that runs on Lambda.

    .venv/bin/python scripts/benchmark_cold_start.py [--runs 5] [--warm 500]

Each run is a fresh Python process started as Lambda starts the image (`python -m awslambdaric
model_service.lambda_entry.handler`, against a local stand-in for Lambda's runtime API: scripts/lambda_runtime.py),
from the image's own environment (its requirements file alone, its files and ENV: scripts/service_image.py),
that imports the handler module, then answers one function-URL event, POST /v1/predict with one record: the
first request of an environment loads the champion from MLflow (a local MLflow server over HTTP here, as the
image talks to managed MLflow in AWS, where the artifacts come from S3).
Reported: the time to the handler being imported (init) and to the answer (the cold
request), median and worst over the runs, and p50/p99 of the warm requests one environment then answers.
Lambda's own start of the environment and the image download come on top in AWS; this machine has 2 cores,
Lambda gives 2048 MB about 1.2 vCPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.lambda_runtime import RuntimeApi, function_url_event  # noqa: E402 (the path above first)


@dataclass(frozen=True)
class Image:
    python: Path  # of the environment built from the image's requirements alone
    workdir: Path  # the image's files, laid out as its COPY lines put them
    environment: dict[str, str]  # what the function starts with: the image's ENV, the stack's variables


def one_cold_start(image: Image, body: str, log: Path, warm_requests: int = 1) -> tuple[float, float, list[float]]:
    """(seconds to the first event being asked for, to its answer, of each of `warm_requests` answers after it)
    of a new process."""
    from infra.constructs.serverless_service import LAMBDA_ENTRYPOINT, LAMBDA_HANDLER

    _, *module = LAMBDA_ENTRYPOINT
    with RuntimeApi() as api, log.open("a") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(image.python), *module, LAMBDA_HANDLER],
            cwd=image.workdir,
            env={**image.environment, "AWS_LAMBDA_RUNTIME_API": api.address},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            kind, response = api.invoke(function_url_event("POST", "/v1/predict", body))
            answered = time.perf_counter() - started
            initialised = api.invocations.polled_at[0] - started
            if kind != "response" or response["statusCode"] != 200:
                raise RuntimeError(f"cold request: {kind} {response}; see {log}")
            warm = []
            for _ in range(warm_requests):
                warm_started = time.perf_counter()
                kind, response = api.invoke(function_url_event("POST", "/v1/predict", body))
                warm.append(time.perf_counter() - warm_started)
                if kind != "response" or response["statusCode"] != 200:
                    raise RuntimeError(f"warm request: {kind} {response}; see {log}")
        finally:
            process.terminate()
            process.wait(timeout=20)
    return initialised, answered, warm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warm", type=int, default=500, help="warm requests after the first cold start")
    args = parser.parse_args(argv)

    from infra.constructs.serverless_service import WRITABLE_HOME
    from scripts.benchmark_service import free_port, registered_champion
    from scripts.service_image import (
        clean_environment,
        lay_out,
        local_mlflow_server,
        read_dockerfile,
        requirements_venv,
    )
    from training.train import MODEL_NAME

    spec = read_dockerfile()
    (requirements,) = spec.installs
    python = requirements_venv(spec.context_path(requirements)) / "bin" / "python"
    store = Path(tempfile.mkdtemp(prefix="bench-cold-start-"))
    with local_mlflow_server(store, free_port()) as tracking_uri:
        _, _, records = registered_champion("bench-cold-start-", 1, tracking_uri=tracking_uri)
        image = Image(
            python,
            lay_out(spec, store / "image"),
            clean_environment(
                **dict(spec.environment),
                HOME=WRITABLE_HOME,
                MODEL_SERVICE_MODEL_NAME=MODEL_NAME,
                MODEL_SERVICE_MODEL_ALIAS="champion",
                MLFLOW_TRACKING_URI=tracking_uri,
            ),
        )
        body = json.dumps({"records": records})
        log = store / "functions.log"
        runs = [one_cold_start(image, body, log, args.warm if i == 0 else 1) for i in range(args.runs)]
    init = [initialised for initialised, _, _ in runs]
    cold = [answered for _, answered, _ in runs]
    warm = sorted(runs[0][2])
    print(f"{args.runs} cold starts: a new process, the handler imported, one POST /v1/predict (1 record)")
    print(f"initialised (handler imported) after {statistics.median(init):.2f} s (median; worst {max(init):.2f} s)")
    print(f"cold request answered after {statistics.median(cold):.2f} s (median; worst {max(cold):.2f} s)")
    p99 = warm[min(len(warm) - 1, int(len(warm) * 0.99))]
    print(
        f"{len(warm)} warm requests in one environment, through the runtime API over loopback: "
        f"p50 {statistics.median(warm) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
