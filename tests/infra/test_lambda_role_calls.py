"""Each pipeline function's role allows the AWS calls its handler makes, on the resources it makes them on.

moto allows every call, so the handlers' own tests cannot see a missing action: a listing of object versions
without s3:ListBucketVersions, a HEAD of a version without s3:GetObjectVersion. Here each handler runs as
Lambda runs it (tests/lambdas/harness.py: a fresh interpreter, the function's synthesised environment), its
calls are recorded, mapped to the IAM actions AWS authorises them by, and each must be allowed by a
statement of the function's role (its managed policies, from the storage stack, and its inline ones) on
that bucket or its objects, the pipeline's state machine, the raw-file queue. The key policies of int and
prd are tests/infra/test_key_usage.py's."""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

import pytest

from infra.naming import Component
from infra.workspace import Stage
from tests.infra.conftest import MINIMAL_REF, lambda_functions
from tests.lambdas.harness import BUCKETS, ApiCall, HandlerRun

BUCKET_OF = {name: logical.title() for logical, name in BUCKETS.items()}
"""The harness's bucket names -> the storage stack's bucket construct ids."""
_OBJECT_WRITES = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}
RESOURCE_OF = {
    "stepfunctions": ("states", "Pipeline"),
    "sqs": ("sqs", "RawFileQueue"),
    "dynamodb": ("dynamodb", "Ledger"),
    "glue": ("glue", "StagingToCurated:job"),
    "secretsmanager": ("secretsmanager", "Secret"),
}
"""The services the handlers call besides S3: (IAM prefix, the one resource of the ETL stack they may call)."""


def required(call: ApiCall) -> list[tuple[str, str]]:
    """(IAM action, resource) pairs AWS authorises `call` by; the resource is a construct id, or for S3
    `<bucket>` or `<bucket>/*`."""
    if call.table is not None:  # a catalog table's partitions: Glue authorises the catalog, database and table
        return [
            (f"glue:{call.operation}", f"Catalog:{what}") for what in ("catalog", "database", f"table/{call.table}")
        ]
    if call.service != "s3":
        prefix, resource = RESOURCE_OF[call.service]
        if call.operation == "DescribeExecution":
            resource += ":execution"  # an execution of it, not the state machine
        if call.service == "dynamodb" and call.key is not None:
            resource += f"#{call.key}"  # the item, for a statement limited to some (dynamodb:LeadingKeys)
        return [(f"{prefix}:{call.operation}", resource)]
    if call.bucket is None:
        raise AssertionError(f"an S3 call without a bucket: {call}")
    bucket, objects = BUCKET_OF[call.bucket], f"{BUCKET_OF[call.bucket]}/{call.key or '*'}"
    read = "s3:GetObjectVersion" if call.versioned else "s3:GetObject"
    match call.operation:
        case "ListObjectsV2" | "ListObjects":
            return [("s3:ListBucket", bucket)]
        case "ListObjectVersions":
            return [("s3:ListBucketVersions", bucket)]
        case "HeadObject":  # and a 404 for a missing key (not a 403) only with ListBucket: the code relies on it
            return [(read, objects), ("s3:ListBucket", bucket)]
        case "GetObject":
            return [(read, objects)]
        case "CopyObject" | "UploadPartCopy":
            if call.copy_source is None:
                raise AssertionError(f"a copy without a source: {call}")
            source, versioned = call.copy_source
            source_read = "s3:GetObjectVersion" if versioned else "s3:GetObject"
            return [(source_read, f"{BUCKET_OF[source]}/*"), ("s3:PutObject", objects)]
        case "DeleteObject":
            return [("s3:DeleteObjectVersion" if call.versioned else "s3:DeleteObject", objects)]
        case "AbortMultipartUpload":
            return [("s3:AbortMultipartUpload", objects)]
        case operation if operation in _OBJECT_WRITES:
            return [("s3:PutObject", objects)]
    raise AssertionError(f"no IAM mapping for S3 {call.operation}: add it to required()")


def rendered(resource: Any) -> str:
    """A policy resource as text, a bucket's ARN as `<Landing>` (its construct id)."""
    if isinstance(resource, str):
        return resource
    if "Fn::GetAtt" in resource:
        logical, attribute = resource["Fn::GetAtt"]
        match = re.fullmatch(r"([A-Za-z]+)[0-9A-F]{8}", logical)
        return f"<{match[1] if match and attribute == 'Arn' else logical + '.' + attribute}>"
    if "Ref" in resource:
        match = re.fullmatch(r"([A-Za-z]+)[0-9A-F]{8}", resource["Ref"])
        return f"<{match[1] if match else resource['Ref']}>"
    if "Fn::Join" in resource:
        separator, parts = resource["Fn::Join"]
        return separator.join(rendered(part) for part in parts)
    if "Fn::GetStackOutput" in resource:  # a reference to another stack's resource, as `<its construct id>`
        output = resource["Fn::GetStackOutput"]["OutputName"]
        match = re.fullmatch(r"PublishOutputRef([A-Za-z]+)[0-9A-F]{16}", output) or re.fullmatch(
            r"PublishOutputFnGetAtt([A-Za-z]+)[0-9A-F]{8}Arn[0-9A-F]{8}", output
        )
        if match:
            return f"<{match[1]}>"
    return json.dumps(resource)


def matches(policy_resource: str, resource: str, arns: dict[str, str]) -> bool:
    """Whether a rendered policy resource covers `resource`: `<Bucket>`, `<Bucket>/*`, `<Pipeline>`, or one
    whose ARN the template gives by name only (`arns`: `Pipeline:execution`, any execution of it, as an
    ARN pattern; `StagingToCurated:job`, the promotion's Glue job)."""
    if policy_resource == "*":
        return True
    resource = resource.split("#", 1)[0]  # an item of a table: the table's statement (`allows` checks the item)
    if resource in arns:
        return policy_resource == arns[resource]
    bucket, slash, key = resource.partition("/")
    if slash and policy_resource.startswith(f"<{bucket}>/"):  # an object, under the statement's pattern
        return fnmatch.fnmatchcase(key, policy_resource.removeprefix(f"<{bucket}>/"))
    return policy_resource == f"<{resource}>"


def executions_of(workspace) -> dict[str, str]:
    """The ARNs of what the template names by name only: any execution of the pipeline
    (arn:aws:states:<region>:<account>:execution:<the pipeline's name>:*) and the promotion's Glue job."""
    stack = workspace.stacks[Component.ETL]
    (machine,) = workspace.templates[Component.ETL].find_resources("AWS::StepFunctions::StateMachine").values()
    name = machine["Properties"]["StateMachineName"]
    glue = f"arn:aws:glue:{stack.region}:{stack.account}"
    tables = [
        t["Properties"]["TableInput"]["Name"]
        for t in workspace.templates[Component.ETL].find_resources("AWS::Glue::Table").values()
    ]
    secrets = [rendered(stack.resolve(e.secret.secret_arn)) for e in stack.extractors.values()]
    return {
        **({"Secret": secrets[0]} if len(secrets) == 1 else {}),
        "Pipeline:execution": f"arn:aws:states:{stack.region}:{stack.account}:execution:{name}:*",
        "StagingToCurated:job": f"{glue}:job/<StagingToCurated>",
        "Catalog:catalog": f"{glue}:catalog",
        "Catalog:database": f"{glue}:database/<Catalog>",
        **{f"Catalog:table/{table}": f"{glue}:table/<Catalog>/{table}" for table in tables},
    }


def role_statements(workspace, role_id: str) -> list[dict[str, Any]]:
    """The Allow statements of a role of the ETL stack: its managed policies (storage's, by stack output;
    the stack's own, which int and prd make of CDK's inline ones) and the inline policies attached to it."""
    etl, storage = workspace.templates[Component.ETL], workspace.templates[Component.STORAGE]
    role = etl.find_resources("AWS::IAM::Role")[role_id]["Properties"]
    documents = [role.get("Policies", [{}])[0].get("PolicyDocument", {"Statement": []})]
    outputs = storage.to_json()["Outputs"]  # managed policies reach their resources in the storage stack
    policies = storage.find_resources("AWS::IAM::ManagedPolicy")
    for arn in role.get("ManagedPolicyArns", []):
        if "Fn::GetStackOutput" in arn:
            policy_id = outputs[arn["Fn::GetStackOutput"]["OutputName"]]["Value"]["Ref"]
            documents.append(policies[policy_id]["Properties"]["PolicyDocument"])
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for policy in etl.find_resources(kind).values():
            if {"Ref": role_id} in policy["Properties"].get("Roles", []):
                documents.append(policy["Properties"]["PolicyDocument"])
    return [s for document in documents for s in document["Statement"] if s["Effect"] == "Allow"]


def allows(statements: list[dict[str, Any]], action: str, resource: str, executions: dict[str, str]) -> bool:
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if (
            any(fnmatch.fnmatchcase(action, a) for a in actions)
            and any(matches(rendered(r), resource, executions) for r in resources)
            and leading_keys_allow(statement, resource)
        ):
            return True
    return False


def leading_keys_allow(statement: dict[str, Any], resource: str) -> bool:
    """A statement limited to some items (`ForAllValues:StringEquals` on dynamodb:LeadingKeys) allows a call on
    an item (`Table#key`) only where the item's key is one of them; any other condition is not evaluated here."""
    conditions = statement.get("Condition", {})
    equal = conditions.get("ForAllValues:StringEquals", {}).get("dynamodb:LeadingKeys")
    like = conditions.get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
    if equal is None and like is None:
        return True
    _, hashed, key = resource.partition("#")
    return bool(hashed) and (key in (equal or []) or any(fnmatch.fnmatchcase(key, p) for p in like or []))


def missing(
    statements: list[dict[str, Any]], calls: list[ApiCall], executions: dict[str, str]
) -> set[tuple[str, str, str]]:
    return {
        (call.operation, action, resource)
        for call in calls
        for action, resource in required(call)
        if not allows(statements, action, resource, executions)
    }


@pytest.mark.parametrize("stage", [Stage.FEATURE, Stage.PRD, MINIMAL_REF], ids=str)
def test_each_function_role_allows_the_calls_its_handler_makes(
    workspaces, combinations, handler_runs_in_feature: dict[str, HandlerRun], stage: Stage | str
) -> None:
    """In the stages, and in a feature branch with a database source (its extractor's secret created, not
    named: prd names one)."""
    workspace = workspaces[stage] if isinstance(stage, Stage) else combinations[stage]
    functions = lambda_functions(workspace)
    assert set(functions) <= set(handler_runs_in_feature)
    assert "extract" in functions or stage == Stage.FEATURE, "int, prd and the combination read a database"
    for name, props in functions.items():
        calls = handler_runs_in_feature[name].api_calls
        assert calls, f"lambdas/{name} made no AWS call: the harness did not run it"
        statements = role_statements(workspace, props["Role"]["Fn::GetAtt"][0])
        lacking = missing(statements, calls, executions_of(workspace))
        assert lacking == set(), f"lambdas/{name}'s role lacks what its handler calls"


def test_the_check_finds_an_action_a_role_lacks(workspaces, handler_runs_in_feature) -> None:
    """Without s3:ListBucketVersions on landing, ingest's listing is refused in AWS: the check says so."""
    workspace = workspaces[Stage.FEATURE]
    role_id = lambda_functions(workspace)["ingest"]["Role"]["Fn::GetAtt"][0]
    statements = [
        {**s, "Action": [a for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]}
        for s in role_statements(workspace, role_id)
    ]
    for statement in statements:
        statement["Action"] = [a for a in statement["Action"] if a != "s3:ListBucketVersions"]
    executions = executions_of(workspace)
    assert ("ListObjectVersions", "s3:ListBucketVersions", "Landing") in missing(
        statements, handler_runs_in_feature["ingest"].api_calls, executions
    )
    assert ("DeleteObject", "s3:DeleteObjectVersion", "Raw/*") in missing(
        statements, [ApiCall("s3", "DeleteObject", BUCKETS["raw"], versioned=True)], executions
    ), "raw is write-once: ingest may not delete a version there"
    dispatch = lambda_functions(workspace)["dispatch"]["Role"]["Fn::GetAtt"][0]
    assert ("StopExecution", "states:StopExecution", "Pipeline") in missing(
        role_statements(workspace, dispatch), [ApiCall("stepfunctions", "StopExecution")], executions
    ), "dispatch starts executions and counts them, nothing else"
    promote = lambda_functions(workspace)["promote"]["Role"]["Fn::GetAtt"][0]
    assert ("StartJobRun", "glue:StartJobRun", "StagingToCurated:job") not in missing(
        role_statements(workspace, promote), [ApiCall("glue", "StartJobRun")], executions
    )
    assert ("StartJobRun", "glue:StartJobRun", "StagingToCurated:job") in missing(
        role_statements(workspace, dispatch), [ApiCall("glue", "StartJobRun")], executions
    ), "only promote starts the promotion's job"


def test_the_check_holds_an_item_call_to_the_statements_leading_keys(combinations, handler_runs_in_feature) -> None:
    """The extractor may read and move its own position only: a GetItem of another source's position, or of a
    file's record, is refused by its role's dynamodb:LeadingKeys condition, and the check says so."""
    workspace = combinations[MINIMAL_REF]
    role_id = lambda_functions(workspace)["extract"]["Role"]["Fn::GetAtt"][0]
    statements = role_statements(workspace, role_id)
    executions = executions_of(workspace)
    own = ApiCall("dynamodb", "GetItem", key="source-position:clinic/appointments")
    assert missing(statements, [own], executions) == set()
    own_file = ApiCall("dynamodb", "UpdateItem", key="clinic/appointments/created_at=20261122T103005Z/x.csv")
    assert missing(statements, [own_file], executions) == set(), "the records of its own files"
    for other in ("source-position:diabetes/patients", "diabetes/patients/created_at=20261122T103005Z/x.csv"):
        for operation in ("GetItem", "UpdateItem"):
            assert missing(statements, [ApiCall("dynamodb", operation, key=other)], executions) == {
                (operation, f"dynamodb:{operation}", f"Ledger#{other}")
            }
    elsewhere = ApiCall("s3", "PutObject", BUCKETS["raw"], key="diabetes/patients/created_at=20261122T103005Z/x.csv")
    assert missing(statements, [elsewhere], executions), "raw outside its table's prefix is not its to write"
