"""`python -m infra.workspace <ref> [--json | --stacks]`: what a ref deploys to, for the workflows.

Apart from the rule itself (infra/workspace/__init__.py) because it reads the project config, which
imports the rule's Stage and NamingRules: the rule imports no config, and the config no CLI.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from infra.config import DEFAULT_CONFIG_PATH, ConfigError, ProjectConfig, load_config
from infra.naming import deploy_role_name, destroy_role_name, pr_role_name
from infra.workspace import Stage, Target, WorkspaceError, resolve


def configured_target(ref: str, config_path: Path) -> tuple[ProjectConfig, Target] | None:
    """The project config and what `ref` deploys to, for the command-line tools; None (after printing
    `error: ...`, the message naming the input and the fix) when the ref or the config is bad."""
    try:
        config = load_config(config_path)
        return config, resolve(ref, config.naming_rules)
    except (WorkspaceError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    # help texts are not mutated (`make mutation`): they change `--help`, nothing the workflows read
    parser = argparse.ArgumentParser(
        prog="python -m infra.workspace",  # pragma: no mutate
        description="Print the stage and workspace that a git ref deploys to.",  # pragma: no mutate
    )
    ref_help = "branch or tag, short or full (refs/heads/..., refs/tags/...)"  # pragma: no mutate
    parser.add_argument("ref", help=ref_help)
    parser.add_argument("--json", action="store_true", help="print one JSON object")  # pragma: no mutate
    stacks_help = (
        "print the stack names of the workspace's components, one per line, in deployment order"  # pragma: no mutate
    )
    parser.add_argument("--stacks", action="store_true", help=stacks_help)
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG_PATH, help="project config file"
    )  # pragma: no mutate
    args = parser.parse_args(argv)
    found = configured_target(args.ref, args.config)
    if found is None:
        return 2
    config, target = found
    settings = config.stage(target.stage)
    dev = config.stage(Stage.FEATURE).account  # where pull requests are read and feature workspaces destroyed
    deploy = {
        "account": settings.account,
        "region": settings.region,
        "deploy_role": f"arn:aws:iam::{settings.account}:role/{deploy_role_name(config.project, target.stage)}",
        "pr_role": f"arn:aws:iam::{dev}:role/{pr_role_name(config.project)}",
        "destroy_role": f"arn:aws:iam::{dev}:role/{destroy_role_name(config.project)}",
    }
    if args.stacks:
        print("\n".join(config.stack_names(target.stage, target.workspace)))
    elif args.json:
        print(
            json.dumps(
                {
                    "ref": target.ref,
                    "ref_type": target.ref_type,
                    "name": target.name,
                    "stage": target.stage.value,
                    "workspace": target.workspace,
                    "project": config.project,
                    "stacks": config.stack_names(target.stage, target.workspace),
                    **deploy,
                }
            )
        )
    else:  # key=value lines: `>> "$GITHUB_OUTPUT"` in the workflows
        print(
            "\n".join(
                f"{k}={v}" for k, v in {"stage": target.stage.value, "workspace": target.workspace, **deploy}.items()
            )
        )
    return 0
