"""Hostile branch names: every one synthesises, and every derived name fits its AWS pattern and length."""

from __future__ import annotations

import re

import pytest
from aws_cdk.assertions import Template

from infra.naming import DERIVED_NAMES, PROJECT_NAME_MAX_LENGTH, resource_name
from infra.naming import EXPLICIT_NAMES as NAMING_EXPLICIT
from infra.platform import build_workspace, create_app
from infra.workspace import Stage, resolve

HOSTILE_BRANCHES = [
    "feature/WEDATAIN-1234-" + "a-very-long-description-of-the-change-" * 5,
    "x" * 200,
    "feature/ünïcode-Straße-日本語",
    "日本語",
    "!!!---+++",
    "UPPER/CASE/BRANCH",
    "deeply/nested/path/of/many/segments/for/one/branch",
    "dependabot/pip/boto3-1.44.5",
    "renovate/aws-cdk-lib-2.x",
    "int",
    "feature/prd",
    "123-starts-with-a-digit",
]

STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
EXPORT_NAME = re.compile(r"^[A-Za-z0-9:-]{1,255}$")
# Explicit physical names: (resource type, property path) -> the pattern and length AWS accepts.
_SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # notebook, lifecycle config, MLflow app
EXPLICIT_NAMES = {
    ("AWS::Glue::Database", ("DatabaseInput", "Name")): re.compile(r"^[a-z0-9_]{1,255}$"),
    ("AWS::Glue::Job", ("Name",)): re.compile(r"^[\w-]{1,255}$"),
    ("AWS::StepFunctions::StateMachine", ("StateMachineName",)): re.compile(r"^[A-Za-z0-9_-]{1,80}$"),
    ("AWS::CloudWatch::Dashboard", ("DashboardName",)): re.compile(r"^[A-Za-z0-9_-]{1,255}$"),
    ("AWS::SageMaker::NotebookInstance", ("NotebookInstanceName",)): _SAGEMAKER_NAME,
    ("AWS::SageMaker::NotebookInstanceLifecycleConfig", ("NotebookInstanceLifecycleConfigName",)): _SAGEMAKER_NAME,
    ("AWS::SageMaker::MlflowApp", ("Name",)): _SAGEMAKER_NAME,
    ("AWS::SSM::Parameter", ("Name",)): re.compile(r"^/[A-Za-z0-9_./-]{1,1010}$"),
    ("AWS::SNS::Topic", ("DisplayName",)): re.compile(r"^.{1,100}$"),
    ("AWS::Athena::WorkGroup", ("Name",)): re.compile(r"^[a-zA-Z0-9._-]{1,128}$"),
}
PROJECT = "p" * PROJECT_NAME_MAX_LENGTH
"""The longest project name the config accepts: the limits above were computed for it."""


@pytest.fixture(scope="session")
def hostile_synth(config, tmp_path_factory):
    longest = type(config).model_validate(config.model_dump() | {"project": PROJECT})
    app = create_app(outdir=str(tmp_path_factory.mktemp("hostile")))
    built = {}
    for branch in HOSTILE_BRANCHES:
        target = resolve(branch, longest.naming_rules)
        assert target.stage is Stage.FEATURE
        built[branch] = build_workspace(app, longest, target)
    app.synth()
    return {branch: {c: (s, Template.from_stack(s)) for c, s in stacks.items()} for branch, stacks in built.items()}


def test_hostile_branches_get_valid_distinct_stack_names(hostile_synth) -> None:
    names = [stack.stack_name for stacks in hostile_synth.values() for stack, _ in stacks.values()]
    assert len(names) == len(set(names)) == 5 * len(HOSTILE_BRANCHES)
    for name in names:
        assert STACK_NAME.match(name), name


def test_exports_and_explicit_names_fit(hostile_synth) -> None:
    """Every explicitly named resource of every hostile branch, under the longest project name."""
    checked: dict[tuple[str, tuple[str, ...]], int] = dict.fromkeys(EXPLICIT_NAMES, 0)
    for stacks in hostile_synth.values():
        for _, template in stacks.values():
            body = template.to_json()
            for output in body.get("Outputs", {}).values():
                if "Export" in output:
                    assert EXPORT_NAME.match(output["Export"]["Name"]), output["Export"]["Name"]
            for resource in body["Resources"].values():
                for (resource_type, path), pattern in EXPLICIT_NAMES.items():
                    if resource["Type"] == resource_type:
                        value = resource["Properties"]
                        for key in path:
                            value = value[key]
                        assert value.startswith(PROJECT) or value.startswith(f"/{PROJECT}/"), value
                        assert pattern.match(value), (resource_type, value)
                        checked[(resource_type, path)] += 1
    assert min(checked.values()) >= len(HOSTILE_BRANCHES), checked  # each kind, in every branch


def test_an_explicit_name_must_be_registered_with_its_limit() -> None:
    """A new explicitly named resource cannot bypass the workspace-length computation."""
    assert resource_name("p", "w", "dashboard") == "p-w-dashboard"
    with pytest.raises(ValueError, match=r"no explicit name 'reports' in infra/naming.py EXPLICIT_NAMES"):
        resource_name("p", "w", "reports")
    rendered = {n.render("{project}", "{workspace}") for n in DERIVED_NAMES}
    assert {f"{{project}}-{{workspace}}-{suffix}" for suffix in NAMING_EXPLICIT} <= rendered
    assert "/{project}/{workspace}/mlflow/tracking-uri" in rendered, "the MLflow parameter path is counted"


def test_branch_tags_are_valid_tag_values(hostile_synth) -> None:
    for branch, stacks in hostile_synth.items():
        stack, _ = next(iter(stacks.values()))
        value = stack.tags.tag_values()["branch"]
        assert re.fullmatch(r"[\w .:/=+\-@]{1,256}", value), (branch, value)
