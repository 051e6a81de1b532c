"""The emulator process: moto's server for one AWS account on 127.0.0.1, with `moto_gaps` installed.

It runs in a process of its own (`python -m infra.emulator.server --port P --account A`): the account is
process-wide in moto (MOTO_ACCOUNT_ID), the patches must not leak into the caller, and `make
local-deploy` leaves it running after the command returns. `start()` launches one and waits until it
answers; `Emulator` is the handle to it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
STARTUP_SECONDS = 60


@dataclass(frozen=True)
class Emulator:
    """A running emulator process and what a client needs to talk to it."""

    pid: int
    port: int
    account: str
    region: str
    log: str

    @property
    def endpoint(self) -> str:
        # `localhost`, not 127.0.0.1: moto reads an S3 bucket out of the host of a virtual-hosted URL
        # (the CDK CLI's TemplateURL), and `<bucket>.localhost` resolves here while an IP cannot carry it.
        return f"http://localhost:{self.port}"

    def env(self) -> dict[str, str]:
        """Environment for the CDK CLI, boto3 and the AWS CLI: this endpoint, fake credentials."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            # one key per account: the CDK CLI caches the account of an access key (~/.cdk/cache)
            "AWS_ACCESS_KEY_ID": f"LOCAL{self.account}",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self, service: str) -> Any:
        from infra.aws_clients import client

        env = self.env()
        return client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=env["AWS_SESSION_TOKEN"],
        )

    def running(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.port}/moto-api/", timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Stop the process (and anything it started); a no-op if it is already gone."""
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.killpg(self.pid, signal.SIGKILL)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "endpoint": self.endpoint}

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> Emulator:
        """The handle back from `as_dict` (the endpoint is derived, not stored)."""
        return cls(**{f.name: saved[f.name] for f in fields(cls)})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start(account: str, region: str, log: Path, port: int | None = None) -> Emulator:
    """Launch an emulator for `account` and wait until it answers; its output goes to `log`."""
    port = port or free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.emulator.server", "--port", str(port), "--account", account],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() ends it and nothing else
        )
    emulator = Emulator(pid=process.pid, port=port, account=account, region=region, log=str(log))
    deadline = time.monotonic() + STARTUP_SECONDS
    while not emulator.running():
        if process.poll() is not None or time.monotonic() > deadline:
            emulator.stop()
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the emulator did not start on port {port} (log {log}):\n{tail}")
        time.sleep(0.2)
    return emulator


def serve(port: int, account: str) -> None:
    """Run the server in this process until SIGTERM or SIGINT."""
    os.environ["MOTO_ACCOUNT_ID"] = account  # moto's account for every request, whatever the credentials
    os.environ["MOTO_PORT"] = str(port)
    from moto.server import ThreadedMotoServer

    from infra.emulator import moto_gaps

    moto_gaps.install(port)
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    print(f"emulator: account {account} on http://localhost:{port}", flush=True)
    stopped.wait()
    server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.emulator.server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--account", required=True, help="12-digit AWS account ID that the emulator plays")
    args = parser.parse_args(argv)
    serve(args.port, args.account)
    return 0


if __name__ == "__main__":
    sys.exit(main())
