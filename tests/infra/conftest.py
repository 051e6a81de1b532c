"""Synthesise feature, int and prd once per session, in one app (extra workspaces cost little)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from infra.config import ProjectConfig
from infra.naming import Component
from infra.platform import build_workspace, create_app
from infra.stacks.base import WorkspaceStack
from infra.workspace import Stage, Target, resolve
from tests.lambdas.harness import HandlerRun, handler_runs

SAMPLE_REFS = {
    Stage.FEATURE: "feature/WEDATAIN-1234-some-feature",
    Stage.INT: "main",
    Stage.PRD: "refs/tags/v1.2.3",
}


@dataclass
class SynthesisedWorkspace:
    target: Target
    stacks: dict[Component, WorkspaceStack]
    templates: dict[Component, Template]


PUBLIC_SERVICE_REF = "feature/WEDATAIN-4242-public-service"
"""A fourth workspace in the same app (one synthesis): the options the sample stages leave off, so that their
templates are tested and cfn-lint, nag and checkov-clean too: a public service as a team that exposes one
would configure it (HTTPS, JWT), a notebook in a VPC (no direct internet access), a shared MLflow."""
SHARED_MLFLOW_ARN = "arn:aws:sagemaker:eu-west-1:333333333333:mlflow-app/app-shared01"
SHARED_MLFLOW_STORE = "s3://team-mlflow-artifacts/mlflow"
NOTEBOOK_NETWORK = {
    "notebook_subnet_id": "subnet-0a1b2c3d4e5f60718",
    "notebook_security_group_id": "sg-0a1b2c3d4e5f60718",
}


MINIMAL_REF = "feature/WEDATAIN-4343-etl-only"
"""A fifth workspace: a feature branch that deploys storage and ETL only (components notebook, mlflow and
model_service off), the smallest combination that does work."""
FIXED_MODEL_REF = "feature/WEDATAIN-4444-fixed-model"
"""A sixth: a service with no MLflow and no ETL, serving the fixed model of `service.model_uri`."""
FIXED_MODEL_URI = "s3://team-models/diabetes/model"
FIXED_MODEL_KEY = "arn:aws:kms:eu-west-1:111111111111:key/0a1b2c3d-0000-4000-8000-00000000000a"


def with_components(config: ProjectConfig, service: dict[str, Any] | None = None, **switches: bool) -> ProjectConfig:
    """The config with the feature stage's components switched (and its service settings changed)."""
    raw = config.model_dump(mode="json")
    raw["stages"]["feature"]["components"] = switches
    raw["stages"]["feature"]["service"] |= service or {}
    return ProjectConfig.model_validate(raw)


def combination_config(config: ProjectConfig, ref: str) -> ProjectConfig:
    """The config of a component combination (MINIMAL_REF, FIXED_MODEL_REF)."""
    if ref == MINIMAL_REF:  # with a database source as a feature stage has one: no network, no schedule
        minimal = with_components(config, notebook=False, mlflow=False, model_service=False).model_dump(mode="json")
        minimal["stages"]["feature"]["etl"]["database_sources"] = {"clinic/appointments": {}}
        return ProjectConfig.model_validate(minimal)
    if ref == FIXED_MODEL_REF:
        return with_components(
            config,
            {"model_uri": FIXED_MODEL_URI, "model_kms_key_arn": FIXED_MODEL_KEY},
            etl=False,
            notebook=False,
            mlflow=False,
        )
    raise KeyError(ref)


def public_service_config(config: ProjectConfig) -> ProjectConfig:
    raw = config.model_dump(mode="json")
    raw["stages"]["feature"].setdefault("ml", {})
    raw["stages"]["feature"]["ml"] |= {
        "notebook_direct_internet_access": False,
        **NOTEBOOK_NETWORK,
        "mlflow": "shared",
        "shared_mlflow_arn": SHARED_MLFLOW_ARN,
        "shared_mlflow_artifact_store": SHARED_MLFLOW_STORE,
    }
    raw["stages"]["feature"]["service"] |= {
        "mode": "fargate",  # the feature stage's default is serverless: this one tests the load balancer's options
        "endpoint": "public",
        "certificate_arn": "arn:aws:acm:eu-west-1:111111111111:certificate/0a1b2c3d-example",
        "jwt_issuer": "https://login.example.com/tenant",
        "waf_rate_limit": 500,
        "domain_name": "models.example.com",
        "jwt_jwks_endpoint": "https://login.example.com/tenant/.well-known/jwks.json",
        "jwt_claims": [
            {"name": "aud", "values": ["api://model-service"]},
            {"name": "scope", "values": ["model-service/predict"]},
        ],
    }
    return ProjectConfig.model_validate(raw)


@pytest.fixture(scope="session")
def synthesised(
    config: ProjectConfig, tmp_path_factory: pytest.TempPathFactory
) -> tuple[
    App,
    dict[Stage, SynthesisedWorkspace],
    tuple[ProjectConfig, SynthesisedWorkspace],
    dict[str, SynthesisedWorkspace],
]:
    app = create_app(outdir=str(tmp_path_factory.mktemp("cdk.out")))
    built = {}
    for stage, ref in SAMPLE_REFS.items():
        target = resolve(ref, config.naming_rules)
        built[stage] = (target, build_workspace(app, config, target))
    public_config = public_service_config(config)
    public_target = resolve(PUBLIC_SERVICE_REF, public_config.naming_rules)
    public_stacks = build_workspace(app, public_config, public_target)
    combined = {}
    for ref in (MINIMAL_REF, FIXED_MODEL_REF):
        combination = combination_config(config, ref)
        target = resolve(ref, combination.naming_rules)
        combined[ref] = (target, build_workspace(app, combination, target))
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag or CDK's own validation: print every finding
        pytest.fail(f"synthesis failed validation (fix it, or acknowledge it with a reason):\n{exc}")

    def synthesised_workspace(target: Target, stacks: dict[Component, WorkspaceStack]) -> SynthesisedWorkspace:
        return SynthesisedWorkspace(target, stacks, {c: Template.from_stack(s) for c, s in stacks.items()})

    return (
        app,
        {stage: synthesised_workspace(target, stacks) for stage, (target, stacks) in built.items()},
        (public_config, synthesised_workspace(public_target, public_stacks)),
        {ref: synthesised_workspace(*built) for ref, built in combined.items()},
    )


@pytest.fixture(scope="session")
def app_and_workspaces(synthesised) -> tuple[App, dict[Stage, SynthesisedWorkspace]]:
    return synthesised[0], synthesised[1]


@pytest.fixture(scope="session")
def public_service(synthesised) -> tuple[ProjectConfig, SynthesisedWorkspace]:
    """(its config, the workspace) of the stage whose service is public."""
    return synthesised[2]


@pytest.fixture(scope="session")
def combinations(synthesised) -> dict[str, SynthesisedWorkspace]:
    """The component combinations besides the stages' defaults, by ref: MINIMAL_REF, FIXED_MODEL_REF."""
    return synthesised[3]


@pytest.fixture(scope="session")
def cdk_out(app_and_workspaces) -> Path:
    return Path(app_and_workspaces[0].outdir)


@pytest.fixture(scope="session")
def workspaces(app_and_workspaces) -> dict[Stage, SynthesisedWorkspace]:
    return app_and_workspaces[1]


@pytest.fixture(params=list(Stage), ids=lambda s: s.value)
def workspace(request: pytest.FixtureRequest, workspaces) -> SynthesisedWorkspace:
    return workspaces[request.param]


@pytest.fixture(scope="session")
def handler_runs_in_feature(workspaces, combinations) -> dict[str, HandlerRun]:
    """Each handler of a feature workspace run with its function's synthesised environment: the metrics
    it emits, the S3 calls it makes (tests/lambdas/harness.py); the extractor's of the branch that has one."""
    environments = {
        name: powertools_environment(props)
        for workspace in (combinations[MINIMAL_REF], workspaces[Stage.FEATURE])
        for name, props in lambda_functions(workspace).items()
    }
    return handler_runs(environments)


def lambda_functions(workspace) -> dict[str, dict[str, Any]]:
    """The pipeline's functions by handler package (lambdas/<name>/handler.py) -> their properties."""
    template = workspace.templates[Component.ETL]
    return {
        props["Handler"].split(".")[1]: props
        for props in (r["Properties"] for r in template.find_resources("AWS::Lambda::Function").values())
        if str(props.get("Handler", "")).startswith("lambdas.")
    }


def powertools_environment(props: dict[str, Any]) -> dict[str, str]:
    """The variables a function's environment sets as plain text (the Powertools settings among them;
    bucket names are cross-stack references and stay out)."""
    return {k: v for k, v in props["Environment"]["Variables"].items() if isinstance(v, str)}


def service_environment(template: Template) -> dict[str, Any]:
    """The model service's environment in a model-service template: its Fargate task's container, or its Lambda
    function's (serverless mode)."""
    tasks = list(template.find_resources("AWS::ECS::TaskDefinition").values())
    if tasks:
        (task,) = tasks
        (container,) = task["Properties"]["ContainerDefinitions"]
        return {e["Name"]: e["Value"] for e in container["Environment"]}
    (function,) = [
        f for f in template.find_resources("AWS::Lambda::Function").values() if "ImageConfig" in f["Properties"]
    ]
    return dict(function["Properties"]["Environment"]["Variables"])
