"""Stage rules, applied by the StageRules aspect: destroyable features, retained int/prd data,
termination-protected prd; tags on everything; stateful logical IDs pinned."""

from __future__ import annotations

import hashlib
import json

import pytest
from aws_cdk import App
from aws_cdk import aws_s3 as s3

from infra.naming import Component
from infra.platform import create_app
from infra.stacks.base import WorkspaceContext, WorkspaceStack
from infra.stateful import STATEFUL_RESOURCE_TYPES
from infra.workspace import Stage, resolve


def all_resources(workspace):
    for component, template in workspace.templates.items():
        for logical_id, resource in template.to_json()["Resources"].items():
            yield component, logical_id, resource


def test_feature_workspaces_are_fully_destroyable(workspaces) -> None:
    resources = list(all_resources(workspaces[Stage.FEATURE]))
    assert resources
    for component, logical_id, resource in resources:
        assert resource.get("DeletionPolicy") == "Delete", (component, logical_id)
        assert resource.get("UpdateReplacePolicy") == "Delete", (component, logical_id)


def test_feature_buckets_empty_themselves_on_destroy(workspaces) -> None:
    template = workspaces[Stage.FEATURE].templates[Component.STORAGE]
    buckets = template.find_resources("AWS::S3::Bucket")
    emptied = {
        r["Properties"]["BucketName"]["Ref"] for r in template.find_resources("Custom::S3AutoDeleteObjects").values()
    }
    assert emptied == set(buckets)


@pytest.mark.parametrize("stage", [Stage.INT, Stage.PRD])
def test_persistent_stages_retain_every_stateful_resource(workspaces, stage: Stage) -> None:
    stateful = [(c, lid, r) for c, lid, r in all_resources(workspaces[stage]) if r["Type"] in STATEFUL_RESOURCE_TYPES]
    assert {r["Type"] for _, _, r in stateful} >= {
        "AWS::S3::Bucket",
        "AWS::Glue::Database",
        "AWS::KMS::Key",
        "AWS::Logs::LogGroup",
    }
    for component, logical_id, resource in stateful:
        assert resource.get("DeletionPolicy") == "Retain", (component, logical_id)
        assert resource.get("UpdateReplacePolicy") == "Retain", (component, logical_id)
    assert not workspaces[stage].templates[Component.STORAGE].find_resources("Custom::S3AutoDeleteObjects")


def test_only_prd_stacks_are_termination_protected(app_and_workspaces) -> None:
    app, workspaces = app_and_workspaces
    assembly = app.synth()
    for stage, workspace in workspaces.items():
        for stack in workspace.stacks.values():
            artifact = assembly.get_stack_by_name(stack.stack_name)
            assert bool(artifact.termination_protection) is (stage is Stage.PRD), stack.stack_name


def test_stacks_and_resources_carry_the_workspace_tags(app_and_workspaces, config) -> None:
    app, workspaces = app_and_workspaces
    assembly = app.synth()
    for stage, workspace in workspaces.items():
        release = {"release": workspace.target.name.rsplit("/", 1)[-1].lstrip("v")} if stage is Stage.PRD else {}
        expected = {
            "project": config.project,
            "stage": stage.value,
            "workspace": workspace.target.workspace,
            "branch": workspace.target.name,
            **release,
            **config.tags,
            "owner": hashlib.sha256(workspace.target.full_ref.encode()).hexdigest(),
        }
        for stack in workspace.stacks.values():
            assert assembly.get_stack_by_name(stack.stack_name).tags == expected
        tagged = [
            (lid, r) for _, lid, r in all_resources(workspace) if isinstance(r.get("Properties", {}).get("Tags"), list)
        ]
        assert len(tagged) >= 8
        for logical_id, resource in tagged:
            tags = {t["Key"]: t["Value"] for t in resource["Properties"]["Tags"]}
            assert tags.items() >= expected.items(), logical_id


def test_synthesis_needs_no_lookups(cdk_out, workspaces) -> None:
    """A context look-up would make the CLI call AWS at synth (and fail offline): zones come from config."""
    assert "missing" not in json.loads((cdk_out / "manifest.json").read_text())
    for workspace in workspaces.values():
        assert workspace.stacks[Component.MODEL_SERVICE].availability_zones == ["eu-west-1a", "eu-west-1b"]


def test_stack_names_follow_the_convention(workspaces, config) -> None:
    for workspace in workspaces.values():
        target = workspace.target
        assert [s.stack_name for s in workspace.stacks.values()] == config.stack_names(target.stage, target.workspace)
        assert all(
            s.stack_name.startswith(f"{config.project}-{workspace.target.workspace}-")
            for s in workspace.stacks.values()
        )


DATA_KEY_ID = "DataKey17AFBB84"
# Renaming one of these replaces the resource: in int/prd that orphans (retains) the data and starts
# empty. A change here must be deliberate.
PINNED_STATEFUL_IDS = {
    Component.STORAGE: {
        "AccessLogs8B620ECA",
        "LandingF95672E9",
        "Raw72517081",
        "Quarantine23FF09FE",
        "Staging12D1754E",
        "CuratedF137945A",
        "Artifacts82DD59A1",
        "QueryResults655BC675",
        "Catalog742F25FD",
        "LedgerB7379752",
    },
    Component.ETL: {
        "IngestLogs41B5EF21",
        "DispatchLogs05E1D4C4",
        "ValidateLogs19964D98",
        "GateLogs65804183",
        "PromoteLogs64501AFF",
        "GlueLogs15222A79",
        "PipelineLogsB6C63DF7",
    },
    Component.MONITORING: {"AlarmTopicKey57B0D3A7"},
    Component.MODEL_SERVICE: {"ServiceLogs24DEC314", "FlowLogGroup3E25AA51"},
    Component.ML: {"NotebookKey70FA8682"},  # and the MLflow app (feature, int) or tracking server (prd)
}


TRAINING_STATEFUL_IDS = {"TrainingLogsE5993150"}
"""Training in AWS (config ml.training, on in int and prd): its state machine's logs."""

EXTRACTOR_STATEFUL_IDS = {
    Stage.FEATURE: set(),  # no database source in the sample feature stage
    Stage.INT: {"ExtractorClinicAppointmentsExtractLogs42E5C2C4", "ExtractorClinicAppointmentsSecret0D0406BD"},
    Stage.PRD: {"ExtractorClinicAppointmentsExtractLogs42E5C2C4"},  # its secret exists (config secret_arn)
}
"""A database source's extractor: its logs, and the secret it creates where config names none (someone puts the
database's details in it by hand: replaced, they would be lost)."""


@pytest.mark.parametrize("stage", list(Stage), ids=lambda s: s.value)
def test_logical_ids_of_stateful_resources_are_pinned(workspaces, stage: Stage) -> None:
    for component, expected in PINNED_STATEFUL_IDS.items():
        template = workspaces[stage].templates[component].to_json()["Resources"]
        stateful = {lid for lid, r in template.items() if r["Type"] in STATEFUL_RESOURCE_TYPES}
        if component is Component.ML:
            expected = expected | {"MlflowServer" if stage is Stage.PRD else "Mlflow"}
            expected |= TRAINING_STATEFUL_IDS if stage.is_persistent else set()  # config ml.training: int and prd
        if component is Component.ETL:  # a catalog table per promotable contract, named after it
            expected = expected | {"CatalogTableClinicAppointments", "CatalogTableDiabetesPatients"}
            expected |= EXTRACTOR_STATEFUL_IDS[stage]
        if component is Component.STORAGE and stage.is_persistent:
            expected = expected | {DATA_KEY_ID}  # the key of int's and prd's data and logs
        if component is Component.MONITORING and not stage.is_persistent:
            expected = expected - {"AlarmTopicKey57B0D3A7"}  # config monitoring.alarm_topic_key: false (cost)
        if component is Component.MODEL_SERVICE and not stage.is_persistent:
            expected = expected - {"FlowLogGroup3E25AA51"}  # serverless: no VPC, so no flow logs
        assert stateful == expected, component


def test_a_feature_workspace_holds_one_customer_managed_key_its_notebook_volumes(workspaces) -> None:
    """Issue 20: at most one customer-managed key per feature workspace ($1/month each): the notebook volume's
    (it may hold data); the alarm topic goes without (config monitoring.alarm_topic_key), the buckets use SSE-S3."""
    keys = [
        (component, logical_id)
        for component, template in workspaces[Stage.FEATURE].templates.items()
        for logical_id in template.find_resources("AWS::KMS::Key")
    ]
    assert keys == [(Component.ML, "NotebookKey70FA8682")]


class _ForgetfulStack(WorkspaceStack):
    component = Component.ETL

    def __init__(self, scope: App, ctx: WorkspaceContext) -> None:
        super().__init__(scope, ctx)
        s3.Bucket(self, "PlainBucket")


def test_a_bucket_that_would_survive_a_feature_destroy_fails_synth(config, tmp_path) -> None:
    app = create_app(outdir=str(tmp_path))
    _ForgetfulStack(app, WorkspaceContext(config, resolve("feature/forgetful", config.naming_rules)))
    with pytest.raises(RuntimeError, match="PlainBucket does not delete its objects on destroy"):
        app.synth()
