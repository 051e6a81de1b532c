"""A feature branch's default workspace, its model service serverless (config `service.mode: serverless`),
offline: the real CDK CLI deploys it to the emulator with nothing always on (no VPC, cluster or load
balancer), the service is the image's function, the smoke check calls its function URL with signed requests
only, and the destroy leaves nothing of the workspace, its image in the bootstrap repository included.

The Fargate variant's lifecycle (update in place, a stack that will not go, the janitor) is
tests/emulator/test_feature_lifecycle.py; the service's code on Lambda, tests/model_service/test_image.py."""

from __future__ import annotations

from datetime import timedelta

import pytest

from infra.emulator.inventory import workspace_resources
from infra.lifecycle.destroy import destroy_workspace
from infra.lifecycle.stacks import find_workspace
from infra.naming import resource_name
from tests.emulator.conftest import Deployed, deployed_workspace, outputs

BRANCH = "feature/WEDATAIN-55-serverless"


@pytest.fixture(scope="module")
def serverless(config, tmp_path_factory) -> Deployed:
    assert config.stage("feature").service.mode == "serverless", "the shipped feature config"
    with deployed_workspace(config, BRANCH, tmp_path_factory.mktemp("serverless")) as deployed:
        yield deployed


def test_the_default_feature_workspace_deploys_with_nothing_always_on(serverless: Deployed) -> None:
    stacks = find_workspace(
        serverless.emulator.client("cloudformation"), serverless.project, serverless.target.workspace
    )
    assert sorted(s.name for s in stacks) == sorted(serverless.stack_names())
    assert {s.status for s in stacks} == {"CREATE_COMPLETE"}
    found = workspace_resources(serverless.emulator.client, serverless.project, serverless.target.workspace)
    assert not {"ecs clusters", "load balancers", "vpcs"} & set(found), sorted(found)
    name = resource_name(serverless.project, serverless.target.workspace, "service")
    serverless.emulator.client("lambda").get_function(FunctionName=name)  # there, by the name the deploy role may call
    # moto's CloudFormation makes every function a zip one: the image is read from the deployed template instead
    cfn = serverless.emulator.client("cloudformation")
    template = cfn.get_template(StackName=f"{serverless.project}-{serverless.target.workspace}-model-service")
    body = template["TemplateBody"]
    (function,) = [
        r
        for r in body["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and "ImageConfig" in r["Properties"]
    ]
    assert function["Properties"]["PackageType"] == "Image" and function["Properties"]["FunctionName"] == name
    assert "container-assets" in str(function["Properties"]["Code"]["ImageUri"])
    assert outputs(serverless, "model-service")["ServiceEndpoint"] == "iam"
    assert sum(a.startswith("ecr:") for a in found["bootstrap assets"]) == 1, "the service image"


def test_the_smoke_check_calls_the_function_url_signed_and_never_unsigned(serverless: Deployed, capsys) -> None:
    """Invoking ingest needs Lambda code to run (moto cannot, without Docker): the check stops there, and still
    checks the service, through its function URL, with the deploy's credentials signing."""
    from infra import smoke

    unsigned: list[str] = []
    signed: list[str] = []
    edge = smoke.Edge(
        client=serverless.emulator.client,
        get=lambda url: unsigned.append(url) or "no answer (emulator)",
        signed_get=lambda url: signed.append(url) or (200, "{}"),
        progress=lambda _: None,
    )
    assert smoke.main([BRANCH, "--timeout", "5"], edge) == 1
    captured = capsys.readouterr()
    assert "smoke check failed at step 'ingest'" in captured.err
    assert "| service | passed | /health 200; /ready 200" in captured.out
    url = outputs(serverless, "model-service")["ServiceUrl"].rstrip("/")
    assert unsigned == [] and signed == [f"{url}/health", f"{url}/ready"]
    storage = outputs(serverless, "storage")
    s3 = serverless.emulator.client("s3")
    for landed in s3.list_objects_v2(Bucket=storage["LandingBucketName"]).get("Contents", []):
        s3.delete_object(Bucket=storage["LandingBucketName"], Key=landed["Key"])


def test_destroy_leaves_nothing_of_the_workspace_and_sweeps_its_image(serverless: Deployed) -> None:
    report = destroy_workspace(
        serverless.emulator.client, serverless.project, serverless.target.workspace, asset_grace=timedelta(0)
    )
    assert report.stuck == [] and report.kept == []
    assert sorted(report.stacks) == sorted(serverless.stack_names())
    assert workspace_resources(serverless.emulator.client, serverless.project, serverless.target.workspace) == {}
    assert sum(a.startswith("ecr:") for a in report.assets) == 1, report.assets
