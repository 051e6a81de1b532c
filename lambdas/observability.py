"""Logger, Tracer and Metrics of every handler, configured by the function's environment alone.

The infrastructure decides the service name, the metrics namespace and the default dimensions (the
workspace) and sets them as environment variables (infra/constructs/pipeline_function.py), where it also
builds the metrics it reads back (dashboard, alarms) from the same values; the code holds none of them.
Powertools reads the first two itself; the default dimensions are applied here, once per container, so
that no metric of any handler goes out without its workspace.

Outside Lambda (tests, scripts/run_pipeline_local.py) Tracer disables itself: Powertools traces only when
LAMBDA_TASK_ROOT is set, so no X-Ray daemon is needed and nothing is patched.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.telemetry import SERVICE_DIMENSION, TABLE_DIMENSION, Metric, default_dimensions

Handler = TypeVar("Handler", bound=Callable[[Any, LambdaContext], Any])
"""Any handler, its typed event and result kept (lambdas/payloads.py)."""

logger = Logger()
tracer = Tracer()
metrics = Metrics()
metrics.set_default_dimensions(**default_dimensions(os.environ))


def instrumented(handler: Handler) -> Handler:
    """`handler` with its log context, its X-Ray segment and its metrics flushed when it returns or
    raises: one decorator, so that no handler forgets one of the three or stacks them in another order."""
    wrapped = logger.inject_lambda_context(tracer.capture_lambda_handler(metrics.log_metrics(handler)))
    return cast("Handler", wrapped)  # the decorators keep the signature; their stubs say Callable[..., Any]


def emit_per_table(table: str, values: Mapping[Metric, float]) -> None:
    """Each metric of `values` as a metric of its own with the table's dimension beside the function's (a
    per-table metric: lambdas/telemetry.py, TABLE_METRICS), in the function's namespace."""
    for metric, value in values.items():
        with single_metric(
            name=metric,
            unit=MetricUnit.Count,
            value=value,
            namespace=metrics.namespace,
            default_dimensions={**metrics.default_dimensions, SERVICE_DIMENSION: metrics.service},
        ) as per_table:
            per_table.add_dimension(TABLE_DIMENSION, table)
