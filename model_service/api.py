"""The HTTP API. It answers from the first second: `/health` is liveness (the process is up), `/ready`
and `/v1/*` say 503 with the reason until a model is loaded, then serve whatever version the tracker
holds at the moment a request starts.

(No `from __future__ import annotations` here: FastAPI reads the generated request type at runtime.)
"""

import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from model_service.compiled import BLOCK_ROWS
from model_service.events import FEATURE_DRIFT_FIELD, PREDICTION_DRIFT, PREDICTION_DRIFT_FIELD, event_line
from model_service.limits import BodyLimit
from model_service.model import LoadedModel
from model_service.schemas import ModelInfo, NotReady, PredictResponse, record_model, request_model
from model_service.settings import Settings
from model_service.tracker import ModelTracker, Readiness
from pipeline.contract import Contract
from pipeline.drift import Drift, DriftWindow

logger = logging.getLogger("model_service")

MAX_REPORTED_ERRORS = 20
"""A 422 names at most this many problems (and says how many there were): 10,000 bad records once made a
3.5 MB reply."""
MAX_NAME_CHARACTERS = 64
IN_LOOP_RECORDS = BLOCK_ROWS
"""A batch up to one block of the compiled form is scored on the event loop (2 ms at most: a hop to a worker thread
cost 30 % of the throughput of batches of 100); a larger one in a worker thread, so that it does not hold up
/health and other requests."""


def _printable(part: Any) -> str:
    """A location part as text that encodes (a lone surrogate is escaped) and stays short (a field name is
    the client's: it may be a megabyte long)."""
    text = str(part).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MAX_NAME_CHARACTERS else text[:MAX_NAME_CHARACTERS] + "..."


def describe_errors(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """422 details that name the record and the field ('records[3].bmi: Input should be <= 80'), never the
    value sent (it may be patient data, or not encodable as JSON: NaN, a lone surrogate), at most
    MAX_REPORTED_ERRORS of them."""
    described = []
    for error in errors[:MAX_REPORTED_ERRORS]:
        loc = [_printable(p) for p in error["loc"] if p != "body"]
        where = loc[0] if loc else "body"
        for part in loc[1:]:
            where += f"[{part}]" if part.isdigit() else f".{part}"
        described.append({"field": where, "message": error["msg"]})
    return {"detail": described, "errors": len(errors), "reported": len(described)}


def too_many_records(errors: list[dict[str, Any]]) -> bool:
    return any(e["type"] == "too_long" and [p for p in e["loc"] if p != "body"] == ["records"] for e in errors)


def feature_matrix(records: Sequence[Any], columns: Sequence[str]) -> np.ndarray:
    """The validated records as the model's input: one float64 row each, in the model's column order, NaN for a
    null (the pipeline's curated table has them too: the model imputes them)."""
    return np.array([[getattr(record, column) for column in columns] for record in records], dtype=np.float64)


def prediction_body(model: LoadedModel, predictions: list[float]) -> bytes:
    """PredictResponse as JSON, written directly (the response model stays the documented schema): validating
    our own answer again cost more than predicting it."""
    body = {"model_name": model.name, "model_version": model.version, "predictions": predictions}
    return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()


NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": NotReady, "description": "no model is loaded yet: the reason says what is missing"}
}


Following = Literal["thread", "request"]
"""How the app follows the alias: a background thread (a server that keeps running: Fargate, `make serve`), or
a check on each request once the refresh interval has passed (Lambda, frozen between requests)."""


class DriftMonitor:
    """The served records' window for the version serving now (a new version starts a new one); a full window is
    logged as a PREDICTION_DRIFT line: its distances from the version's training profile, never a value."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.window: DriftWindow | None = None
        self.version: tuple[str, str] | None = None

    def observe(self, model: LoadedModel, matrix: np.ndarray, predictions: Sequence[float]) -> Drift | None:
        if model.profile is None:
            return None
        if self.version != (model.name, model.version) or self.window is None:
            self.version, self.window = (model.name, model.version), DriftWindow(model.feature_names, self.size)
        self.window.add(matrix, predictions)
        drift = self.window.report(model.profile)
        if drift is not None:
            logger.info(
                event_line(
                    PREDICTION_DRIFT,
                    model=model.name,
                    version=model.version,
                    records=drift.records,
                    feature=drift.feature,
                    **{FEATURE_DRIFT_FIELD: drift.feature_drift, PREDICTION_DRIFT_FIELD: drift.prediction_drift},
                )
            )
        return drift


def create_app(
    settings: Settings, tracker: ModelTracker, contract: Contract, following: Following = "thread"
) -> FastAPI:
    """The same API whichever way it runs (model_service/__main__.py, model_service/serverless.py)."""
    record = record_model(contract)
    request_type = request_model(record, settings.max_batch_size)
    drift = DriftMonitor(settings.drift_window)

    @asynccontextmanager
    async def follow_the_alias(_: FastAPI) -> AsyncIterator[None]:
        if following == "thread":
            tracker.start()
        yield
        tracker.stop()

    def current() -> Readiness:
        """What serves this request: on Lambda, after the check it may be due (the first request's loads)."""
        if following == "request":
            tracker.check_if_due()
        return tracker.readiness

    app = FastAPI(
        title="Diabetes progression model service",
        version="1.0.0",
        lifespan=follow_the_alias,
        description=f"Serves {settings.source} "
        + (
            "(a fixed model)"
            if settings.model_uri
            else f"(the version the alias points to, checked every {settings.refresh_seconds:g} s)"
        )
        + f" on the features of contract {contract.name}.",
    )

    def serving() -> LoadedModel:
        readiness = current()
        if readiness.model is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, readiness.reason)
        return readiness.model

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if too_many_records(errors):  # validation stops at the first record too many
            return JSONResponse(
                status_code=status.HTTP_413_CONTENT_TOO_LARGE,
                content={
                    "detail": f"more than {settings.max_batch_size} records: at most "
                    f"{settings.max_batch_size} per request (MODEL_SERVICE_MAX_BATCH_SIZE)"
                },
            )
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content=jsonable_encoder(describe_errors(errors))
        )

    @app.get("/health", summary="Liveness: the process answers (with or without a model)")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness: a model is loaded", responses=NOT_READY)
    def ready() -> Any:
        readiness = current()
        if readiness.model is None:
            return JSONResponse(
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                content=NotReady(
                    reason=readiness.reason or "", model=settings.source, tracking_uri=settings.tracking_uri
                ).model_dump(),
            )
        return {"status": "ready", "model_name": readiness.model.name, "model_version": readiness.model.version}

    @app.get("/v1/model", response_model=ModelInfo, summary="The model being served", responses=NOT_READY)
    def model_info() -> ModelInfo:
        model = serving()
        return ModelInfo(
            name=model.name,
            version=model.version,
            run_id=model.run_id,
            uri=model.uri,
            alias=None if settings.model_uri else settings.model_alias,
            signature=model.signature,
        )

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        summary="Predict a batch of records",
        responses={
            400: {"description": "the body is not JSON"},
            413: {
                "description": f"more than {settings.max_batch_size} records, or a body over "
                f"{settings.max_body_bytes} bytes"
            },
            422: {"description": "a record breaks the contract: the field and record are named"},
            **NOT_READY,
        },
    )
    async def predict(body: request_type) -> Response:  # type: ignore[valid-type]
        # async: no hop to a worker thread, the model answers in microseconds (on Lambda, the first request's
        # model load runs here, and an environment answers one request at a time anyway)
        model = serving()  # read once: the whole request is answered by this version
        matrix = feature_matrix(body.records, model.feature_names)  # type: ignore[attr-defined]
        if len(matrix) > IN_LOOP_RECORDS:  # a large batch in a worker thread: /health and small ones go on
            predictions = await run_in_threadpool(model.predict, matrix)
        else:
            predictions = model.predict(matrix)
        drift.observe(model, matrix, predictions)
        return Response(prediction_body(model, predictions), media_type="application/json")

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.state.tracker = tracker
    return app
