"""A local SparkSession and curated store for the tests, the local pipeline run and the benchmark (Glue makes
its own)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from pyspark.sql import SparkSession

from etl_spark.jobs import CuratedStore
from pipeline.builds import BuildConflict

GLUE_DEFAULTS = {"spark.sql.ansi.enabled": "false"}
"""Glue 5.1's Spark (3.5.6) settings, stated rather than inherited: Spark 4 changed these defaults, and the
local pyspark must behave as Glue's (infra/runtimes.py pins both; a test holds them together)."""


def local_spark(app_name: str, **config: str) -> SparkSession:
    """local[2] (this machine's cores), no UI or progress bars, UTC, few shuffle partitions, Glue's defaults."""
    builder = (
        SparkSession.builder.master("local[2]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
    )
    for key, value in GLUE_DEFAULTS.items():
        builder = builder.config(key, value)
    for key, value in config.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def local_curated(root: Path) -> CuratedStore:
    """A local folder as the curated bucket: its pointers read by key (None where absent) and swapped only if
    they still hold what was read (as S3's conditional PUT), written whole, then renamed into place."""

    def read(key: str) -> str | None:
        path = root / key
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def swap(key: str, text: str, expected: str | None) -> None:
        if read(key) != expected:
            raise BuildConflict(f"{key} changed since it was read: another promotion made its build current")
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)

    return CuratedStore(str(root), read, swap)
