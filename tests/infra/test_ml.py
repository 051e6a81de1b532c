"""The ML stack: MLflow per stage (app, tracking server, or shared), the notebook, the roles' reach.
The notebook's platform, lifecycle scripts and idle stop: test_notebook_lifecycle.py."""

from __future__ import annotations

import json

import pytest

from infra.naming import Component
from infra.workspace import Stage
from tests.infra.conftest import NOTEBOOK_NETWORK, SHARED_MLFLOW_ARN


def resources(workspace, kind: str) -> dict[str, dict]:
    return {lid: r["Properties"] for lid, r in workspace.templates[Component.ML].find_resources(kind).items()}


def joined(value) -> str:
    """A Fn::Join (or plain string) as text, tokens as <Ref:...>/<GetAtt:...>."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        return "".join(joined(part) for part in value["Fn::Join"][1])
    return f"<{json.dumps(value, sort_keys=True)}>"


def test_mlflow_is_an_app_in_feature_and_int_and_a_tracking_server_in_prd(workspaces, config) -> None:
    for stage, workspace in workspaces.items():
        apps = resources(workspace, "AWS::SageMaker::MlflowApp")
        servers = resources(workspace, "AWS::SageMaker::MlflowTrackingServer")
        name = f"{config.project}-{workspace.target.workspace}-mlflow"
        if stage is Stage.PRD:
            assert not apps and servers["MlflowServer"]["TrackingServerName"] == name
            assert servers["MlflowServer"]["TrackingServerSize"] == config.stage(stage).ml.mlflow_tracking_server_size
            store = servers["MlflowServer"]["ArtifactStoreUri"]
        else:
            assert not servers and apps["Mlflow"]["Name"] == name
            store = apps["Mlflow"]["ArtifactStoreUri"]
        text = joined(store)
        assert text.startswith("s3://<") and text.endswith("/mlflow") and "Artifacts" in text


def test_mlflow_role_reaches_only_the_artifacts_bucket(workspace) -> None:
    role = next(v for k, v in resources(workspace, "AWS::IAM::Role").items() if k.startswith("MlflowRole"))
    (policy,) = role["ManagedPolicyArns"]
    assert "ArtifactsReadWritePolicy" in policy["Fn::GetStackOutput"]["OutputName"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}


def test_tracking_uri_is_published_as_parameter_and_output(workspace, config) -> None:
    (parameter,) = resources(workspace, "AWS::SSM::Parameter").values()
    assert parameter["Name"] == f"/{config.project}/{workspace.target.workspace}/mlflow/tracking-uri"
    mlflow_id = "MlflowServer" if workspace.target.stage is Stage.PRD else "Mlflow"
    attribute = "TrackingServerArn" if workspace.target.stage is Stage.PRD else "Arn"
    assert parameter["Value"] == {"Fn::GetAtt": [mlflow_id, attribute]}
    assert "MlflowTrackingArn" in workspace.templates[Component.ML].to_json()["Outputs"]


def test_notebook_settings_follow_config(workspace, config) -> None:
    ml = config.stage(workspace.target.stage).ml
    (notebook,) = resources(workspace, "AWS::SageMaker::NotebookInstance").values()
    assert notebook["NotebookInstanceName"] == f"{config.project}-{workspace.target.workspace}-notebook"
    assert notebook["InstanceType"] == ml.notebook_instance_type
    assert notebook["VolumeSizeInGB"] == ml.notebook_volume_gb
    assert notebook["RootAccess"] == "Disabled"
    assert notebook["DirectInternetAccess"] == ("Enabled" if ml.notebook_direct_internet_access else "Disabled")
    assert "Ref" in notebook["KmsKeyId"], "the volume is encrypted with the stack's key"
    assert notebook["InstanceMetadataServiceConfiguration"] == {"MinimumInstanceMetadataServiceVersion": "2"}


def test_notebook_role_reads_curated_writes_artifacts_and_stops_only_itself(workspace, config) -> None:
    role = next(v for k, v in resources(workspace, "AWS::IAM::Role").items() if k.startswith("NotebookRole"))
    attached = sorted(p["Fn::GetStackOutput"]["OutputName"] for p in role["ManagedPolicyArns"])
    assert "ArtifactsReadWritePolicy" in attached[0] and "CuratedReadPolicy" in attached[1]
    policies = {**resources(workspace, "AWS::IAM::Policy"), **resources(workspace, "AWS::IAM::ManagedPolicy")}
    (policy,) = (v for k, v in policies.items() if k.startswith("NotebookRole"))  # inline, or managed (int, prd)
    statements = [
        s | {"Action": [s["Action"]] if isinstance(s["Action"], str) else s["Action"]}
        for s in policy["PolicyDocument"]["Statement"]
    ]
    stop = next(s for s in statements if "sagemaker:StopNotebookInstance" in s["Action"])
    notebook = f"{config.project}-{workspace.target.workspace}-notebook"
    assert joined(stop["Resource"]).endswith(f":notebook-instance/{notebook}")
    mlflow = next(s for s in statements if "sagemaker-mlflow:*" in s["Action"])
    assert "GetAtt" in json.dumps(mlflow["Resource"]), "MLflow actions on this workspace's MLflow only"


@pytest.fixture(scope="module")
def shared_mlflow_template(public_service):
    """The options workspace's (tests/infra/conftest.py: its feature stage uses a shared MLflow)."""
    _, workspace = public_service
    return (
        workspace.templates[Component.ML].to_json(),
        SHARED_MLFLOW_ARN,
        workspace.templates[Component.MODEL_SERVICE].to_json(),
    )


def test_the_notebook_runs_in_the_configured_network_without_direct_internet_access(public_service) -> None:
    _, workspace = public_service
    (notebook,) = workspace.templates[Component.ML].find_resources("AWS::SageMaker::NotebookInstance").values()
    props = notebook["Properties"]
    assert props["DirectInternetAccess"] == "Disabled"
    assert props["SubnetId"] == NOTEBOOK_NETWORK["notebook_subnet_id"]
    assert props["SecurityGroupIds"] == [NOTEBOOK_NETWORK["notebook_security_group_id"]]


def test_a_feature_stage_may_use_a_shared_mlflow(shared_mlflow_template) -> None:
    template, arn, _ = shared_mlflow_template
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert "AWS::SageMaker::MlflowApp" not in kinds and "AWS::SageMaker::MlflowTrackingServer" not in kinds
    (parameter,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::SSM::Parameter"]
    assert parameter["Value"] == arn


def role_statements(template: dict, role_prefix: str) -> list[dict]:
    role = next(
        k for k, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role" and k.startswith(role_prefix)
    )
    policies = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"]
    return [s for p in policies if {"Ref": role} in p["Roles"] for s in p["PolicyDocument"]["Statement"]]


def test_with_a_shared_mlflow_the_service_reads_and_the_notebook_writes_its_artifact_store(
    shared_mlflow_template,
) -> None:
    """The model files are in the shared MLflow's store, not this workspace's bucket: without a grant there,
    S3 refuses every model load (MLflow hands out s3:// locations; the client reads them itself)."""
    ml, _, service = shared_mlflow_template
    reads = {
        (tuple(sorted([s["Action"]] if isinstance(s["Action"], str) else s["Action"])), json.dumps(s["Resource"]))
        for s in role_statements(service, "ServiceTaskDefTaskRole")
        if "s3:" in json.dumps(s["Action"])
    }
    assert reads == {
        (("s3:GetObject",), '"arn:aws:s3:::team-mlflow-artifacts/mlflow/*"'),
        (("s3:ListBucket",), '"arn:aws:s3:::team-mlflow-artifacts"'),
    }
    listing = next(s for s in role_statements(service, "ServiceTaskDefTaskRole") if s["Action"] == "s3:ListBucket")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "mlflow/*"}}
    writes = [s for s in role_statements(ml, "NotebookRole") if "s3:PutObject" in json.dumps(s["Action"])]
    assert [w["Resource"] for w in writes] == ["arn:aws:s3:::team-mlflow-artifacts/mlflow/*"]
