"""The service's log events: one JSON object per line, so that CloudWatch metric filters can match a
field exactly. The stack's alarm on failed model loads imports the event name from here."""

from __future__ import annotations

import json
from typing import Any

MODEL_SERVED = "model_served"
"""A registry version was loaded and is now answering requests."""
MODEL_UNAVAILABLE = "model_unavailable"
"""The alias could not be resolved (no champion yet, or the registry unreachable): nothing new to load."""
MODEL_NOT_COMPILED = "model_not_compiled"
"""A loaded version has no faster form (or its form answered differently): it serves through MLflow's wrapper,
with the same predictions, slower (model_service/compiled.py)."""
MODEL_LOAD_FAILED = "model_load_failed"
"""A version the alias points to could not be loaded; the workspace alarm counts these."""
PREDICTION_DRIFT = "prediction_drift"
"""A window of served records, its distances from the model's training profile (pipeline/drift.py): the metric
filters of the drift alarm read `feature_drift` and `prediction_drift` from it. Aggregates only, no value."""
DRIFT_NOT_MEASURED = "drift_not_measured"
"""A loaded version has no readable training profile: it serves, and no drift is reported for it."""
FEATURE_DRIFT_FIELD = "feature_drift"
PREDICTION_DRIFT_FIELD = "prediction_drift"


def event_line(event: str, **fields: Any) -> str:
    return json.dumps({"event": event, **fields}, default=str, sort_keys=True)


def metric_filter_pattern(event: str) -> str:
    """CloudWatch Logs JSON filter pattern that matches exactly the lines of `event`."""
    return f'{{ $.event = "{event}" }}'
