"""Entry point of the image: settings from the environment, the model loaded, then the server.

    python -m model_service [--host 0.0.0.0] [--port 8080]

A model that cannot be loaded stops the process with a clear message (exit 3) before it listens.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_service")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)

    from model_service.model import ModelLoadError, load_model
    from model_service.settings import SettingsError, settings_from_env
    from pipeline.contract import load_contracts

    try:
        settings = settings_from_env(os.environ)
        contract = load_contracts()[settings.contract]
        model = load_model(settings.model_uri, settings.tracking_uri, contract.features)
    except (SettingsError, ModelLoadError) as exc:
        print(f"model service not started: {exc}", file=sys.stderr)
        return 3

    import uvicorn

    from model_service.api import create_app

    print(f"serving {model.name} version {model.version} from {model.uri}", file=sys.stderr)
    uvicorn.run(create_app(settings, model, contract), host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
