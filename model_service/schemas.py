"""Request and response models generated from the data contract: the same names, types and ranges
that the pipeline enforces, so a record the service accepts is one the pipeline would have accepted."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from pipeline.contract import Column, Contract

_TYPES: dict[str, type] = {"integer": int, "double": float, "string": str}


def _field(column: Column) -> tuple[Any, Any]:
    python_type: Any = _TYPES[column.type]
    if column.allowed is not None:
        from typing import Literal

        python_type = Literal[tuple(column.allowed)]
    if column.nullable:
        python_type = python_type | None
    bounds: dict[str, Any] = {"ge": column.min, "le": column.max} if column.allowed is None else {}
    default: Any = None if column.nullable else ...
    return python_type, Field(default, description=column.description,
                              **{k: v for k, v in bounds.items() if v is not None})


def record_model(contract: Contract) -> type[BaseModel]:
    """One patient's features, as the contract defines them; unknown fields are refused."""
    fields: dict[str, Any] = {name: _field(contract.column(name)) for name in contract.features}
    model: type[BaseModel] = create_model("PatientFeatures", __config__=ConfigDict(extra="forbid", strict=False),
                                           **fields)
    return model


def request_model(record: type[BaseModel]) -> type[BaseModel]:
    return create_model("PredictRequest", __config__=ConfigDict(extra="forbid"),
                        records=(list[record], Field(min_length=1, description="records to score")))  # type: ignore[valid-type]


class Prediction(BaseModel):
    prediction: float = Field(description="predicted disease progression one year later")


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    predictions: list[float]


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str = Field(description="the registry alias the service follows")
    run_id: str | None
    uri: str = Field(description="what was loaded: models:/<name>/<version>")
    signature: dict[str, Any] | None


class NotReady(BaseModel):
    status: str = "not ready"
    reason: str = Field(description="what is missing, e.g. no version has the alias yet, or the registry is "
                        "unreachable and why")
    model: str = Field(description="the model URI the service follows (models:/<name>@<alias>)")
    tracking_uri: str | None
