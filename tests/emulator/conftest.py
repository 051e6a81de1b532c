"""A workspace deployed by the real CDK CLI to an emulator of its stage's account, once per module.

Each emulator is a process of its own (infra.emulator.server), on 127.0.0.1, stopped at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from infra.config import DEFAULT_CONFIG_PATH, ProjectConfig, load_config
from infra.emulator.cdk import LocalCdk
from infra.emulator.server import Emulator, start
from infra.workspace import Target, resolve


@dataclass
class Deployed:
    emulator: Emulator
    cdk: LocalCdk
    target: Target
    config: ProjectConfig

    @property
    def project(self) -> str:
        return self.config.project

    def stack_names(self) -> list[str]:
        return self.config.stack_names(self.target.stage, self.target.workspace)


@contextmanager
def deployed_workspace(
    config: ProjectConfig, branch: str, workdir: Path, config_file: Path | None = None
) -> Iterator[Deployed]:
    """`config_file`: the project config the CLI synthesises with (default config/project.yaml); `config` must
    be what it holds."""
    target = resolve(branch, config.naming_rules)
    stage = config.stage(target.stage)
    emulator = start(stage.account, stage.region, workdir / "emulator.log")
    try:
        cdk = LocalCdk(emulator, branch, workdir / "cdk.out", config=config_file)
        cdk.bootstrap()
        cdk.synth()
        cdk.seed_images()
        cdk.deploy()
        yield Deployed(emulator, cdk, target, config)
    finally:
        emulator.stop()


def outputs(deployed: Deployed, component: str) -> dict[str, str]:
    """A component stack's outputs, by key."""
    cfn = deployed.emulator.client("cloudformation")
    stack = cfn.describe_stacks(StackName=f"{deployed.project}-{deployed.target.workspace}-{component}")["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def physical_id(deployed: Deployed, component: str, resource_type: str, logical_prefix: str) -> str:
    """The physical id of a component stack's one resource of this type whose logical id has this prefix."""
    cfn = deployed.emulator.client("cloudformation")
    resources = cfn.list_stack_resources(StackName=f"{deployed.project}-{deployed.target.workspace}-{component}")
    (match,) = [
        r["PhysicalResourceId"]
        for r in resources["StackResourceSummaries"]
        if r["ResourceType"] == resource_type and r["LogicalResourceId"].startswith(logical_prefix)
    ]
    return match


def fargate_feature_config(directory: Path, *, container_insights: bool = False) -> tuple[ProjectConfig, Path]:
    """The shipped config with the feature service on Fargate (mode: fargate, endpoint: open) instead of its
    serverless default, written to `directory`: the lifecycle tests of the Fargate variant, whose VPC and
    cluster the destroy must get rid of too (a subnet that is not the stack's keeps the VPC: the stack that will
    not go; Container Insights' log group, which no stack owns). tests/emulator/test_serverless_lifecycle.py
    runs the default."""
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    raw["stages"]["feature"]["service"] |= {
        "mode": "fargate",
        "endpoint": "open",
        "container_insights": container_insights,
    }
    path = directory / "project.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_config(path), path
