"""Following the registry's alias: the service serves before any model exists and swaps in the new
version when the alias moves, without a restart.

A background thread checks the alias every `interval` seconds; where nothing may run between requests (on
Lambda, whose environment is frozen between them: model_service/serverless.py), a request checks it instead,
once `interval` has passed since the last check (`check_if_due`). A new version is loaded beside the old
one and swapped in by one reference assignment: a request reads the model once and finishes on it, so
requests in flight keep the old model. A version that fails to load leaves the old one serving and
logs `model_load_failed` (the workspace alarm counts those lines); it is tried again after a back-off that
doubles with each failure (up to an hour), not downloaded again at every check, and at once if the alias
moves to another version.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from model_service.events import MODEL_LOAD_FAILED, MODEL_SERVED, MODEL_UNAVAILABLE, event_line
from model_service.model import LoadedModel, ModelLoadError

logger = logging.getLogger("model_service")
MAX_BACKOFF_SECONDS = 3600.0


@dataclass(frozen=True)
class Failure:
    version: str
    count: int
    retry_at: float  # monotonic seconds


def next_failure(previous: Failure | None, version: str, now: float, interval: float) -> Failure:
    """The back-off after `version` failed to load (again): interval, 2x, 4x, ... at most an hour."""
    count = previous.count + 1 if previous is not None and previous.version == version else 1
    return Failure(version, count, now + min(interval * 2 ** (count - 1), MAX_BACKOFF_SECONDS))


@dataclass(frozen=True)
class Readiness:
    model: LoadedModel | None
    reason: str | None  # why there is no model; None once one is served


class ModelTracker:
    """Which model answers requests now, and why none does yet."""

    def __init__(
        self,
        *,
        model_uri: str,
        resolve: Callable[[], str],
        load: Callable[[str], LoadedModel],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model_uri = model_uri
        self.interval = interval
        self._resolve = resolve
        self._load = load
        self._clock = clock
        self._failure: Failure | None = None
        self._state = Readiness(None, f"the first check of {model_uri} has not finished yet")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._checked_at: float | None = None
        self._checking = threading.Lock()

    @property
    def readiness(self) -> Readiness:
        return self._state  # one read of one reference: a consistent model and reason

    def check(self) -> None:
        """Resolve the alias once; load and swap in the version if it is new. Never raises."""
        current = self._state.model
        try:
            version = self._resolve()
        except ModelLoadError as exc:
            if current is None:
                self._state = Readiness(None, str(exc))
            logger.warning(
                event_line(MODEL_UNAVAILABLE, model=self.model_uri, serving=_version(current), reason=str(exc))
            )
            return
        if current is not None and current.version == version:
            return
        failure = self._failure
        if failure is not None and failure.version == version and self._clock() < failure.retry_at:
            return  # the same broken version: wait for its back-off (or for the alias to move)
        try:
            loaded = self._load(version)
        except Exception as exc:  # a bad version must not stop the thread or the old model
            reason = str(exc) if isinstance(exc, ModelLoadError) else f"{type(exc).__name__}: {exc}"
            if current is None:
                self._state = Readiness(None, f"version {version} of {self.model_uri} failed to load: {reason}")
            self._failure = next_failure(failure, version, self._clock(), self.interval)
            logger.error(
                event_line(
                    MODEL_LOAD_FAILED,
                    model=self.model_uri,
                    version=version,
                    serving=_version(current),
                    reason=reason,
                    retry_in_seconds=round(self._failure.retry_at - self._clock()),
                )
            )
            return
        self._failure = None
        self._state = Readiness(loaded, None)
        logger.info(
            event_line(
                MODEL_SERVED, model=self.model_uri, version=version, previous=_version(current), form=loaded.form
            )
        )

    def check_if_due(self) -> None:
        """Check now if none has run yet, or `interval` seconds have passed since the last one began; else do
        nothing. For a request to call, where no thread may follow the alias: the first request of a new
        environment loads the model, and later ones see an alias move within `interval`. A request arriving
        while another checks does not wait for it: it is answered by what is served meanwhile."""
        now = self._clock()
        if self._checked_at is not None and now - self._checked_at < self.interval:
            return
        if not self._checking.acquire(blocking=self._checked_at is None):
            return
        try:
            if self._checked_at is None or self._clock() - self._checked_at >= self.interval:
                self._checked_at = self._clock()
                self.check()
        finally:
            self._checking.release()

    def start(self) -> None:
        """Check now and then every `interval` seconds, in a daemon thread (the server listens meanwhile)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="model-tracker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check()
            self._stop.wait(self.interval)


def _version(model: LoadedModel | None) -> str | None:
    return None if model is None else model.version
