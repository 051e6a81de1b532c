"""Code assets assembled on this machine (no Docker): the repository's runtime folders, copied with
their layout, and the data contracts converted from YAML to JSON (the Lambda runtime has no YAML)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling

from pipeline.contract import CONTRACTS_DIR, load_contracts

REPO_ROOT = Path(__file__).resolve().parents[2]
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "tests")


@jsii.implements(ILocalBundling)
class _CopyTrees:
    def __init__(self, trees: Sequence[tuple[str, str]], modules: Sequence[str]) -> None:
        self.trees = trees
        self.modules = modules

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        out = Path(output_dir)
        for source, target in self.trees:
            shutil.copytree(REPO_ROOT / source, out / target, ignore=_IGNORE, dirs_exist_ok=True)
        for module in self.modules:  # installed packages, the versions the tests ran with
            spec = importlib.util.find_spec(module)
            if spec is None or spec.origin is None:
                raise RuntimeError(f"{module} is not installed: run `make install`")
            origin = Path(spec.origin)
            if origin.name == "__init__.py":
                shutil.copytree(origin.parent, out / module, ignore=_IGNORE, dirs_exist_ok=True)
            else:
                shutil.copy2(origin, out / origin.name)
            for metadata in _metadata_folders(module):  # a package that reads its own version (scramp, pg8000)
                shutil.copytree(metadata, out / metadata.name, dirs_exist_ok=True)
        for name, contract in load_contracts(CONTRACTS_DIR).items():
            path = out / "contracts" / f"{name}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(contract.to_json())
        return True


def _metadata_folders(module: str) -> list[Path]:
    """The installed `*.dist-info` folders of the distributions that provide `module`."""
    folders = []
    for name in importlib.metadata.packages_distributions().get(module, []):
        path = getattr(importlib.metadata.distribution(name), "_path", None)  # a PathDistribution's folder
        if isinstance(path, Path) and path.is_dir():
            folders.append(path)
    return folders


class LocalBundle(TypedDict):
    """The keyword arguments `local_bundle` gives `Code.from_asset` and `Asset`."""

    asset_hash_type: AssetHashType
    bundling: BundlingOptions


def local_bundle(trees: Sequence[tuple[str, str]], modules: Sequence[str] = ()) -> LocalBundle:
    """Keyword arguments for `Code.from_asset` / `Asset`: `trees` are (repo folder, folder in the asset),
    `modules` installed packages to include. The asset hash is taken from the output, so a code edit
    changes it and nothing else does."""
    return {
        "asset_hash_type": AssetHashType.OUTPUT,
        "bundling": BundlingOptions(
            image=DockerImage.from_registry("local-bundling-only"),
            local=_CopyTrees(trees, modules),
            # CDK caches a bundle by its source folder and these options, not by what `local` copies: two assets of
            # one folder with other trees or modules (the extractor's driver) must differ here, or share a bundle
            environment={"CONTENTS": json.dumps([list(trees), list(modules)])},
        ),
    }
