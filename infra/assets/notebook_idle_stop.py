"""Stops this SageMaker notebook instance when Jupyter has been idle for IDLE_MINUTES.

Shipped inside the lifecycle configuration (nothing is downloaded at boot) and run every 5 minutes by
the platform's system interpreter (`infra.constructs.notebook_lifecycle.PLATFORM`), not the kernels'
conda Python: so this file uses the standard library only and nothing newer than that interpreter
(the tests check it with vermin). Idle means: no kernel busy, and no kernel or terminal activity for
IDLE_MINUTES (or, with no activity at all, IDLE_MINUTES since the instance started).

When Jupyter cannot be read, it says so and exits non-zero: it never stops an instance it cannot see.
"""

from __future__ import annotations

import argparse
import json
import re
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

JUPYTER = "https://localhost:8443"
"""The notebook's Jupyter: local, HTTPS, self-signed certificate (as AWS's own auto-stop sample reads it)."""
METADATA = "/opt/ml/metadata/resource-metadata.json"
"""SageMaker writes the instance's name here (`ResourceName`)."""
UPTIME = "/proc/uptime"
STOP_COMMAND = ("aws", "sagemaker", "stop-notebook-instance", "--notebook-instance-name")
"""The instance name is appended. The AWS CLI, not boto3: the system interpreter has no boto3."""
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
UTC = timezone.utc  # noqa: UP017 (datetime.UTC is Python 3.11+; this runs on the platform's 3.9)
EXIT_JUPYTER_UNREADABLE = 2
EXIT_STOP_FAILED = 3

Json = dict[str, Any]  # subscripting a builtin at run time: Python 3.9+
_FRACTION = re.compile(r"\.(\d+)")


def parse_timestamp(text: str) -> datetime:
    """Jupyter's `2026-11-22T12:00:00.123456Z` as an aware datetime. Python 3.9's fromisoformat takes
    neither `Z` nor fractions other than 3 or 6 digits, so both are normalised first; no zone is UTC."""
    text = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    stamp = datetime.fromisoformat(text)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def last_activity(sessions: Iterable[Json], terminals: Iterable[Json], now: datetime) -> datetime | None:
    """The latest kernel or terminal activity, `now` if a kernel is busy, None when nothing ever ran."""
    stamps = []
    for session in sessions:
        kernel = session.get("kernel") or {}
        if kernel.get("execution_state") == "busy":
            return now
        if kernel.get("last_activity"):
            stamps.append(parse_timestamp(kernel["last_activity"]))
    stamps.extend(parse_timestamp(t["last_activity"]) for t in terminals if t.get("last_activity"))
    return max(stamps) if stamps else None


def is_idle(
    sessions: Iterable[Json], now: datetime, started: datetime, idle_minutes: int, terminals: Iterable[Json] = ()
) -> bool:
    """Idle when the last activity (or the start, if none) is at least `idle_minutes` old."""
    activity = last_activity(sessions, terminals, now) or started
    return now - activity >= timedelta(minutes=idle_minutes)


def ssl_context(url: str) -> ssl.SSLContext:
    """Certificate checks off for the local Jupyter only (its certificate is self-signed); on for any
    other host, so that a misconfigured URL cannot leak anything to a host that is not verified."""
    context = ssl.create_default_context()
    if urlsplit(url).hostname in LOCAL_HOSTS:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def get_json(url: str, *, optional: bool = False) -> list[Json]:
    """A Jupyter API list; [] for a 404 when `optional` (terminals may be switched off)."""
    try:
        with urllib.request.urlopen(url, context=ssl_context(url), timeout=10) as response:  # noqa: S310 (Jupyter's own https://localhost API)
            listed = json.load(response)
    except urllib.error.HTTPError as error:
        if optional and error.code == 404:
            return []
        raise
    if not isinstance(listed, list):
        raise ValueError(f"{url} answered a JSON {type(listed).__name__}, not the list Jupyter's API returns")
    return listed


def log(message: str) -> None:
    print(f"{datetime.now(UTC).isoformat(timespec='seconds')} notebook-idle-stop: {message}", flush=True)


def main(
    argv: Sequence[str] | None = None,
    *,
    jupyter: str = JUPYTER,
    metadata: str = METADATA,
    uptime: str = UPTIME,
    stop_command: Sequence[str] = STOP_COMMAND,
) -> int:
    """Reads Jupyter's sessions and terminals, and stops the instance when idle. The keyword arguments
    (and the matching options) exist for tests; the schedule passes only the idle minutes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("idle_minutes", type=int)
    parser.add_argument("--jupyter", default=jupyter)
    parser.add_argument("--metadata", default=metadata)
    parser.add_argument("--uptime", default=uptime)
    args = parser.parse_args(argv)
    base = args.jupyter.rstrip("/")
    try:
        sessions = get_json(f"{base}/api/sessions")
        terminals = get_json(f"{base}/api/terminals", optional=True)
    except (OSError, ValueError) as error:  # URLError, HTTPError, timeouts, TLS and JSON errors
        log(f"cannot read Jupyter at {base} ({error}); not stopping")
        return EXIT_JUPYTER_UNREADABLE
    with open(args.metadata, encoding="utf-8") as handle:
        resource = json.load(handle)
    name = resource["ResourceName"]
    region = resource["ResourceArn"].split(":")[3]  # cron/systemd give the CLI no region of its own
    with open(args.uptime, encoding="ascii") as handle:
        uptime_seconds = float(handle.read().split()[0])
    now = datetime.now(UTC)
    started = now - timedelta(seconds=uptime_seconds)
    if not is_idle(sessions, now, started, args.idle_minutes, terminals):
        log(f"active within the last {args.idle_minutes} minutes: {name} keeps running")
        return 0
    log(f"idle for {args.idle_minutes} minutes: stopping {name}")
    try:
        subprocess.run([*stop_command, name, "--region", region], check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        log(f"could not stop {name}: {error}")
        return EXIT_STOP_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
