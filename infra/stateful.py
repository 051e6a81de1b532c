"""CloudFormation resource types that hold data (kept in int and prd; flagged when a diff would
delete or replace them). Plain data, so that the workflow tools need no CDK import."""

from typing import Any

STATEFUL_RESOURCE_TYPES = frozenset(
    {
        "AWS::S3::Bucket",
        "AWS::Glue::Database",
        "AWS::Glue::Table",
        "AWS::ECR::Repository",
        "AWS::Logs::LogGroup",
        "AWS::KMS::Key",
        "AWS::DynamoDB::Table",
        "AWS::SageMaker::MlflowApp",
        "AWS::SageMaker::MlflowTrackingServer",
        "AWS::SecretsManager::Secret",  # a source's connection, put there by hand
    }
)
"""Resources whose loss loses data: kept in int and prd."""

REPLACED_WHEN_CHANGED: dict[str, tuple[str, ...]] = {
    "AWS::S3::Bucket": ("BucketName",),
    "AWS::Glue::Database": ("CatalogId", "DatabaseName", "DatabaseInput.Name"),
    "AWS::Glue::Table": ("CatalogId", "DatabaseName", "TableInput.Name"),
    "AWS::ECR::Repository": ("RepositoryName",),
    "AWS::Logs::LogGroup": ("LogGroupName",),
    "AWS::KMS::Key": ("KeySpec", "KeyUsage"),
    "AWS::DynamoDB::Table": ("TableName", "KeySchema"),
    "AWS::SageMaker::MlflowApp": ("Name",),
    "AWS::SageMaker::MlflowTrackingServer": ("TrackingServerName",),
    "AWS::SecretsManager::Secret": ("Name",),
}
"""Per stateful type (every one has an entry), the properties (dotted paths) whose change CloudFormation makes
by replacing the resource ("Update requires: Replacement" in each type's reference): a new resource, the old
one's data left behind or deleted with it."""


def _at(properties: object, path: str) -> object:
    """The value at dotted `path` under `properties`; None where any step is missing or no mapping (a resource
    without properties included)."""
    for part in path.split("."):
        properties = properties.get(part) if isinstance(properties, dict) else None
    return properties


EXPLICIT_NAME_PROPERTIES: dict[str, str] = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::Glue::Job": "Name",
    "AWS::Glue::Database": "DatabaseInput.Name",
    "AWS::Glue::Table": "TableInput.Name",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::SageMaker::NotebookInstance": "NotebookInstanceName",
    "AWS::SageMaker::NotebookInstanceLifecycleConfig": "NotebookInstanceLifecycleConfigName",
    "AWS::SageMaker::MlflowApp": "Name",
    "AWS::SageMaker::MlflowTrackingServer": "TrackingServerName",
    "AWS::Athena::WorkGroup": "Name",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::WAFv2::WebACL": "Name",
    "AWS::ECR::Repository": "RepositoryName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SSM::Parameter": "Name",
}
"""Per type, the property that gives a resource its name when the template sets one (infra/naming.py)."""


def moved_named_resources(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Resources of `old` with an explicit name whose logical ID is gone while `new` has one of the same type and
    name under another ID (a construct moved or wrapped): CloudFormation creates the new resource before it
    deletes the old one, the service refuses a second resource of that name, and the deploy fails."""

    def named(resources: dict[str, Any]) -> dict[tuple[str, str], str]:
        found = {}
        for logical_id, resource in resources.items():
            path = EXPLICIT_NAME_PROPERTIES.get(resource.get("Type"))
            name = _at(resource.get("Properties"), path) if path else None
            if isinstance(name, str):  # a name made of references is another question
                found[(resource["Type"], name)] = logical_id
        return found

    old_resources: dict[str, Any] = old.get("Resources", {})
    new_resources: dict[str, Any] = new.get("Resources", {})
    after = named(new_resources)
    return [
        f"{logical_id} ({kind}): moved to {after[(kind, name)]} with the same name {name}: the deploy would fail "
        "(CloudFormation creates the new one before deleting the old)"
        for (kind, name), logical_id in sorted(named(old_resources).items())
        if logical_id not in new_resources and (kind, name) in after
    ]


def destructive_template_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What a change from template `old` to `new` does to the stateful resources of `old`, a line each
    (`<logical id> (<type>): deleted | replaced (<property>)`): a resource gone (its logical id too: CloudFormation
    deletes the old one and creates another), one of its REPLACED_WHEN_CHANGED properties changed, or its
    Retain policy (int, prd) dropped, so that a later delete or replacement takes its data. And, of any type, a
    named resource moved to another logical ID (`moved_named_resources`): a deploy that cannot succeed."""
    found = moved_named_resources(old, new)
    old_resources: dict[str, Any] = old.get("Resources", {})
    new_resources: dict[str, Any] = new.get("Resources", {})
    for logical_id, resource in sorted(old_resources.items()):
        kind = resource.get("Type")
        if kind not in STATEFUL_RESOURCE_TYPES:
            continue
        after = new_resources.get(logical_id)
        if after is None or after.get("Type") != kind:
            found.append(f"{logical_id} ({kind}): deleted")
            continue
        for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
            if resource.get(policy) == "Retain" and after.get(policy) != "Retain":
                found.append(f"{logical_id} ({kind}): no longer retained ({policy} {after.get(policy, 'unset')})")
        for path in REPLACED_WHEN_CHANGED[kind]:
            if _at(resource.get("Properties"), path) != _at(after.get("Properties"), path):
                found.append(f"{logical_id} ({kind}): replaced ({path} changed)")
    return found
