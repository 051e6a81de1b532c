"""The HTTP API. The model is loaded before the app is built: `/ready` never says ready without one.

(No `from __future__ import annotations` here: FastAPI reads the generated request type at runtime.)
"""


from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from model_service.model import LoadedModel
from model_service.schemas import ModelInfo, PredictResponse, record_model, request_model
from model_service.settings import Settings
from pipeline.contract import Contract


def describe_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """422 details that name the record and the field: 'records[3].bmi: Input should be <= 80'."""
    described = []
    for error in errors:
        loc = [str(p) for p in error["loc"] if p != "body"]
        where = loc[0] if loc else "body"
        for part in loc[1:]:
            where += f"[{part}]" if part.isdigit() else f".{part}"
        described.append({"field": where, "message": error["msg"], "input": error.get("input")})
    return described


def create_app(settings: Settings, model: LoadedModel, contract: Contract) -> FastAPI:
    record = record_model(contract)
    request_type = request_model(record)
    app = FastAPI(title="Diabetes progression model service", version="1.0.0",
                  description=f"Serves {model.name} (version {model.version}) on the features of contract "
                  f"{contract.name}.")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                            content={"detail": jsonable_encoder(describe_errors(list(exc.errors())))})

    @app.get("/health", summary="Liveness: the process answers")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness: the model is loaded")
    def ready() -> dict[str, str]:
        return {"status": "ready", "model_version": model.version}

    @app.get("/v1/model", response_model=ModelInfo, summary="The model being served")
    def model_info() -> ModelInfo:
        return ModelInfo(name=model.name, version=model.version, run_id=model.run_id, uri=model.uri,
                         signature=model.signature)

    @app.post("/v1/predict", response_model=PredictResponse, summary="Predict a batch of records",
              responses={413: {"description": f"more than {settings.max_batch_size} records"},
                         422: {"description": "a record breaks the contract: the field and record are named"}})
    def predict(body: request_type) -> PredictResponse:  # type: ignore[valid-type]
        records = body.records  # type: ignore[attr-defined]
        if len(records) > settings.max_batch_size:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                f"{len(records)} records: at most {settings.max_batch_size} per request")
        rows = [r.model_dump() for r in records]
        return PredictResponse(model_name=model.name, model_version=model.version,
                               predictions=model.predict(rows))

    app.state.model = model
    return app
