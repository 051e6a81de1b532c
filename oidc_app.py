#!/usr/bin/env python3
"""CDK app of the one-time GitHub OIDC set-up (infra/oidc.py): one stack per account, deployed by hand,
one at a time with that account's credentials (never `--all`: see infra/oidc.py)."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20,22,24")

from infra.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from infra.oidc import build_oidc_stacks
from infra.platform import create_app

if __name__ == "__main__":
    app = create_app()
    try:  # `-c config=<file>` as for app.py (the emulator's IAM-enforced test deploys with its own)
        config = load_config(app.node.try_get_context("config") or DEFAULT_CONFIG_PATH)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    build_oidc_stacks(app, config)
    app.synth()
