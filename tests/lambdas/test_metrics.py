"""Every metric the handlers emit carries the dimensions their environment names: the workspace (default
dimensions) and the service, in the environment's namespace; and tracing stays off outside Lambda."""

from __future__ import annotations

import pytest

from lambdas import observability
from lambdas.telemetry import (
    DEFAULT_DIMENSIONS_ENV,
    EXTRACT_TABLE_METRICS,
    GATE_TABLE_METRICS,
    TABLE_DIMENSION,
    Metric,
    default_dimensions,
)
from tests.lambdas.conftest import POWERTOOLS_ENVIRONMENT
from tests.lambdas.harness import FUNCTIONS, SOURCE_TABLE, exercise, parse_emf


def test_every_emitted_metric_carries_the_workspace_and_the_service(s3, capsys) -> None:
    for function in FUNCTIONS:
        exercise(function, s3)
    emitted = parse_emf(capsys.readouterr().out)
    assert {m.name for m in emitted} == set(Metric), "every path of every handler ran"
    for metric in emitted:
        assert metric.namespace == POWERTOOLS_ENVIRONMENT["POWERTOOLS_METRICS_NAMESPACE"], metric
        table = {TABLE_DIMENSION: "diabetes/patients"} if metric.name in GATE_TABLE_METRICS else {}
        if metric.name in EXTRACT_TABLE_METRICS:  # the extractor's metrics name its source's table
            table = {TABLE_DIMENSION: SOURCE_TABLE}
        assert dict(metric.dimensions) == {
            "workspace": "test-workspace",
            "service": POWERTOOLS_ENVIRONMENT["POWERTOOLS_SERVICE_NAME"],
            **table,
        }, metric


def test_the_tracer_is_off_outside_lambda() -> None:
    """Powertools traces only where LAMBDA_TASK_ROOT is set: the tests need no X-Ray daemon."""
    assert observability.tracer.disabled


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {}),
        ("", {}),
        ('{"workspace": "we-1"}', {"workspace": "we-1"}),
        ('{"workspace": "we-1", "team": "data"}', {"workspace": "we-1", "team": "data"}),
    ],
)
def test_default_dimensions_come_from_the_environment(value, expected) -> None:
    assert default_dimensions({} if value is None else {DEFAULT_DIMENSIONS_ENV: value}) == expected


@pytest.mark.parametrize("value", ['["workspace"]', '{"workspace": 1}', "workspace=we-1"])
def test_malformed_default_dimensions_fail_loudly(value) -> None:
    with pytest.raises(ValueError, match=DEFAULT_DIMENSIONS_ENV):
        default_dimensions({DEFAULT_DIMENSIONS_ENV: value})
