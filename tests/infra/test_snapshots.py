"""One JSON snapshot per stack per stage. Accept an intended change with
`.venv/bin/python -m pytest tests/infra/test_snapshots.py --snapshot-update`, then read the diff of
tests/infra/__snapshots__/ before committing it (README: Snapshots). An update that would delete or replace a
stateful resource of the stored snapshot (a renamed bucket, table, database, MLflow app; a new logical id)
fails unless ALLOW_STATEFUL_REPLACEMENT names it: accepting a snapshot is not accepting data loss."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from infra.naming import Component
from infra.stateful import destructive_template_changes
from infra.workspace import Stage
from tests.infra.conftest import FIXED_MODEL_REF, MINIMAL_REF
from tests.infra.normalise import normalise_template

SNAPSHOTS = Path(__file__).parent / "__snapshots__" / "test_snapshots"
ALLOW = "ALLOW_STATEFUL_REPLACEMENT"
"""Comma-separated logical ids whose deletion or replacement an update means (README: Snapshots)."""


def unallowed_replacements(stored: dict, template: dict, allowed: str) -> list[str]:
    """The deletions and replacements of stateful resources from the stored snapshot to `template` that
    `allowed` (ALLOW's value) does not name."""
    names = {name.strip() for name in allowed.split(",") if name.strip()}
    return [
        change
        for change in destructive_template_changes(stored, template)
        if change.split(" ")[0] not in names or MOVED in change  # a deploy that fails is never allowed
    ]


MOVED = ": moved to "
"""infra/stateful.py moved_named_resources' lines: no ALLOW_STATEFUL_REPLACEMENT makes that deploy succeed."""


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("component", list(Component), ids=lambda c: c.value)
@pytest.mark.parametrize("stage", list(Stage), ids=lambda s: s.value)
def test_template_matches_snapshot(workspaces, stage: Stage, component: Component, snapshot_json) -> None:
    template = normalise_template(workspaces[stage].templates[component].to_json())
    stored = SNAPSHOTS / f"test_template_matches_snapshot[{stage.value}-{component.value}].json"
    previous = json.loads(stored.read_text()) if stored.exists() else None  # before any --snapshot-update
    lost = [] if previous is None else unallowed_replacements(previous, template, os.environ.get(ALLOW, ""))
    if lost:
        # the stored snapshot asserted as it is: used and unchanged, so --snapshot-update neither rewrites
        # it nor deletes it as unused
        assert previous == snapshot_json
        pytest.fail(f"data would be lost: {lost}; if meant, set {ALLOW} to their logical ids (README: Snapshots)")
    assert template == snapshot_json


@pytest.mark.parametrize(
    ("ref", "components"),
    [
        (MINIMAL_REF, (Component.STORAGE, Component.MONITORING, Component.ETL)),
        (FIXED_MODEL_REF, (Component.STORAGE, Component.MONITORING, Component.MODEL_SERVICE)),
    ],
    ids=["etl-only", "fixed-model"],
)
def test_component_combination_matches_snapshot(combinations, ref: str, components, snapshot_json) -> None:
    """The feature stage with components switched off (tests/infra/conftest.py): every stack it has."""
    workspace = combinations[ref]
    assert tuple(workspace.templates) == components
    templates = {c.value: normalise_template(workspace.templates[c].to_json()) for c in components}
    assert templates == snapshot_json


def test_a_renamed_or_re_keyed_stateful_resource_is_caught_and_only_a_named_one_allowed() -> None:
    stored = json.loads((SNAPSHOTS / "test_template_matches_snapshot[prd-storage].json").read_text())
    resources = stored["Resources"]
    (bucket,) = [lid for lid in resources if lid.startswith("Raw") and resources[lid]["Type"] == "AWS::S3::Bucket"]
    (ledger,) = [lid for lid, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table"]
    changed = json.loads(json.dumps(stored))
    changed["Resources"][bucket]["Properties"]["BucketName"] = "renamed"
    changed["Resources"][ledger]["Properties"]["KeySchema"] = [{"AttributeName": "id", "KeyType": "HASH"}]
    changed["Resources"]["Moved" + bucket] = changed["Resources"].pop(bucket)
    lost = unallowed_replacements(stored, changed, "")
    assert lost == sorted(
        [f"{ledger} (AWS::DynamoDB::Table): replaced (KeySchema changed)", f"{bucket} (AWS::S3::Bucket): deleted"]
    ), lost
    assert unallowed_replacements(stored, changed, f"{bucket}, {ledger}") == []
    assert unallowed_replacements(stored, stored, "") == [], "an unchanged template replaces nothing"
    released = json.loads(json.dumps(stored))
    released["Resources"][ledger]["DeletionPolicy"] = "Delete"
    assert unallowed_replacements(stored, released, "") == [
        f"{ledger} (AWS::DynamoDB::Table): no longer retained (DeletionPolicy Delete)"
    ]
    tagged = json.loads(json.dumps(stored))
    tagged["Resources"][bucket]["Properties"]["Tags"] = [{"Key": "k", "Value": "v"}]
    assert unallowed_replacements(stored, tagged, "") == [], "an in-place update is no replacement"


def test_a_named_resource_moved_to_another_logical_id_is_caught() -> None:
    """A construct wrapped or moved gives its resource a new logical ID; with an explicit name (a Glue job's),
    CloudFormation would create the new one first and the service refuse the name: a deploy that fails, of
    any resource type, stateful or not."""
    stored = json.loads((SNAPSHOTS / "test_template_matches_snapshot[int-etl].json").read_text())
    jobs = [lid for lid, r in stored["Resources"].items() if r["Type"] == "AWS::Glue::Job"]
    assert jobs and all(isinstance(stored["Resources"][lid]["Properties"]["Name"], str) for lid in jobs)
    job = jobs[0]
    name = stored["Resources"][job]["Properties"]["Name"]
    moved = json.loads(json.dumps(stored))
    moved["Resources"][job + "Wrapped"] = moved["Resources"].pop(job)
    assert unallowed_replacements(stored, moved, "") == [
        f"{job} (AWS::Glue::Job): moved to {job}Wrapped with the same name {name}: the deploy would fail "
        "(CloudFormation creates the new one before deleting the old)"
    ]
    assert unallowed_replacements(stored, moved, job) != [], "no allowance makes a failing deploy pass"
    renamed = json.loads(json.dumps(moved))
    renamed["Resources"][job + "Wrapped"]["Properties"]["Name"] = name + "-2"
    assert unallowed_replacements(stored, renamed, "") == [], "a new name under a new ID deploys (create, delete)"


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
    bucket = "cdk-hnb659fds-assets-222222222222-eu-west-1"
    code = {
        "ScriptLocation": f"s3://{bucket}/{asset}.py",
        "Image": {"Fn::Sub": f"1.dkr.ecr.r.${{AWS::URLSuffix}}/cdk-hnb659fds-container-assets-1-r:{asset}"},
        "Policy": [f"arn:aws:s3:::{bucket}/{asset}.zip"],
        "Tags": [{"Key": "owner", "Value": asset}],
    }
    assert normalise_template({"Resources": {"R": {"Type": "T", "Properties": code}}})["Resources"]["R"] == {
        "Type": "T",
        "Properties": {
            "ScriptLocation": f"s3://{bucket}/<asset-hash>.py",
            "Image": {"Fn::Sub": "1.dkr.ecr.r.${AWS::URLSuffix}/cdk-hnb659fds-container-assets-1-r:<asset-hash>"},
            "Policy": [f"arn:aws:s3:::{bucket}/<asset-hash>.zip"],
            "Tags": [{"Key": "owner", "Value": asset}],
        },
    }, "an asset's hash is masked where an asset is named; the owner tag's hash of the ref is compared"
