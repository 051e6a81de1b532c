"""Entry point of the image: settings from the environment, then the server; the model follows.

    python -m model_service [--host 0.0.0.0] [--port 8080]

The server listens at once: before a model exists (a new workspace before its first training run) it
is live (`/health` 200) and not ready (`/ready` 503 with the reason), and it picks the model up when the
alias appears. Only settings that cannot work stop it (exit 3), before it listens.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_service")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 (in its container, reached through the load balancer's port)
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from model_service.assembly import MLFLOW_CLIENT_DEFAULTS, STARTUP_ERRORS, assemble

    for name, value in MLFLOW_CLIENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    try:
        service = assemble(os.environ)
    except STARTUP_ERRORS as exc:
        print(f"model service not started: {exc}", file=sys.stderr)
        return 3

    import uvicorn

    from model_service.api import create_app

    print(service.started, file=sys.stderr)
    uvicorn.run(
        create_app(service.settings, service.tracker, service.contract),
        host=args.host,
        port=args.port,
        log_level="info",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
