"""A local SparkSession for the tests, the local pipeline run and the benchmark (Glue makes its own)."""

from __future__ import annotations

from pyspark.sql import SparkSession


def local_spark(app_name: str, **config: str) -> SparkSession:
    """local[2] (this machine's cores), no UI or progress bars, UTC, and few shuffle partitions."""
    builder = (SparkSession.builder.master("local[2]").appName(app_name)
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.session.timeZone", "UTC").config("spark.sql.shuffle.partitions", "2"))
    for key, value in config.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
