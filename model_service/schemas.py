"""Request and response models generated from the data contract: the same names, types and ranges
that the pipeline enforces, so a record the service accepts is one the pipeline would have accepted."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from pipeline.contract import Column, Contract, is_integer_value

_TYPES: dict[str, type] = {"integer": int, "double": float, "string": str}
_NAMES = {"integer": "a valid integer", "double": "a valid number", "string": "a valid string"}


def json_value_rule(column: Column) -> Callable[[Any], Any]:
    """What a JSON value must be for `column`, as the pipeline's contract has it: a number field takes a
    JSON number only (not `true`, not the string "25.0"), finite (not NaN, Infinity or 1e400, which
    Python's JSON parser reads as infinity), and an integer field an integral number under 2**63 (40.0 is
    40, as the pipeline reads the text 40.0). A string field takes a string only."""
    expected = _NAMES[column.type]

    def check(value: Any) -> Any:
        if value is None:
            return None
        if column.type == "string":
            if not isinstance(value, str):
                raise ValueError(f"Input should be {expected}: a JSON string")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"Input should be {expected}: a JSON number, not {type(value).__name__}")
        if column.type == "integer":
            if not is_integer_value(value):
                raise ValueError(f"Input should be {expected}: a finite whole number under 2**63 in size")
            return int(value)
        try:  # a JSON integer of 400 digits is a Python int no float holds: infinite, as the pipeline reads it
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ValueError(f"Input should be {expected}: a finite number")
        return number

    return check


def _field(column: Column) -> tuple[Any, Any]:
    python_type: Any = _TYPES[column.type]
    if column.allowed is not None:
        python_type = Literal[tuple(column.allowed)]
    if (column.min, column.max) != (None, None):
        # on the type itself, so that the OpenAPI has minimum and maximum (also where the field is nullable);
        # with the choices too, as the pipeline checks both (an allowed value outside the range is refused)
        python_type = Annotated[python_type, Field(ge=column.min, le=column.max)]
    python_type = Annotated[python_type, BeforeValidator(json_value_rule(column))]
    if column.nullable:
        python_type = python_type | None
    default: Any = None if column.nullable else ...
    return python_type, Field(default, description=column.description)


def record_model(contract: Contract) -> type[BaseModel]:
    """One patient's features, as the contract defines them; unknown fields are refused."""
    fields: dict[str, Any] = {name: _field(contract.column(name)) for name in contract.features}
    model: type[BaseModel] = create_model("PatientFeatures", __config__=ConfigDict(extra="forbid"), **fields)
    return model


def request_model(record: type[BaseModel], max_records: int) -> type[BaseModel]:
    """The request body: 1 to `max_records` records (more stops validation at the first record too many)."""
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        records=(
            list[record],  # type: ignore[valid-type]
            Field(
                min_length=1,
                max_length=max_records,
                description="records to score",
            ),
        ),
    )


class Prediction(BaseModel):
    prediction: float = Field(description="predicted disease progression one year later")


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    predictions: list[float]


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str | None = Field(
        description="the registry alias the service follows; null for a fixed model (MODEL_SERVICE_MODEL_URI)"
    )
    run_id: str | None
    uri: str = Field(description="what was loaded: models:/<name>/<version>")
    signature: dict[str, Any] | None


class NotReady(BaseModel):
    status: str = "not ready"
    reason: str = Field(
        description="what is missing, e.g. no version has the alias yet, or the registry is unreachable and why"
    )
    model: str = Field(
        description="the model URI the service follows (models:/<name>@<alias>), or its fixed model's URI"
    )
    tracking_uri: str | None
