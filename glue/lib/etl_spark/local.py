"""A local SparkSession for the tests, the local pipeline run and the benchmark (Glue makes its own)."""

from __future__ import annotations

from pyspark.sql import SparkSession

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
