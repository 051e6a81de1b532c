"""Shared fixtures. The jsii banner about Node's end of life would clutter every run."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20,22,24")

import pytest

from infra.config import ProjectConfig, load_config


@pytest.fixture(scope="session")
def config() -> ProjectConfig:
    return load_config()


SLOWEST_FIRST = (  # seconds per file, `pytest --durations` on the 2-core machine (2026-12)
    "tests/emulator/test_feature_lifecycle.py",  # ~160: a workspace deployed, diffed, updated, destroyed
    "tests/emulator/test_iam_enforced.py",  # ~135
    "tests/quality/test_types.py",  # ~270 on a fresh clone (mypy reads aws_cdk's stubs), ~2 with its cache
    "tests/model_service/test_image.py",  # ~125: the image's environment, two models served
    "tests/training/test_train.py",  # ~110
    "tests/emulator/test_local_commands.py",  # ~90
    "tests/glue/test_landing_corpus.py",  # ~80
    "tests/quality/test_add_a_dataset.py",  # ~75: a synth and `make pipeline` on a copy of the repository
    "tests/emulator/test_prd_retention.py",  # ~70
    "tests/infra/test_app_entry.py",  # ~50
    "tests/model_service/test_bounded_requests.py",  # ~30
    "tests/infra/test_cfn_lint.py",  # ~30
    "tests/infra/test_naming_limits.py",  # ~30
    "tests/emulator/test_moto_gaps.py",  # ~25
)
"""Started first, longest first: pytest-xdist hands files to whichever worker is free, in collection order
(`make test` passes --no-loadscope-reorder), so the two workers finish together instead of one waiting on
the other's last emulator test. The other files keep their order; a file's tests stay together."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: index for index, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """One local PostgreSQL server for the session (scripts/local_postgres.py): on 127.0.0.1, stopped after."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from local_postgres import local_postgres

    with local_postgres() as server:
        yield server
