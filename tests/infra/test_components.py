"""Components per stage (config `components`): a stack that is off is not synthesised, and what is on works
without it: no reference to a stack that is not there, a dashboard in the last stack, a service that serves a
fixed model where there is no MLflow and may read that model only."""

from __future__ import annotations

from typing import Any

import pytest

from infra.naming import Component
from infra.platform import dashboard_home
from tests.infra.conftest import (
    FIXED_MODEL_KEY,
    FIXED_MODEL_REF,
    FIXED_MODEL_URI,
    MINIMAL_REF,
    SynthesisedWorkspace,
    service_environment,
)


def _env(template) -> dict[str, Any]:
    return service_environment(template)


def _statements(template) -> list[dict[str, Any]]:
    return [
        statement
        for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
        for policy in template.find_resources(kind).values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _references(template_json: dict[str, Any]) -> set[str]:
    """The stacks a template imports from or reads outputs of (strong or weak cross-stack references)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "Fn::ImportValue" and isinstance(value, str):
                    found.add(value.split(":")[0])
                elif key == "Fn::GetStackOutput":
                    found.add(value["StackName"])
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(template_json)
    return found


def test_storage_and_etl_only(combinations: dict[str, SynthesisedWorkspace]) -> None:
    minimal = combinations[MINIMAL_REF]
    assert list(minimal.stacks) == [Component.STORAGE, Component.MONITORING, Component.ETL]
    etl = minimal.templates[Component.ETL]
    assert etl.find_resources("AWS::StepFunctions::StateMachine"), "the pipeline is there"
    (dashboard,) = etl.find_resources("AWS::CloudWatch::Dashboard").values()
    body = str(dashboard["Properties"]["DashboardBody"])
    assert "Model service" not in body and "pipeline" in body.lower()
    for template in minimal.templates.values():
        assert not template.find_resources("AWS::SageMaker::NotebookInstance")
        assert not template.find_resources("AWS::ECS::Service")
        assert not template.find_resources("AWS::ElasticLoadBalancingV2::LoadBalancer")


def test_every_reference_is_to_a_stack_of_the_workspace(
    combinations: dict[str, SynthesisedWorkspace], workspaces
) -> None:
    """A reference to a switched-off stack would fail the deploy (no such export or stack)."""
    for workspace in [*combinations.values(), *workspaces.values()]:
        names = {stack.stack_name for stack in workspace.stacks.values()}
        for component, stack in workspace.stacks.items():
            strangers = _references(workspace.templates[component].to_json()) - names
            assert not strangers, f"{stack.stack_name} refers to {strangers}"


def test_a_service_without_mlflow_serves_the_fixed_model_and_reads_only_it(
    combinations: dict[str, SynthesisedWorkspace],
) -> None:
    fixed = combinations[FIXED_MODEL_REF]
    assert list(fixed.stacks) == [Component.STORAGE, Component.MONITORING, Component.MODEL_SERVICE]
    service = fixed.templates[Component.MODEL_SERVICE]
    env = _env(service)
    assert env["MODEL_SERVICE_MODEL_URI"] == FIXED_MODEL_URI
    from model_service.settings import settings_from_env

    assert settings_from_env(env).source == FIXED_MODEL_URI, "the service reads what the task sets"
    assert "MLFLOW_TRACKING_URI" not in env and "MODEL_SERVICE_MODEL_ALIAS" not in env
    statements = _statements(service)
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert not {a for a in actions if a.startswith(("sagemaker", "sagemaker-mlflow"))}, "no MLflow to call"
    reads = [s for s in statements if s["Action"] == "s3:GetObject"]
    assert [s["Resource"] for s in reads] == ["arn:aws:s3:::team-models/diabetes/model/*"]
    (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert listing["Resource"] == "arn:aws:s3:::team-models"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["diabetes/model", "diabetes/model/*"]}}
    (decrypt,) = [s for s in statements if s["Action"] == "kms:Decrypt"]
    assert decrypt["Resource"] == FIXED_MODEL_KEY, "its bucket's key (config service.model_kms_key_arn)"
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}
    (dashboard,) = service.find_resources("AWS::CloudWatch::Dashboard").values()
    assert "Model service" in str(dashboard["Properties"]["DashboardBody"])


def test_by_default_the_service_follows_the_champion_in_the_workspaces_mlflow(workspaces) -> None:
    for workspace in workspaces.values():
        env = _env(workspace.templates[Component.MODEL_SERVICE])
        assert env["MODEL_SERVICE_MODEL_ALIAS"] == "champion" and "MODEL_SERVICE_MODEL_URI" not in env
        assert "MLFLOW_TRACKING_URI" in env


@pytest.mark.parametrize(
    ("components", "home"),
    [
        ((Component.STORAGE, Component.MONITORING, Component.ETL, Component.ML, Component.MODEL_SERVICE), "service"),
        ((Component.STORAGE, Component.MONITORING, Component.ETL, Component.ML), "etl"),
        ((Component.STORAGE, Component.MONITORING, Component.ML, Component.MODEL_SERVICE), "service"),
        ((Component.STORAGE, Component.MONITORING, Component.ETL), "etl"),
        ((Component.STORAGE, Component.MONITORING, Component.ML), None),
        ((Component.STORAGE, Component.MONITORING), None),
    ],
)
def test_the_dashboard_lives_with_the_service_else_with_etl(components, home) -> None:
    found = dashboard_home(components)
    assert found == {"service": Component.MODEL_SERVICE, "etl": Component.ETL, None: None}[home]


def test_one_dashboard_per_workspace_deployed_after_every_other_stack(combinations, workspaces) -> None:
    for workspace in [*combinations.values(), *workspaces.values()]:
        owners = [c for c, t in workspace.templates.items() if t.find_resources("AWS::CloudWatch::Dashboard")]
        assert owners == [dashboard_home(list(workspace.stacks))], workspace.target.workspace
        holder = workspace.stacks[owners[0]]
        others = {s.stack_name for s in workspace.stacks.values() if s is not holder}
        assert {s.stack_name for s in holder.dependencies} == others, "a moved dashboard's old stack lets go first"
