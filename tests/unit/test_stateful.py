"""infra/stateful.py, the destructive-change detector that the snapshot tests and the PR diff run: which change
to a template loses a stateful resource's data or fails the deploy. Small hand-made templates, so that each
rule has a test of its own (the snapshot tests run it on the real templates); the types, properties and
messages are written out here, not imported, so that a changed table in the module fails a test."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from infra.stateful import (
    REPLACED_WHEN_CHANGED,
    STATEFUL_RESOURCE_TYPES,
    destructive_template_changes,
    moved_named_resources,
)

STATEFUL = [
    "AWS::S3::Bucket",
    "AWS::Glue::Database",
    "AWS::Glue::Table",
    "AWS::ECR::Repository",
    "AWS::Logs::LogGroup",
    "AWS::KMS::Key",
    "AWS::DynamoDB::Table",
    "AWS::SageMaker::MlflowApp",
    "AWS::SageMaker::MlflowTrackingServer",
    "AWS::SecretsManager::Secret",
]
REPLACING = [  # (type, dotted property path): "Update requires: Replacement"
    ("AWS::S3::Bucket", "BucketName"),
    ("AWS::Glue::Database", "CatalogId"),
    ("AWS::Glue::Database", "DatabaseName"),
    ("AWS::Glue::Database", "DatabaseInput.Name"),
    ("AWS::Glue::Table", "CatalogId"),
    ("AWS::Glue::Table", "DatabaseName"),
    ("AWS::Glue::Table", "TableInput.Name"),
    ("AWS::ECR::Repository", "RepositoryName"),
    ("AWS::Logs::LogGroup", "LogGroupName"),
    ("AWS::KMS::Key", "KeySpec"),
    ("AWS::KMS::Key", "KeyUsage"),
    ("AWS::DynamoDB::Table", "TableName"),
    ("AWS::DynamoDB::Table", "KeySchema"),
    ("AWS::SageMaker::MlflowApp", "Name"),
    ("AWS::SageMaker::MlflowTrackingServer", "TrackingServerName"),
    ("AWS::SecretsManager::Secret", "Name"),
]
NAMED = [  # (type, dotted path of the property that names it)
    ("AWS::S3::Bucket", "BucketName"),
    ("AWS::Glue::Job", "Name"),
    ("AWS::Glue::Database", "DatabaseInput.Name"),
    ("AWS::Glue::Table", "TableInput.Name"),
    ("AWS::StepFunctions::StateMachine", "StateMachineName"),
    ("AWS::SageMaker::NotebookInstance", "NotebookInstanceName"),
    ("AWS::SageMaker::NotebookInstanceLifecycleConfig", "NotebookInstanceLifecycleConfigName"),
    ("AWS::SageMaker::MlflowApp", "Name"),
    ("AWS::SageMaker::MlflowTrackingServer", "TrackingServerName"),
    ("AWS::Athena::WorkGroup", "Name"),
    ("AWS::CloudWatch::Dashboard", "DashboardName"),
    ("AWS::WAFv2::WebACL", "Name"),
    ("AWS::ECR::Repository", "RepositoryName"),
    ("AWS::Logs::LogGroup", "LogGroupName"),
    ("AWS::DynamoDB::Table", "TableName"),
    ("AWS::SSM::Parameter", "Name"),
]
MOVED = "the deploy would fail (CloudFormation creates the new one before deleting the old)"


def nested(path: str, value: object) -> dict[str, Any]:
    """Properties holding `value` at the dotted `path`."""
    head, _, rest = path.partition(".")
    return {head: nested(rest, value) if rest else value}


def template(**resources: dict[str, Any]) -> dict[str, Any]:
    return {"Resources": resources}


def resource(kind: str, properties: dict[str, Any] | None = None, /, **policies: str) -> dict[str, Any]:
    return {"Type": kind, "Properties": properties or {}, **policies}


@pytest.mark.parametrize("kind", STATEFUL)
def test_a_stateful_resource_removed_or_turned_into_another_type_is_deleted(kind: str) -> None:
    old = template(Data=resource(kind), Other=resource("AWS::SNS::Topic"))
    assert destructive_template_changes(old, template(Other=resource("AWS::SNS::Topic"))) == [f"Data ({kind}): deleted"]
    retyped = template(Data=resource("AWS::SNS::Topic"), Other=resource("AWS::SNS::Topic"))
    assert destructive_template_changes(old, retyped) == [f"Data ({kind}): deleted"]
    assert destructive_template_changes(old, copy.deepcopy(old)) == [], "an unchanged template loses nothing"


def test_a_resource_that_holds_no_data_may_go_and_a_template_without_resources_is_read() -> None:
    old = template(Topic=resource("AWS::SNS::Topic", {"TopicName": "t"}, DeletionPolicy="Retain"))
    assert destructive_template_changes(old, template()) == []
    assert destructive_template_changes({}, {}) == []
    assert destructive_template_changes(template(Data=resource("AWS::S3::Bucket")), {}) == [
        "Data (AWS::S3::Bucket): deleted"
    ]


@pytest.mark.parametrize(("kind", "path"), REPLACING, ids=lambda value: str(value))
def test_a_property_whose_change_replaces_the_resource_is_caught_and_others_are_not(kind: str, path: str) -> None:
    old = template(Data=resource(kind, nested(path, "before") | {"Tags": [{"Key": "k", "Value": "1"}]}))
    changed = template(Data=resource(kind, nested(path, "after") | {"Tags": [{"Key": "k", "Value": "1"}]}))
    assert destructive_template_changes(old, changed) == [f"Data ({kind}): replaced ({path} changed)"]
    removed = template(Data=resource(kind, {"Tags": [{"Key": "k", "Value": "1"}]}))
    assert destructive_template_changes(old, removed) == [f"Data ({kind}): replaced ({path} changed)"]
    retagged = template(Data=resource(kind, nested(path, "before") | {"Tags": [{"Key": "k", "Value": "2"}]}))
    assert destructive_template_changes(old, retagged) == [], "an in-place update is no replacement"


def test_a_dotted_path_reads_nested_properties_and_nothing_under_a_value_that_is_no_mapping() -> None:
    kind = "AWS::Glue::Database"
    old = template(Db=resource(kind, {"DatabaseInput": {"Name": "db", "Description": "a"}}))
    described = template(Db=resource(kind, {"DatabaseInput": {"Name": "db", "Description": "b"}}))
    assert destructive_template_changes(old, described) == []
    flattened = template(Db=resource(kind, {"DatabaseInput": "db"}))  # no mapping: no name under it
    assert destructive_template_changes(old, flattened) == [f"Db ({kind}): replaced (DatabaseInput.Name changed)"]


@pytest.mark.parametrize("policy", ["DeletionPolicy", "UpdateReplacePolicy"])
def test_a_dropped_retain_policy_is_caught_with_what_replaced_it(policy: str) -> None:
    kind = "AWS::DynamoDB::Table"
    old = template(Ledger=resource(kind, **{policy: "Retain"}))
    assert destructive_template_changes(old, template(Ledger=resource(kind, **{policy: "Delete"}))) == [
        f"Ledger ({kind}): no longer retained ({policy} Delete)"
    ]
    assert destructive_template_changes(old, template(Ledger=resource(kind))) == [
        f"Ledger ({kind}): no longer retained ({policy} unset)"
    ]
    assert destructive_template_changes(old, template(Ledger=resource(kind, **{policy: "Retain"}))) == []
    released = template(Ledger=resource(kind, **{policy: "Delete"}))
    assert destructive_template_changes(released, template(Ledger=resource(kind))) == [], "nothing was retained"
    assert destructive_template_changes(released, old) == [], "retaining more loses nothing"


def test_every_stateful_type_has_its_replacing_properties() -> None:
    assert set(STATEFUL_RESOURCE_TYPES) == set(REPLACED_WHEN_CHANGED) == set(STATEFUL)


def test_every_change_is_listed_in_the_order_of_the_logical_ids() -> None:
    old = template(
        Zeta=resource("AWS::S3::Bucket", {"BucketName": "z"}, DeletionPolicy="Retain"),
        Alpha=resource("AWS::Logs::LogGroup"),
        Beta=resource("AWS::SNS::Topic"),  # holds no data: looked past, not the end of the list
    )
    new = template(Zeta=resource("AWS::S3::Bucket", {"BucketName": "y"}, DeletionPolicy="Delete"))
    assert destructive_template_changes(old, new) == [
        "Alpha (AWS::Logs::LogGroup): deleted",
        "Zeta (AWS::S3::Bucket): no longer retained (DeletionPolicy Delete)",
        "Zeta (AWS::S3::Bucket): replaced (BucketName changed)",
    ]


@pytest.mark.parametrize(("kind", "path"), NAMED, ids=lambda value: str(value))
def test_a_named_resource_moved_to_another_logical_id_fails_the_deploy(kind: str, path: str) -> None:
    old = template(Old=resource(kind, nested(path, "the-name")))
    moved = template(New=resource(kind, nested(path, "the-name")))
    assert moved_named_resources(old, moved) == [f"Old ({kind}): moved to New with the same name the-name: {MOVED}"]
    assert moved_named_resources(old, template(New=resource(kind, nested(path, "other-name")))) == []
    kept = template(Old=resource(kind, nested(path, "the-name")), New=resource(kind, nested(path, "the-name")))
    assert moved_named_resources(old, kept) == [], "the old one stays: nothing is created before a delete"


def test_a_move_is_judged_by_type_and_literal_name_and_comes_first_in_the_changes() -> None:
    old = template(Old=resource("AWS::Glue::Job", {"Name": "job"}), Data=resource("AWS::S3::Bucket"))
    other_type = template(New=resource("AWS::Athena::WorkGroup", {"Name": "job"}), Data=resource("AWS::S3::Bucket"))
    assert destructive_template_changes(old, other_type) == []
    unnamed = template(New=resource("AWS::SNS::Topic", {"Name": "job"}))
    assert moved_named_resources(template(Old=resource("AWS::SNS::Topic", {"Name": "job"})), unnamed) == []
    referenced = {"Fn::Join": ["-", ["job", {"Ref": "AWS::Region"}]]}
    computed = template(Old=resource("AWS::Glue::Job", {"Name": referenced}))
    assert moved_named_resources(computed, template(New=resource("AWS::Glue::Job", {"Name": referenced}))) == [], (
        "a name made of references is no literal name to compare"
    )
    both = template(New=resource("AWS::Glue::Job", {"Name": "job"}))
    assert destructive_template_changes(old, both) == [
        f"Old (AWS::Glue::Job): moved to New with the same name job: {MOVED}",
        "Data (AWS::S3::Bucket): deleted",
    ]
