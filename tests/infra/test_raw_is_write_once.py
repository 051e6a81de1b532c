"""Raw is the one copy of what landed: no role of any workspace (the Lambdas', the Glue jobs', the notebook's,
MLflow's, the service's tasks', CDK's own) may delete from it, by any policy (inline, managed, or an AWS one
attached by ARN). Expiry is the bucket's lifecycle rules' alone, and an erasure runs as the deploy role
(README: "What is kept where"); in a feature workspace, CDK's auto-delete provider empties it when the branch's
workspace is destroyed, through the bucket's policy. IAM enforces this in AWS; the emulator authorises
everything, so it is checked on the synthesised templates."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

from infra.naming import Component

DESTRUCTIVE = ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:DeleteBucket", "s3:PutLifecycleConfiguration")
"""What removes an object of a bucket, or makes its lifecycle do so."""
HARMLESS_AWS_POLICIES = {"service-role/AWSLambdaBasicExecutionRole"}
AWS_POLICY = re.compile(r":iam::aws:policy/([A-Za-z0-9/_+=,.@-]+)")
"""AWS managed policies attached to roles here, none of which reaches S3."""


def identity_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(logical id, statement) of every Allow statement of a policy a role holds: AWS::IAM::Policy,
    AWS::IAM::ManagedPolicy and a role's own `Policies`."""
    for lid, resource in template.get("Resources", {}).items():
        props = resource.get("Properties", {})
        documents = []
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(props["PolicyDocument"])
        if resource["Type"] == "AWS::IAM::Role":
            documents += [policy["PolicyDocument"] for policy in props.get("Policies", [])]
        for document in documents:
            for statement in document["Statement"]:
                if statement.get("Effect") == "Allow":
                    yield lid, statement


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def destructive(statement: dict[str, Any]) -> bool:
    return any(fnmatchcase(target, action) for action in listed(statement["Action"]) for target in DESTRUCTIVE)


def raw_buckets(template: dict[str, Any]) -> set[str]:
    return {lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::S3::Bucket" and lid.startswith("Raw")}


def may_reach_raw(resource: Any, raw: set[str]) -> bool:
    """Whether a statement's resource may be the raw bucket or its objects: a reference to it (in its stack, or
    imported: an export or output named after it), or a wildcard any bucket matches."""
    text = json.dumps(resource)
    if any(f'"{lid}"' in text for lid in raw) or (
        "Raw" in text and ("ImportValue" in text or "GetStackOutput" in text)
    ):
        return True
    return any(isinstance(r, str) and fnmatchcase("arn:aws:s3:::any-bucket/key", r) for r in listed(resource))


def deletes_on_raw(templates: dict[str, dict[str, Any]]) -> list[str]:
    raw = {lid for template in templates.values() for lid in raw_buckets(template)}
    return [
        f"{stack}/{lid}: {statement['Action']} on {json.dumps(statement['Resource'])[:120]}"
        for stack, template in templates.items()
        for lid, statement in identity_statements(template)
        if destructive(statement) and may_reach_raw(statement["Resource"], raw)
    ]


def workspace_templates(workspace) -> dict[str, dict[str, Any]]:
    return {c.value: t.to_json() for c, t in workspace.templates.items()}


def test_no_role_of_any_workspace_may_delete_from_raw(workspaces, public_service) -> None:
    for workspace in [*workspaces.values(), public_service[1]]:
        templates = workspace_templates(workspace)
        assert deletes_on_raw(templates) == [], workspace.target.workspace
        raw = raw_buckets(templates[Component.STORAGE.value])
        reads = [
            lid
            for lid, statement in identity_statements(templates[Component.STORAGE.value])
            if may_reach_raw(statement["Resource"], raw) and "s3:GetObject" in listed(statement["Action"])
        ]
        assert reads, "the check sees the raw bucket's own grants (it would see a delete among them)"
        attached = {
            name
            for template in templates.values()
            for r in template["Resources"].values()
            if r["Type"] == "AWS::IAM::Role"
            for arn in r["Properties"].get("ManagedPolicyArns", [])
            for name in AWS_POLICY.findall(json.dumps(arn))
        }
        assert attached <= HARMLESS_AWS_POLICIES, attached
        deleters = [
            statement["Principal"]
            for r in templates[Component.STORAGE.value]["Resources"].values()
            if r["Type"] == "AWS::S3::BucketPolicy" and json.dumps(r["Properties"]["Bucket"]).count("Raw")
            for statement in r["Properties"]["PolicyDocument"]["Statement"]
            if statement["Effect"] == "Allow" and destructive(statement)
        ]
        if workspace.target.stage.is_persistent:
            assert deleters == [], "raw's bucket policy lets no one delete in int and prd"
        else:  # a feature workspace's destroy empties its buckets (CDK's auto-delete provider), nothing else
            (principal,) = deleters
            assert principal["AWS"]["Fn::GetAtt"][0].startswith("CustomS3AutoDeleteObjectsCustomResourceProvider")


def test_the_check_finds_a_delete_on_raw_however_it_is_granted() -> None:
    raw = {"Raw72517081": {"Type": "AWS::S3::Bucket", "Properties": {}}}
    objects = {"Fn::Join": ["", [{"Fn::GetAtt": ["Raw72517081", "Arn"]}, "/*"]]}
    imported = {"Fn::Join": ["", [{"Fn::ImportValue": "dataplat-int-storage:ExportsOutputFnGetAttRaw72517081Arn"}]]}

    def template(statement: dict[str, Any], kind: str = "AWS::IAM::Policy") -> dict[str, Any]:
        document = {"Statement": [{"Effect": "Allow", **statement}]}
        policy = {"Type": kind, "Properties": {"PolicyDocument": document}}
        if kind == "AWS::IAM::Role":
            policy = {"Type": kind, "Properties": {"Policies": [{"PolicyDocument": document}]}}
        return {"Resources": {**raw, "P": policy}}

    for statement, kind in (
        ({"Action": "s3:DeleteObject", "Resource": objects}, "AWS::IAM::Policy"),
        ({"Action": ["s3:Delete*"], "Resource": objects}, "AWS::IAM::ManagedPolicy"),
        ({"Action": "s3:*", "Resource": "*"}, "AWS::IAM::Role"),
        ({"Action": "*", "Resource": "arn:aws:s3:::*"}, "AWS::IAM::Policy"),
        ({"Action": "s3:DeleteObjectVersion", "Resource": imported}, "AWS::IAM::Policy"),
    ):
        assert deletes_on_raw({"s": template(statement, kind)}), statement
    assert not deletes_on_raw({"s": template({"Action": "s3:GetObject", "Resource": objects})})
    assert not deletes_on_raw({"s": template({"Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::landing/*"})})
