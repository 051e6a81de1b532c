"""The real CDK CLI (node_modules/.bin/cdk, the version package.json pins) pointed at an emulator.

Two CLI options differ from a deploy to AWS, both for moto: `deploy --method=direct` (moto's change
sets report no outputs, so the next stack's references to them would fail) and `diff
--method=template` (compare with the deployed template; no change set). The app, its context and the
templates are the ones that go to AWS.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from infra.emulator.server import REPO_ROOT, Emulator

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

CDK = REPO_ROOT / "node_modules" / ".bin" / "cdk"
PLACEHOLDER_MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 0,
            "digest": "sha256:" + "0" * 64,
        },
        "layers": [],
    }
)
"""An image manifest with no layers: enough for ECR to list the tag, so that the CLI sees the image asset
as published and does not try to build it (there is no Docker engine here)."""


class CdkError(RuntimeError):
    """A CDK CLI command failed; the message ends with the tail of its output."""


@dataclass
class LocalCdk:
    emulator: Emulator
    branch: str
    outdir: Path
    config: Path | None = None
    timeout_seconds: int = 900
    log: list[str] = field(default_factory=list)

    def run(self, *args: str, ok: tuple[int, ...] | None = (0,)) -> subprocess.CompletedProcess[str]:
        """Run the CLI; raise CdkError unless its exit code is one of `ok` (None: any)."""
        env = {
            **os.environ,
            **self.emulator.env(),
            "CDK_DISABLE_VERSION_CHECK": "1",
            "CI": "true",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20,22,24",
        }
        command = [str(CDK), *args]
        result = subprocess.run(
            command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=self.timeout_seconds, check=False
        )
        output = result.stdout + result.stderr
        self.log.append(f"$ cdk {' '.join(args)}\n{output}")
        if ok is not None and result.returncode not in ok:
            raise CdkError(f"cdk {' '.join(args)} failed (exit {result.returncode}):\n{output[-4000:]}")
        return result

    def context(self) -> list[str]:
        args = ["-c", f"branch={self.branch}"]
        return args + (["-c", f"config={self.config}"] if self.config else [])

    def bootstrap(self) -> None:
        # its own output folder: the CLI locks the one it reads, and tests run on parallel workers
        self.run(
            "bootstrap", f"aws://{self.emulator.account}/{self.emulator.region}", "--output", f"{self.outdir}-bootstrap"
        )

    def synth(self) -> Path:
        """Synthesise the workspace into `outdir` (deploy and destroy then use this cloud assembly)."""
        self.run("synth", "--quiet", "--output", str(self.outdir), *self.context())
        return self.outdir

    def seed_images(self) -> list[str]:
        """Put a placeholder manifest under each Docker image asset's tag in its ECR repository."""
        ecr: ECRClient = self.emulator.client("ecr")
        images = sorted(
            {
                (destination["repositoryName"], destination["imageTag"])
                for assets in self.outdir.glob("*.assets.json")
                for image in json.loads(assets.read_text(encoding="utf-8")).get("dockerImages", {}).values()
                for destination in image["destinations"].values()
            }
        )
        for repository, tag in images:
            with contextlib.suppress(ecr.exceptions.ImageAlreadyExistsException):  # seeded by an earlier deploy
                ecr.put_image(repositoryName=repository, imageManifest=PLACEHOLDER_MANIFEST, imageTag=tag)
        return [f"{repository}:{tag}" for repository, tag in images]

    def deploy(self) -> None:
        self.run("deploy", "--app", str(self.outdir), "--all", "--method=direct", "--require-approval", "never")

    def diff(self) -> tuple[bool, str]:
        """Diff a fresh synthesis of the code against what is deployed: (any difference?, output)."""
        result = self.run(
            "diff", "--method=template", "--fail", "--output", f"{self.outdir}-diff", *self.context(), ok=(0, 1)
        )
        return result.returncode == 1, result.stdout + result.stderr

    def destroy(self, ok: tuple[int, ...] | None = (0,)) -> subprocess.CompletedProcess[str]:
        return self.run("destroy", "--app", str(self.outdir), "--all", "--force", ok=ok)
