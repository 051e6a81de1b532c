"""The model the platform trains and serves is named by its table's contract (pipeline/registry.py): exactly one
contract names it, its features and label are numbers, and training, the service's settings and the stack
take it from there."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from pipeline.contract import ContractError, load_contracts, parse_contract
from pipeline.registry import ModelError, trained_model

CONTRACTS = load_contracts()


def test_the_shipped_model_is_the_diabetes_tables() -> None:
    model = trained_model()
    assert (model.name, model.model) == ("diabetes/patients", "diabetes-progression")


def test_exactly_one_contract_names_the_model() -> None:
    unnamed = {name: replace(c, model=None) for name, c in CONTRACTS.items()}
    with pytest.raises(ModelError, match=r"exactly one contract names the model .* not none: add `model: "):
        trained_model(unnamed)
    two = CONTRACTS | {"clinic/appointments": replace(CONTRACTS["clinic/appointments"], model="no-shows")}
    with pytest.raises(ModelError, match=r"not clinic/appointments \(no-shows\), diabetes/patients \(diabetes-prog"):
        trained_model(two)


def test_a_model_trains_on_numbers_only() -> None:
    appointments = replace(CONTRACTS["clinic/appointments"], model="no-shows")
    with pytest.raises(ModelError, match=r"clinic/appointments: model no-shows .* \['department'\] are strings"):
        trained_model({"clinic/appointments": appointments})


@pytest.mark.parametrize(("model", "problem"), [("", "model must be"), ("a b", "model must be"), (3, "model must be")])
def test_a_model_name_is_one_the_registry_takes(model, problem: str) -> None:
    data = json.loads(CONTRACTS["diabetes/patients"].to_json()) | {"model": model}
    with pytest.raises(ContractError, match=problem):
        parse_contract(data)


def test_a_check_only_table_names_no_model() -> None:
    data = json.loads(CONTRACTS["platform_check/smoke"].to_json()) | {"model": "smoke-model"}
    with pytest.raises(ContractError, match="model: a check-only table never reaches curated"):
        parse_contract(data)


def test_the_service_and_training_take_the_model_from_the_contract(monkeypatch) -> None:
    from model_service.settings import settings_from_env
    from training import train

    settings = settings_from_env({})
    assert (settings.model_name, settings.contract) == ("diabetes-progression", "diabetes/patients")
    assert (train.MODEL_NAME, train.contract().name) == ("diabetes-progression", "diabetes/patients")


def test_training_defaults_to_the_tables_local_curated_build(tmp_path) -> None:
    from training.train import default_data

    spec = trained_model()
    assert default_data(spec, tmp_path) is None, "no build: the bundled sample"
    folder = tmp_path / "diabetes" / "patients"
    folder.mkdir(parents=True)
    assert default_data(spec, tmp_path) is None, "a folder without a pointer is no build"
    (folder / "_CURRENT.json").write_text("{}")
    assert default_data(spec, tmp_path) == folder


def test_the_service_says_which_setting_when_no_contract_names_the_model(monkeypatch) -> None:
    """A settings error (the service's exit 3 with the reason), not a traceback."""
    from model_service import settings as service_settings
    from pipeline.registry import ModelError

    def nothing_named() -> None:
        raise ModelError("exactly one contract names the model the platform trains and serves, not none")

    monkeypatch.setattr(service_settings, "trained_model", nothing_named)
    with pytest.raises(service_settings.SettingsError, match=r"not none .*MODEL_SERVICE_MODEL_NAME"):
        service_settings.settings_from_env({})
