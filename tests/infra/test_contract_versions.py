"""The model's table, as the stacks synthesise it: the Glue catalog table's columns, the Glue jobs' contract
(what the ETL writes) and the service's request model all come from one version of one contract file, and
the service refuses to start on another (model_service/__main__.py, tests/model_service/test_served.py)."""

from __future__ import annotations

import json

from infra.naming import Component
from infra.workspace import Stage
from model_service.schemas import record_model, request_model
from model_service.settings import settings_from_env
from pipeline.catalog import table_name
from pipeline.contract import contract_named, contracts_from_json, curated_columns, load_contracts
from pipeline.registry import trained_model
from tests.infra.conftest import service_environment


def test_catalog_etl_and_service_derive_from_one_contract_version(workspaces) -> None:
    model = trained_model()
    templates = workspaces[Stage.FEATURE].templates
    (table,) = [
        t["Properties"]["TableInput"]
        for t in templates[Component.ETL].find_resources("AWS::Glue::Table").values()
        if t["Properties"]["TableInput"]["Name"] == table_name(model)
    ]
    assert table["Parameters"]["contract_version"] == str(model.contract_version)
    catalogued = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]  # (partitions: the builds' tokens)
    assert catalogued == curated_columns(model)

    for job in templates[Component.ETL].find_resources("AWS::Glue::Job").values():
        shipped = contracts_from_json(job["Properties"]["DefaultArguments"]["--contracts"])
        assert shipped[model.name] == model, "the job writes what the contract file says, at its version"

    env = {k: v for k, v in service_environment(templates[Component.MODEL_SERVICE]).items() if isinstance(v, str)}
    settings = settings_from_env(env)
    assert settings.contract_version == model.contract_version and settings.contract == model.name
    served = contract_named(load_contracts(), settings.contract)
    request = request_model(record_model(served), settings.max_batch_size)
    record = request.model_fields["records"].annotation.__args__[0]  # list[Record]
    assert list(record.model_fields) == list(model.features), "the request takes the model's features"
    assert json.dumps(request.model_json_schema())  # a schema the OpenAPI document can hold
