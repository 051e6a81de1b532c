"""Shared fixtures. The jsii banner about Node's end of life would clutter every run."""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20,22,24")

import pytest

from infra.config import ProjectConfig, load_config


@pytest.fixture(scope="session")
def config() -> ProjectConfig:
    return load_config()
