"""One local SparkSession for the session (it takes seconds to start)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark():
    from etl_spark.local import local_spark

    session = local_spark("tests", **{"spark.default.parallelism": "2"})
    yield session
    session.stop()
