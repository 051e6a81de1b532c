"""model_service/schemas.py on its own: the request models the contract generates, validated directly with
pydantic (no app, no model), so that each rule a JSON value meets has a fast test of its own (the API tests
check the same rules through HTTP)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from model_service.schemas import json_value_rule, record_model, request_model
from pipeline.contract import Column, load_contracts

CONTRACT = load_contracts()["diabetes/patients"]
VALID = {"age": 50, "sex": 1, "bmi": 25.5, "bp": 90.0, "s1": 180.0, "s2": 100.0, "s3": 50.0, "s4": 4.0, "s5": 4.5}
VALID |= {"s6": 90.0}


@pytest.fixture
def record() -> type[BaseModel]:
    """Made for each test (a few milliseconds), so that each test that validates runs the rules' code."""
    return record_model(CONTRACT)


def refusal(model: type[BaseModel], body: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    """The one error `body` gets: where, and the message."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    (error,) = caught.value.errors()
    return error["loc"], error["msg"]


def test_a_valid_record_is_typed_as_the_contract_types_it(record) -> None:
    parsed = record.model_validate(VALID | {"age": 40.0, "bp": 90})
    assert parsed.model_dump() == VALID | {"age": 40, "bp": 90.0}
    assert type(parsed.age) is int and type(parsed.bp) is float and type(parsed.sex) is int
    assert list(record.model_fields) == list(CONTRACT.features), "the features, in the contract's order"


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        ({"bmi": 80.5}, ("bmi",), "Input should be less than or equal to 80"),
        ({"bmi": 9.99}, ("bmi",), "Input should be greater than or equal to 10"),
        ({"age": 121}, ("age",), "Input should be less than or equal to 120"),
        ({"age": -1}, ("age",), "Input should be greater than or equal to 0"),
        ({"s4": 15.5}, ("s4",), "Input should be less than or equal to 15"),
        ({"sex": 3}, ("sex",), "Input should be 1 or 2"),
        ({"age": 40.5}, ("age",), "a valid integer: a finite whole number under 2**63 in size"),
        ({"age": 2**63}, ("age",), "a valid integer: a finite whole number under 2**63 in size"),
        ({"age": "40"}, ("age",), "a valid integer: a JSON number, not str"),
        ({"bmi": True}, ("bmi",), "a valid number: a JSON number, not bool"),
        ({"bmi": "25.5"}, ("bmi",), "a valid number: a JSON number, not str"),
        ({"bmi": math.inf}, ("bmi",), "a valid number: a finite number"),
        ({"bmi": math.nan}, ("bmi",), "a valid number: a finite number"),
        ({"bmi": 10**400}, ("bmi",), "a valid number: a finite number"),
        ({"cholesterol": 1}, ("cholesterol",), "Extra inputs are not permitted"),
    ],
)
def test_a_value_the_pipeline_would_refuse_is_refused_with_the_rule(record, change, where, message) -> None:
    found, text = refusal(record, VALID | change)
    assert found == where and message in text, text


def test_the_bounds_themselves_are_allowed(record) -> None:
    low = VALID | {"age": 0, "bmi": 10, "bp": 40, "s4": 1, "sex": 2}
    high = VALID | {"age": 120, "bmi": 80, "bp": 200, "s4": 15}
    assert record.model_validate(low).bmi == 10.0 and record.model_validate(high).age == 120


def test_a_nullable_value_may_be_missing_or_null_and_a_required_one_may_not(record) -> None:
    without = {name: value for name, value in VALID.items() if name != "s1"}
    assert record.model_validate(without).s1 is None
    assert record.model_validate(VALID | {"s1": None}).s1 is None
    required = {name: value for name, value in VALID.items() if name != "bmi"}
    assert refusal(record, required) == (("bmi",), "Field required")
    assert refusal(record, VALID | {"bmi": None})[0] == ("bmi",)


def test_a_column_with_choices_and_a_range_takes_a_choice_inside_the_range_as_the_pipeline_does() -> None:
    sex = Column("sex", "integer", nullable=False, max=3, allowed=(1, 5))
    contract = dataclasses.replace(CONTRACT, columns=[sex if c.name == "sex" else c for c in CONTRACT.columns])
    record = record_model(contract)
    assert record.model_validate(VALID).sex == 1
    assert contract.column("sex").check("5") == (None, "sex: above the maximum 3"), "the pipeline refuses it"
    assert refusal(record, VALID | {"sex": 5}) == (("sex",), "Input should be less than or equal to 3")
    assert refusal(record, VALID | {"sex": 2})[1] == "Input should be 1 or 5"


def test_a_string_column_takes_a_json_string_only() -> None:
    rule = json_value_rule(Column("code", "string"))
    assert rule("A1") == "A1" and rule(None) is None
    with pytest.raises(ValueError, match=r"^Input should be a valid string: a JSON string$"):
        rule(1)


def test_the_rules_turn_a_json_number_into_the_columns_type() -> None:
    integer, double = json_value_rule(Column("n", "integer")), json_value_rule(Column("x", "double"))
    assert integer(40.0) == 40 and type(integer(40.0)) is int and integer(None) is None
    assert integer(2**63 - 1) == 2**63 - 1, "a whole 64-bit integer is exact"
    assert double(1) == 1.0 and type(double(1)) is float and double(None) is None


def test_the_openapi_schema_carries_the_bounds_the_choices_and_the_descriptions(record) -> None:
    schema = record.model_json_schema()
    bmi, s4, sex = (schema["properties"][name] for name in ("bmi", "s4", "sex"))
    assert (bmi["minimum"], bmi["maximum"], bmi["type"]) == (10, 80, "number")
    assert {"minimum": 1, "maximum": 15, "type": "number"} in s4["anyOf"], "nullable, and still bounded"
    assert sex["enum"] == [1, 2] and "minimum" not in sex
    assert bmi["description"] == CONTRACT.column("bmi").description
    assert set(schema["required"]) == {c for c in CONTRACT.features if not CONTRACT.column(c).nullable}
    assert schema["additionalProperties"] is False
    assert schema["title"] == "PatientFeatures", "the name the OpenAPI components give it"


def test_a_request_holds_one_to_the_limit_records_and_nothing_else(record) -> None:
    request = request_model(record, max_records=2)
    assert len(request.model_validate({"records": [VALID, VALID]}).records) == 2
    assert refusal(request, {"records": []})[0] == ("records",)
    assert refusal(request, {"records": [VALID] * 3})[0] == ("records",)
    assert refusal(request, {"records": [VALID], "extra": 1})[0] == ("extra",)
    assert refusal(request, {"records": [VALID, VALID | {"bmi": 500}]})[0] == ("records", 1, "bmi")
    schema = request.model_json_schema()
    limits = schema["properties"]["records"]
    assert (limits["minItems"], limits["maxItems"]) == (1, 2)
    assert (schema["title"], limits["description"]) == ("PredictRequest", "records to score")
