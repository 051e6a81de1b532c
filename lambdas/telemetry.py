"""What the handlers emit, named once: the handlers write these metrics and the infrastructure reads them
back (the dashboard, any alarm). A name or a dimension changed on one side only gives graphs with no data
and alarms that never fire, silently; tests/infra/test_observability.py runs the handlers and compares.

No Powertools import here: the infrastructure imports this module at synth.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum

DEFAULT_DIMENSIONS_ENV = "METRICS_DEFAULT_DIMENSIONS"
"""A JSON object of dimensions put on every metric a handler emits (the workspace). Powertools reads the
namespace (POWERTOOLS_METRICS_NAMESPACE) and the service (POWERTOOLS_SERVICE_NAME) from the environment
itself but has no variable for default dimensions; lambdas/observability.py applies this one."""

SERVICE_DIMENSION = "service"
"""Powertools adds this dimension to every metric, valued POWERTOOLS_SERVICE_NAME."""


class Metric(StrEnum):
    """The handlers' custom metrics (counts, Powertools EMF)."""

    FILES_INGESTED = "FilesIngested"  # ingest: landed files moved to raw
    FILES_QUARANTINED = "FilesQuarantined"  # ingest (unroutable landed files) and validate (unreadable raw files)
    FILES_VALID = "FilesValid"  # validate
    GATE_PASSED = "GatePassed"  # gate
    GATE_FAILED = "GateFailed"  # gate
    ROWS_IN = "RowsIn"  # gate, per table (TABLE_DIMENSION): rows of the judged run, as raw_to_staging counted
    ROWS_WRITTEN = "RowsWritten"  # ... staged
    ROWS_REJECTED = "RowsRejected"  # ... quarantined with their reasons
    BATCHES_FAILED = "BatchesFailed"  # gate, per table: 1 for a batch that failed its gate, 0 for one that passed
    EXECUTIONS_STARTED = "ExecutionsStarted"  # dispatch: pipeline executions started from the queue
    DUPLICATE_EVENTS = "DuplicateEvents"  # dispatch: events of an object whose execution exists
    FILE_WAIT_SECONDS = "FileWaitSeconds"  # dispatch: how long the oldest file of a batch waited in the queue
    PROMOTIONS_STARTED = "PromotionsStarted"  # promote: staging_to_curated runs started (one per table)
    BATCHES_WAITING = "BatchesWaiting"  # promote: passed batches no curated build took in yet
    PROMOTION_WAIT_SECONDS = "PromotionWaitSeconds"  # promote: how long the oldest of those has waited
    ROWS_EXTRACTED = "RowsExtracted"  # extract, per table: rows a run wrote to raw from its database
    EXTRACT_INCOMPLETE = "ExtractIncomplete"  # extract, per table: 1 for a run that stopped for want of time, else 0


TABLE_DIMENSION = "table"
"""The contract (`<dataset>/<table>`) of a per-table metric, beside the default dimensions."""
GATE_TABLE_METRICS = (Metric.ROWS_IN, Metric.ROWS_WRITTEN, Metric.ROWS_REJECTED, Metric.BATCHES_FAILED)
"""The gate's per-table metrics, in the order lambdas/gate/handler.py emits them."""
EXTRACT_TABLE_METRICS = (Metric.ROWS_EXTRACTED, Metric.EXTRACT_INCOMPLETE)
"""The extractor's per-table metrics, in the order lambdas/extract/handler.py emits them."""
TABLE_METRICS = GATE_TABLE_METRICS + EXTRACT_TABLE_METRICS
"""The metrics that carry TABLE_DIMENSION."""


def default_dimensions(environ: Mapping[str, str]) -> dict[str, str]:
    """The dimensions DEFAULT_DIMENSIONS_ENV names; none when it is unset (local scripts, some tests).
    A malformed value fails the import of the handler, so a bad deploy shows at its first invocation
    rather than as metrics without their workspace."""
    raw = environ.get(DEFAULT_DIMENSIONS_ENV, "")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"{DEFAULT_DIMENSIONS_ENV} must be a JSON object of strings, got {raw!r}")
    return value
