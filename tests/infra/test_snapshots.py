"""One JSON snapshot per stack per stage. Accept an intended change with
`.venv/bin/python -m pytest tests/infra/test_snapshots.py --snapshot-update`, then read the diff of
tests/infra/__snapshots__/ before committing it (README: Snapshots)."""

from __future__ import annotations

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from infra.naming import Component
from infra.workspace import Stage
from tests.infra.normalise import normalise_template


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("component", list(Component), ids=lambda c: c.value)
@pytest.mark.parametrize("stage", list(Stage), ids=lambda s: s.value)
def test_template_matches_snapshot(workspaces, stage: Stage, component: Component, snapshot_json) -> None:
    assert normalise_template(workspaces[stage].templates[component].to_json()) == snapshot_json


def test_normalising_hides_asset_hashes_but_not_resources() -> None:
    asset = "a" * 64
    template = {
        "Parameters": {"BootstrapVersion": {"Type": "AWS::SSM::Parameter::Value<String>"}},
        "Rules": {"CheckBootstrapVersion": {}},
        "Resources": {
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"Code": {"S3Key": f"{asset}.zip"}, "MemorySize": 256},
            }
        },
    }
    normalised = normalise_template(template)
    assert normalised == {
        "Resources": {
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"Code": {"S3Key": "<asset-hash>.zip"}, "MemorySize": 256},
            }
        }
    }
    template["Resources"]["Fn"]["Properties"]["Code"]["S3Key"] = "b" * 64 + ".zip"
    assert normalise_template(template) == normalised, "a code edit does not change the snapshot"
    script = {"Fn::Base64": "echo '" + "QUJD" * 100 + "' | base64 -d > /x"}
    with_script = normalise_template({"Resources": {"L": {"Type": "T", "Properties": {"OnStart": script}}}})
    script["Fn::Base64"] = "echo '" + "REVG" * 100 + "' | base64 -d > /x"
    assert normalise_template({"Resources": {"L": {"Type": "T", "Properties": {"OnStart": script}}}}) == with_script
    template["Resources"]["Fn"]["Properties"]["MemorySize"] = 512
    assert normalise_template(template) != normalised, "a resource change does"
