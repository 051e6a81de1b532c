"""A database source's extractor as AWS will run it (infra/constructs/extractor.py): in the subnets config names
(int, prd) or outside any VPC (a feature branch's), on its schedule or none, reading its own secret and nothing
else of Secrets Manager, decrypting it through Secrets Manager only, writing under its table's prefix of raw
only, and kept (int, prd) or destroyed (feature) with its secret. moto checks none of this."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.config import DatabaseSource
from infra.constructs.pipeline_function import ENI_ACTIONS
from infra.naming import Component
from infra.stacks.etl import EtlStack, source_of
from infra.workspace import Stage
from lambdas.extract.logic import SECRET_ENV, SOURCE_ENV, TABLE_ENV
from pipeline.contract import load_contracts
from pipeline.sources import PLACEHOLDER_HOST, source_files
from tests.infra.conftest import MINIMAL_REF, lambda_functions
from tests.infra.test_lambda_role_calls import rendered, role_statements

TABLE = "clinic/appointments"


def _workspaces(workspaces, combinations) -> dict[str, Any]:
    return {"int": workspaces[Stage.INT], "prd": workspaces[Stage.PRD], "feature": combinations[MINIMAL_REF]}


@pytest.fixture(params=["int", "prd", "feature"])
def extracting(request: pytest.FixtureRequest, workspaces, combinations) -> tuple[Any, DatabaseSource]:
    """(a workspace with a database source, that source's config)."""
    workspace = _workspaces(workspaces, combinations)[request.param]
    etl: EtlStack = workspace.stacks[Component.ETL]
    return workspace, etl.ctx.settings.etl.database_sources[TABLE]


def _resources(workspace, kind: str) -> dict[str, dict[str, Any]]:
    return workspace.templates[Component.ETL].find_resources(kind)


def _actions(statement: dict[str, Any]) -> list[str]:
    return [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]


def test_the_extractor_runs_where_config_puts_it(extracting) -> None:
    workspace, source = extracting
    props = lambda_functions(workspace)["extract"]
    if source.subnet_ids:
        assert props["VpcConfig"] == {
            "SubnetIds": source.subnet_ids,
            "SecurityGroupIds": source.security_group_ids,
        }
    else:
        assert "VpcConfig" not in props
        assert workspace.target.stage is Stage.FEATURE, "int and prd reach their database inside the network"
    assert props["Timeout"] == source.timeout_minutes * 60 and props["MemorySize"] == source.memory_mib
    env = props["Environment"]["Variables"]
    assert env[TABLE_ENV] == TABLE
    data, _ = source_files(load_contracts())[TABLE]
    assert json.loads(env[SOURCE_ENV]) == data, "the source file, as the stack read it"


def test_the_extractor_runs_on_its_schedule_or_only_when_invoked(extracting) -> None:
    workspace, source = extracting
    props = lambda_functions(workspace)["extract"]
    function_id = next(i for i, r in _resources(workspace, "AWS::Lambda::Function").items() if r["Properties"] == props)
    rules = [
        r["Properties"]
        for r in _resources(workspace, "AWS::Events::Rule").values()
        if any(t["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]} for t in r["Properties"].get("Targets", []))
    ]
    if source.schedule is None:
        assert rules == [], "off by default (a feature stage): nothing runs at rest"
        return
    ((rule),) = rules
    assert rule["ScheduleExpression"] == source.schedule
    (target,) = rule["Targets"]
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2 and "DeadLetterConfig" in target


def test_the_extractor_reads_its_own_secret_and_no_other(extracting) -> None:
    workspace, source = extracting
    props = lambda_functions(workspace)["extract"]
    statements = role_statements(workspace, props["Role"]["Fn::GetAtt"][0])
    secret_reads = [s for s in statements if any(a.startswith("secretsmanager:") for a in _actions(s))]
    (read,) = secret_reads
    assert sorted(_actions(read)) == ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
    secret = props["Environment"]["Variables"][SECRET_ENV]
    assert read["Resource"] == secret, "the secret the function is told to read, that one only"
    if source.secret_arn:
        assert secret == source.secret_arn
    decrypts = [s for s in statements if "kms:Decrypt" in _actions(s) and "secretsmanager" in json.dumps(s)]
    if source.secret_key_arn:
        (decrypt,) = decrypts
        assert decrypt["Resource"] == source.secret_key_arn
        assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}}
    elif workspace.target.stage is Stage.INT:  # the created secret, encrypted with the workspace's key
        (decrypt,) = decrypts
        assert rendered(decrypt["Resource"]) == "<DataKey>"
    else:
        assert decrypts == [], "a feature stage's secret: AWS's own key, no grant needed"


def test_the_created_secret_holds_the_placeholder_the_extractor_refuses(extracting) -> None:
    workspace, source = extracting
    secrets = _resources(workspace, "AWS::SecretsManager::Secret")
    if source.secret_arn:
        assert secrets == {}, "an existing secret is only named"
        return
    (secret,) = secrets.values()
    generated = secret["Properties"]["GenerateSecretString"]
    assert json.loads(generated["SecretStringTemplate"])["host"] == PLACEHOLDER_HOST
    assert generated["GenerateStringKey"] == "password"
    persistent = workspace.target.stage.is_persistent
    assert secret["DeletionPolicy"] == ("Retain" if persistent else "Delete"), "filled in by hand: kept in int, prd"
    assert ("KmsKeyId" in secret["Properties"]) is persistent


def test_the_extractor_manages_network_interfaces_only_in_a_vpc(extracting) -> None:
    workspace, source = extracting
    props = lambda_functions(workspace)["extract"]
    actions = {a for s in role_statements(workspace, props["Role"]["Fn::GetAtt"][0]) for a in _actions(s)}
    assert (set(ENI_ACTIONS) <= actions) is bool(source.subnet_ids)
    others = {name: p for name, p in lambda_functions(workspace).items() if name != "extract"}
    for name, other in others.items():
        other_actions = {a for s in role_statements(workspace, other["Role"]["Fn::GetAtt"][0]) for a in _actions(s)}
        assert not set(ENI_ACTIONS) & other_actions, name


def test_an_extractor_may_write_under_its_tables_prefix_of_raw_only(extracting) -> None:
    workspace, _ = extracting
    props = lambda_functions(workspace)["extract"]
    statements = role_statements(workspace, props["Role"]["Fn::GetAtt"][0])
    s3 = [s for s in statements if any(a.startswith("s3:") for a in _actions(s))]
    assert {a for s in s3 for a in _actions(s)} == {"s3:PutObject", "s3:AbortMultipartUpload"}, "no read, no delete"
    assert [
        rendered(r) for s in s3 for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    ] == [f"<Raw>/{TABLE}/*"]


def test_a_table_without_a_source_file_is_refused_with_the_fix() -> None:
    files = {TABLE: ({"engine": "postgresql"}, "sources/clinic/appointments.yaml")}
    assert source_of(TABLE, files) == files[TABLE]
    with pytest.raises(ValueError, match=r"diabetes/patients, which has no source file: add sources/diabetes/patients"):
        source_of("diabetes/patients", files)
