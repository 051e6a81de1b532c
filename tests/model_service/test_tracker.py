"""The tracker follows the alias: serve nothing with a reason, then the first version, then each new
one; a version that fails to load leaves the old one serving and logs the event the alarm counts."""

from __future__ import annotations

import json
import logging
import time

import pytest

from model_service.events import MODEL_LOAD_FAILED, MODEL_SERVED, MODEL_UNAVAILABLE
from model_service.model import LoadedModel, ModelLoadError, NoModelYet
from model_service.tracker import ModelTracker

URI = "models:/m@champion"


def model(version: str) -> LoadedModel:
    return LoadedModel(
        predictor=None,
        name="m",
        version=version,
        run_id=None,
        uri=f"models:/m/{version}",
        signature=None,
        feature_names=("x",),
    )


class Registry:
    """A registry whose alias and loadable versions the test sets."""

    def __init__(self) -> None:
        self.alias: str | Exception = NoModelYet("no version of 'm' has the alias 'champion' yet")
        self.broken: set[str] = set()
        self.loads: list[str] = []

    def resolve(self) -> str:
        if isinstance(self.alias, Exception):
            raise self.alias
        return self.alias

    def load(self, version: str) -> LoadedModel:
        self.loads.append(version)
        if version in self.broken:
            raise ModelLoadError(f"cannot load models:/m/{version}: skops refused an untrusted type")
        return model(version)


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def clock() -> dict[str, float]:
    return {"now": 1000.0}


@pytest.fixture
def tracker(registry, clock) -> ModelTracker:
    return ModelTracker(
        model_uri=URI, resolve=registry.resolve, load=registry.load, interval=60, clock=lambda: clock["now"]
    )


def events(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "model_service"]


def test_before_the_first_check_and_before_any_model_there_is_a_reason(tracker, registry) -> None:
    assert tracker.readiness.model is None and "first check of models:/m@champion" in tracker.readiness.reason
    tracker.check()
    assert tracker.readiness.model is None
    assert tracker.readiness.reason == "no version of 'm' has the alias 'champion' yet"
    assert registry.loads == []


def test_the_alias_appearing_then_moving_is_followed_and_an_unchanged_alias_loads_nothing(
    tracker, registry, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="model_service")
    registry.alias = "1"
    tracker.check()
    assert tracker.readiness.model.version == "1" and tracker.readiness.reason is None
    tracker.check()
    assert registry.loads == ["1"], "the same version is not loaded again"
    registry.alias = "3"
    tracker.check()
    assert tracker.readiness.model.version == "3" and registry.loads == ["1", "3"]
    assert [(e["event"], e["version"], e["previous"], e["form"]) for e in events(caplog)] == [
        (MODEL_SERVED, "1", None, "mlflow pyfunc"),  # the test's models have no compiled form
        (MODEL_SERVED, "3", "1", "mlflow pyfunc"),
    ]


def test_a_version_that_fails_to_load_leaves_the_old_one_serving_and_logs_the_alarm_event(
    tracker, registry, caplog, clock
) -> None:
    registry.alias = "1"
    tracker.check()
    registry.alias, registry.broken = "2", {"2"}
    caplog.set_level(logging.INFO, logger="model_service")
    tracker.check()
    assert tracker.readiness.model.version == "1" and tracker.readiness.reason is None
    (failure,) = events(caplog)
    assert failure == {
        "event": MODEL_LOAD_FAILED,
        "model": URI,
        "version": "2",
        "serving": "1",
        "reason": "cannot load models:/m/2: skops refused an untrusted type",
        "retry_in_seconds": 60,
    }
    assert caplog.records[0].levelno == logging.ERROR
    registry.broken = set()
    clock["now"] += 60
    tracker.check()
    assert tracker.readiness.model.version == "2", "the version is tried again once its back-off is over"


def test_a_broken_version_is_retried_with_a_doubling_back_off_not_at_every_check(tracker, registry, clock) -> None:
    registry.alias, registry.broken = "1", {"1"}
    tried_at = []
    for _ in range(30):  # 30 checks a minute apart
        before = len(registry.loads)
        tracker.check()
        if len(registry.loads) > before:
            tried_at.append(int(clock["now"] - 1000) // 60)
        clock["now"] += 60
    assert tried_at == [0, 1, 3, 7, 15], "after 1, 2, 4, 8 minutes, then 16"
    registry.alias = "2"
    tracker.check()
    assert registry.loads[-1] == "2", "an alias that moves is followed at once"


def test_a_first_version_that_fails_to_load_is_the_reason(tracker, registry) -> None:
    registry.alias, registry.broken = "1", {"1"}
    tracker.check()
    assert tracker.readiness.model is None
    assert tracker.readiness.reason.startswith("version 1 of models:/m@champion failed to load: cannot load")


def test_an_unexpected_error_while_loading_never_escapes(tracker, registry) -> None:
    registry.alias = "1"
    tracker._load = lambda version: 1 / 0
    tracker.check()
    assert tracker.readiness.model is None and "ZeroDivisionError" in tracker.readiness.reason


def test_an_unreachable_registry_keeps_the_model_being_served(tracker, registry, caplog) -> None:
    registry.alias = "1"
    tracker.check()
    registry.alias = ModelLoadError("cannot reach the tracking server arn:aws:sagemaker:...: ConnectionError")
    caplog.set_level(logging.INFO, logger="model_service")
    tracker.check()
    assert tracker.readiness.model.version == "1" and tracker.readiness.reason is None
    assert [e["event"] for e in events(caplog)] == [MODEL_UNAVAILABLE]


def test_the_thread_follows_the_alias_without_a_restart(registry) -> None:
    tracker = ModelTracker(model_uri=URI, resolve=registry.resolve, load=registry.load, interval=0.02)
    tracker.start()
    try:
        registry.alias = "1"
        wait_for(lambda: tracker.readiness.model is not None and tracker.readiness.model.version == "1")
        registry.alias = "2"
        wait_for(lambda: tracker.readiness.model.version == "2")
    finally:
        tracker.stop()
    assert tracker._thread is None
    stopped_at = len(registry.loads)
    registry.alias = "3"
    time.sleep(0.1)
    assert len(registry.loads) == stopped_at, "a stopped tracker checks nothing"


def wait_for(condition, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)
