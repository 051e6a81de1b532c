"""Benchmark (not a test): requests per second and p50/p99 latency of POST /v1/predict for batches
of 1 and 100 records over loopback, and of a bare FastAPI endpoint returning a constant, in one run.

    .venv/bin/python scripts/benchmark_service.py [--requests 2000] [--concurrency 4]

Both servers run as the image does (uvicorn, one worker) on 127.0.0.1; the load comes from threads
with keep-alive connections on the same 2-core machine, so the figures are a floor, not a ceiling.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def registered_champion(prefix: str, rows: int, tracking_uri: str | None = None) -> tuple[Path, str, list[dict]]:
    """An MLflow store whose champion is the trained example model (a new local one in a folder named `prefix`...,
    or the server at `tracking_uri`), its tracking URI, and `rows` records of its features as a client sends
    them (JSON numbers of the contract's types). Shared by the benchmarks of the service (this one,
    benchmark_cold_start.py)."""
    from training.train import contract, load_features, local_tracking_uri, train_and_register

    store = Path(tempfile.mkdtemp(prefix=prefix))
    tracking_uri = tracking_uri or local_tracking_uri(store)
    frame, source = load_features(None)
    train_and_register(frame, source, tracking_uri=tracking_uri)
    spec = contract()
    integers = {c.name for c in spec.columns if c.type == "integer"}
    records = [
        {k: (int(v) if k in integers else float(v)) for k, v in row.items()}
        for row in frame[list(spec.features)].head(rows).to_dict(orient="records")
    ]
    return store, tracking_uri, records


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; see its log")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} not ready in {seconds} s")


def load(port: int, body: bytes, requests: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = requests // concurrency

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for _ in range(per_thread):
            started = time.perf_counter()
            connection.request("POST", "/v1/predict", body=body, headers={"content-type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
            mine.append(time.perf_counter() - started)
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def oversized(port: int, size: int, concurrency: int) -> list[str]:
    """`concurrency` bodies of `size` bytes at once: what each got back (a status, or the error when the
    server closed the connection before the whole body was sent)."""
    body = b'{"records": [' + b" " * size + b"]}"
    outcomes: list[str] = []

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request("POST", "/v1/predict", body=body, headers={"content-type": "application/json"})
            outcomes.append(str(connection.getresponse().status))
        except OSError as exc:
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def same_as_mlflow(port: int, tracking_uri: str, records: list[dict]) -> None:
    """The service answers exactly what the champion answers when MLflow loads it (else the figures are not the
    champion's): stops the benchmark otherwise."""
    import mlflow
    import pandas as pd

    from training.train import MODEL_NAME

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(
        "POST", "/v1/predict", body=json.dumps({"records": records}), headers={"content-type": "application/json"}
    )
    served = json.loads(connection.getresponse().read())["predictions"]
    mlflow.set_tracking_uri(tracking_uri)
    own = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion").predict(pd.DataFrame(records).astype("float64"))
    if served != [float(p) for p in own]:
        raise RuntimeError("the service's predictions differ from the champion's own (mlflow.pyfunc)")
    print(f"the service's predictions of {len(records)} records are the champion's own, bit for bit")


def report(label: str, elapsed: float, latencies: list[float]) -> float:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000
    rps = len(ordered) / elapsed
    print(f"{label:<28}{rps:>10,.0f} req/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
    return rps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)

    from training.train import MODEL_NAME

    store, tracking_uri, records = registered_champion("bench-service-", 100)

    service_port, bare_port = free_port(), free_port()
    env = {
        **os.environ,
        "MODEL_SERVICE_MODEL_NAME": MODEL_NAME,
        "MODEL_SERVICE_MODEL_ALIAS": "champion",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MODEL_SERVICE_MAX_BATCH_SIZE": "1000",
    }
    log = (store / "servers.log").open("w")  # a pipe nobody reads would fill up and stall the servers
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "model_service", "--host", "127.0.0.1", "--port", str(service_port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "scripts.bare_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(bare_port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        ),
    ]
    try:
        wait_ready(f"http://127.0.0.1:{service_port}/ready", servers[0])
        wait_ready(f"http://127.0.0.1:{bare_port}/docs", servers[1])
        idle = peak_rss_mib(servers[0].pid)
        same_as_mlflow(service_port, tracking_uri, records)
        one = json.dumps({"records": records[:1]}).encode()
        hundred = json.dumps({"records": records}).encode()
        for port, body in ((service_port, one), (bare_port, one)):  # warm-up
            load(port, body, 200, args.concurrency)
        print(f"{args.requests} requests per scenario, {args.concurrency} connections, 127.0.0.1")
        bare = report("bare FastAPI (constant)", *load(bare_port, one, args.requests, args.concurrency))
        single = report("/v1/predict, 1 record", *load(service_port, one, args.requests, args.concurrency))
        batch = report("/v1/predict, 100 records", *load(service_port, hundred, args.requests, args.concurrency))
        print(f"predict(1) / bare: {single / bare:.2f}x; records/s at batch 100: {batch * 100:,.0f}")
        # memory: the largest request the service accepts, many at once, then bodies far over its limit
        largest = json.dumps({"records": (records * 10)[:1000]}).encode()
        report(
            f"/v1/predict, 1000 records ({len(largest) >> 10} KiB)",
            *load(service_port, largest, args.requests // 10, args.concurrency * 2),
        )
        outcomes = oversized(service_port, 42 << 20, 4)
        print(f"4 concurrent 42 MB bodies: {', '.join(sorted(outcomes))}")
        print(
            f"service peak RSS: {peak_rss_mib(servers[0].pid):.0f} MiB, {idle:.0f} MiB when ready "
            "(feature task memory: 512 MiB)"
        )
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
