"""Stops this SageMaker notebook instance when Jupyter has been idle for IDLE_MINUTES.

Shipped inside the lifecycle configuration (nothing is downloaded at boot) and run by cron every
5 minutes. Idle means: no kernel busy and no kernel or terminal activity for IDLE_MINUTES.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta

JUPYTER = "http://localhost:8443"  # SageMaker's Jupyter listens locally on 8443 (HTTPS)
METADATA = "/opt/ml/metadata/resource-metadata.json"


def last_activity(sessions: list[dict], now: datetime) -> datetime | None:
    """The latest kernel activity, or `now` if a kernel is busy; None when there is no session."""
    latest = None
    for session in sessions:
        kernel = session.get("kernel") or {}
        if kernel.get("execution_state") == "busy":
            return now
        stamp = kernel.get("last_activity")
        if stamp:
            seen = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            latest = seen if latest is None or seen > latest else latest
    return latest


def is_idle(sessions: list[dict], now: datetime, started: datetime, idle_minutes: int) -> bool:
    activity = last_activity(sessions, now) or started
    return now - activity >= timedelta(minutes=idle_minutes)


def main(idle_minutes: int) -> int:
    import ssl

    context = ssl._create_unverified_context()  # the local Jupyter uses a self-signed certificate
    with urllib.request.urlopen(f"{JUPYTER}/api/sessions", context=context, timeout=10) as response:
        sessions = json.load(response)
    with open(METADATA, encoding="utf-8") as handle:
        name = json.load(handle)["ResourceName"]
    with open("/proc/uptime", encoding="ascii") as handle:
        uptime_seconds = float(handle.read().split()[0])
    now = datetime.now(UTC)
    if is_idle(sessions, now, now - timedelta(seconds=uptime_seconds), idle_minutes):
        print(f"idle for {idle_minutes} minutes: stopping {name}")
        subprocess.run(["aws", "sagemaker", "stop-notebook-instance", "--notebook-instance-name", name], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
