"""`make local-deploy` / `make local-destroy`: a branch's workspace on a local AWS emulator.

    python -m infra.emulator up --branch REF [--port N]     start, bootstrap, deploy, print what exists
    python -m infra.emulator status                        what the running emulator holds
    python -m infra.emulator down                          destroy the workspace, stop the emulator

State (the running emulator's port and pid, its log, the synthesised assembly) lives in build/emulator/
(or $EMULATOR_STATE_DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from infra.config import ConfigError, load_config
from infra.emulator import moto_gaps
from infra.emulator.cdk import CdkError, LocalCdk
from infra.emulator.inventory import workspace_resources
from infra.emulator.server import REPO_ROOT, Emulator, start
from infra.lifecycle.destroy import destroy_workspace
from infra.lifecycle.stacks import LifecycleError, find_workspace
from infra.workspace import PERSISTENT_WORKSPACES, WorkspaceError, resolve

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

STATE_DIR = Path(os.environ.get("EMULATOR_STATE_DIR", REPO_ROOT / "build" / "emulator"))
STATE_FILE = STATE_DIR / "state.json"
CDK_REFERENCE_OUTPUT = "PublishOutput"
"""Outputs the CDK adds for other stacks' references to this one: not worth a line each."""


def load_state() -> dict[str, Any] | None:
    if not STATE_FILE.exists():
        return None
    state = json.loads(STATE_FILE.read_text(encoding="utf-8"))
    return state if emulator_of(state).running() else None


def emulator_of(state: dict[str, Any]) -> Emulator:
    return Emulator.from_dict(state["emulator"])


def describe(emulator: Emulator, project: str, workspace: str) -> str:
    """The workspace's stacks (status, resources emulated by moto or only recorded, outputs) and what
    exists outside CloudFormation's view, by kind."""
    cfn: CloudFormationClient = emulator.client("cloudformation")
    native = moto_gaps.native_types()
    lines = []
    for stack in find_workspace(cfn, project, workspace):
        detail = cfn.describe_stacks(StackName=stack.name)["Stacks"][0]
        types = Counter(
            r["ResourceType"] for r in cfn.list_stack_resources(StackName=stack.name)["StackResourceSummaries"]
        )
        emulated = sum(n for t, n in types.items() if t in native)
        lines.append(
            f"{stack.name}  {stack.status}  {sum(types.values())} resources "
            f"({emulated} emulated by moto, {sum(types.values()) - emulated} recorded only)"
        )
        lines += [
            f"    {o['OutputKey']} = {o['OutputValue']}"
            for o in detail.get("Outputs", [])
            if not o["OutputKey"].startswith(CDK_REFERENCE_OUTPUT)
        ]
    lines.append("in the account:")
    for kind, names in workspace_resources(emulator.client, project, workspace).items():
        lines.append(f"    {kind} ({len(names)}): {', '.join(names[:4])}{' ...' if len(names) > 4 else ''}")
    return "\n".join(lines)


def up(branch: str, port: int | None) -> int:
    config = load_config()
    target = resolve(branch, config.naming_rules)
    stage = config.stage(target.stage)
    state = load_state()
    if state and (state["branch"] != target.name or state["emulator"]["account"] != stage.account):
        print(f"error: the emulator is running for {state['branch']}; run `make local-destroy` first", file=sys.stderr)
        return 2
    emulator = emulator_of(state) if state else start(stage.account, stage.region, STATE_DIR / "server.log", port)
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(
        json.dumps({"branch": target.name, "workspace": target.workspace, "emulator": emulator.as_dict()}, indent=2),
        encoding="utf-8",
    )
    cdk = LocalCdk(emulator, target.name, STATE_DIR / "cdk.out")
    try:
        print(
            f"emulator: {emulator.endpoint} plays account {emulator.account} ({emulator.region}); log {emulator.log}",
            flush=True,
        )
        for step, action in (
            ("bootstrap", cdk.bootstrap),
            ("synth", cdk.synth),
            ("seed images", cdk.seed_images),
            ("deploy", cdk.deploy),
        ):
            print(f"{step} ...", flush=True)
            action()
    except CdkError:
        print(
            f"the emulator is left running for a look (make local-status; make local-destroy stops it); "
            f"the CLI's output is in {STATE_DIR / 'cdk.log'}",
            file=sys.stderr,
        )
        raise
    finally:
        (STATE_DIR / "cdk.log").write_text("\n".join(cdk.log), encoding="utf-8")
    print(f"\nworkspace {target.workspace} ({target.stage.value}) of {target.name}:")
    print(describe(emulator, config.project, target.workspace))
    env = " ".join(f"{k}={v}" for k, v in emulator.env().items() if k.startswith("AWS_") and "SESSION" not in k)
    print(f"\nleft running for inspection, e.g.\n    {env} aws s3 ls\nstop it: make local-destroy")
    return 0


def down() -> int:
    state = load_state()
    if state is None:
        print("no emulator is running")
        STATE_FILE.unlink(missing_ok=True)
        return 0
    emulator, workspace = emulator_of(state), state["workspace"]
    project = load_config().project
    try:
        if workspace in PERSISTENT_WORKSPACES:
            print(f"{workspace} is a persistent workspace: not destroyed (stopping the emulator discards it)")
        else:
            # one workspace in a private emulator: no other deploy can be reusing its assets, so they go now
            # (in an account they wait ASSET_GRACE: see infra.lifecycle.assets.unused_asset)
            report = destroy_workspace(emulator.client, project, workspace, asset_grace=timedelta(0))
            print(f"destroyed {', '.join(report.stacks) or 'nothing'}")
            left = workspace_resources(emulator.client, project, workspace)
            print("nothing of it is left" if not left else f"left behind: {json.dumps(left, indent=2)}")
    finally:
        emulator.stop()
        STATE_FILE.unlink(missing_ok=True)
    print("emulator stopped")
    return 0


def status() -> int:
    state = load_state()
    if state is None:
        print("no emulator is running (make local-deploy)")
        return 0
    emulator = emulator_of(state)
    print(f"emulator: {emulator.endpoint} (pid {emulator.pid}), branch {state['branch']}")
    print(describe(emulator, load_config().project, state["workspace"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.emulator", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    deploy = sub.add_parser("up", help="start the emulator and deploy a branch's workspace to it")
    deploy.add_argument("--branch", required=True, help="git ref (make local-deploy passes the current branch)")
    deploy.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    sub.add_parser("down", help="destroy the workspace and stop the emulator")
    sub.add_parser("status", help="what the running emulator holds")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return up(args.branch, args.port)
        return down() if args.command == "down" else status()
    except (ConfigError, WorkspaceError, LifecycleError, CdkError, ClientError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
