#!/usr/bin/env python3
"""CDK entry point: the only place that reads the branch and the environment.

The branch comes from `-c branch=<ref>` (what the workflows and `make synth BRANCH=...` pass),
else from the current git branch. From it and config/project.yaml it builds one workspace.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20,22,24")

from infra.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from infra.platform import build_workspace, create_app
from infra.workspace import WorkspaceError, resolve


def current_git_branch() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--abbrev-ref", "HEAD"],  # noqa: S607 (the developer's git, from PATH as their shell finds it)
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise WorkspaceError(
            "",
            f"no branch given and git could not tell the current one ({exc}); "
            "pass -c branch=<name> (make synth BRANCH=<name>)",
        ) from None
    branch = out.stdout.strip()
    if branch == "HEAD":
        raise WorkspaceError(
            "HEAD",
            "the checkout is a detached HEAD, which names no branch; pass -c branch=<name> (make synth BRANCH=<name>)",
        )
    return branch


def main() -> int:
    app = create_app()
    ref = app.node.try_get_context("branch") or current_git_branch()
    config = load_config(app.node.try_get_context("config") or DEFAULT_CONFIG_PATH)
    target = resolve(ref, config.naming_rules)
    stacks = build_workspace(app, config, target)
    print(
        f"branch:    {target.name} ({target.ref_type})\nstage:     {target.stage.value}\n"
        f"workspace: {target.workspace}\nstacks:    " + " ".join(s.stack_name for s in stacks.values()),
        file=sys.stderr,
    )
    app.synth()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ConfigError, WorkspaceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
