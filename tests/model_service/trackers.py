"""Trackers in a known state, for tests of the API without a registry."""

from __future__ import annotations

from model_service.model import LoadedModel, NoModelYet
from model_service.settings import Settings
from model_service.tracker import ModelTracker


def tracker_serving(model: LoadedModel | None, reason: str = "no version has the alias yet") -> ModelTracker:
    """A tracker that already holds `model` (or, with None, none, for `reason`), as after its first check."""

    def resolve() -> str:
        if model is None:
            raise NoModelYet(reason)
        return model.version

    tracker = ModelTracker(model_uri=Settings().source, resolve=resolve, load=lambda version: model, interval=3600)
    tracker.check()
    return tracker
