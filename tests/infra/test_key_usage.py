"""The key-usage invariant: compliant and non-compliant mini templates side by side, then every
synthesised stage, then the synthesised templates broken on purpose (the rule must notice)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from infra.invariants.key_usage import key_usage
from infra.naming import Component
from infra.workspace import Stage

ACCOUNT_ROOT = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::111111111111:root"]]}
TRUST_ACCOUNT = {"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ROOT}, "Action": "kms:*", "Resource": "*"}
KEY_USE = ["kms:Decrypt", "kms:GenerateDataKey*"]


def _key(*statements: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "AWS::KMS::Key",
        "Properties": {"KeyPolicy": {"Version": "2012-10-17", "Statement": list(statements)}},
    }


def _topic(key: Any = None) -> dict[str, Any]:
    return {"Type": "AWS::SNS::Topic", "Properties": {"KmsMasterKeyId": key} if key else {}}


def _role(service: str = "states.amazonaws.com") -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]
            }
        },
    }


def _policy(role: Any, *statements: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Policy",
        "Properties": {"PolicyName": "P", "Roles": [role], "PolicyDocument": {"Statement": list(statements)}},
    }


def _allow(action: Any, resource: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def _topic_policy(topic: str, principal: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "AWS::SNS::TopicPolicy",
        "Properties": {
            "Topics": [{"Ref": topic}],
            "PolicyDocument": {
                "Statement": [
                    {"Effect": "Allow", "Principal": principal, "Action": "sns:Publish", "Resource": {"Ref": topic}}
                ]
            },
        },
    }


def _stack(**resources: dict[str, Any]) -> dict[str, Any]:
    return {"Resources": resources}


KEY_ARN = {"Fn::GetAtt": ["Key", "Arn"]}
PUBLISH = _allow("sns:Publish", {"Ref": "Topic"})


# -- a role that publishes ------------------------------------------------------------------------------


def _publisher(*key_statements: dict[str, Any]) -> dict[str, Any]:
    return {
        "app": _stack(
            Key=_key(TRUST_ACCOUNT),
            Topic=_topic(KEY_ARN),
            Role=_role(),
            Policy=_policy({"Ref": "Role"}, PUBLISH, *key_statements),
        )
    }


def test_a_publisher_that_may_use_the_key_passes() -> None:
    assert key_usage(_publisher(_allow(KEY_USE, KEY_ARN))) == []


def test_a_publisher_without_the_key_is_named_with_what_it_lacks() -> None:
    (finding,) = key_usage(_publisher())
    assert (finding.principal, finding.resource, finding.action, finding.key, finding.missing, finding.granted_by) == (
        "app/Role",
        "app/Topic",
        "sns:Publish",
        "app/Key",
        ("kms:GenerateDataKey*", "kms:Decrypt"),
        "app/Policy",
    )
    assert "neither its policies nor the key policy" in str(finding)


@pytest.mark.parametrize("actions", [["kms:*"], ["kms:GenerateDataKey*", "kms:Decrypt"], ["*"]])
def test_wildcard_key_actions_and_resources_count(actions: list[str]) -> None:
    assert key_usage(_publisher(_allow(actions, "*"))) == []


def test_half_the_key_use_is_not_enough() -> None:
    (finding,) = key_usage(_publisher(_allow(["kms:GenerateDataKeyWithoutPlaintext", "kms:Decrypt"], KEY_ARN)))
    assert finding.missing == ("kms:GenerateDataKey*",)


def test_the_publishers_policy_counts_only_if_the_key_policy_trusts_the_account() -> None:
    templates = _publisher(_allow(KEY_USE, KEY_ARN))
    templates["app"]["Resources"]["Key"] = _key()  # no account statement: identity policies do not apply
    assert [f.principal for f in key_usage(templates)] == ["app/Role"]


def test_a_key_policy_naming_the_publisher_is_enough() -> None:
    templates = _publisher()
    templates["app"]["Resources"]["Key"] = _key(
        {"Effect": "Allow", "Action": KEY_USE, "Resource": "*", "Principal": {"AWS": {"Fn::GetAtt": ["Role", "Arn"]}}}
    )
    assert key_usage(templates) == []


def test_an_unconditional_deny_on_the_key_wins() -> None:
    templates = _publisher(_allow(KEY_USE, KEY_ARN), {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"})
    assert [f.missing for f in key_usage(templates)] == [("kms:Decrypt",)]


def test_an_aws_managed_key_or_no_key_is_not_the_rules_business() -> None:
    for topic in (_topic("alias/aws/sns"), _topic()):
        templates = {"app": _stack(Topic=topic, Role=_role(), Policy=_policy({"Ref": "Role"}, PUBLISH))}
        assert key_usage(templates) == []


# -- a service that publishes (resource policy, alarm, rule) ----------------------------------------------

EVENTS = {"Service": "events.amazonaws.com"}


def _service_publisher(*key_statements: dict[str, Any]) -> dict[str, Any]:
    return {
        "monitoring": _stack(
            Key=_key(TRUST_ACCOUNT, *key_statements), Topic=_topic(KEY_ARN), TopicPolicy=_topic_policy("Topic", EVENTS)
        )
    }


def test_a_service_allowed_by_the_key_policy_passes() -> None:
    allowed = {
        "Effect": "Allow",
        "Principal": EVENTS,
        "Action": KEY_USE,
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:SourceAccount": "111111111111"}},
    }
    assert key_usage(_service_publisher(allowed)) == []


def test_a_service_without_the_key_policy_fails_even_though_the_account_is_trusted() -> None:
    (finding,) = key_usage(_service_publisher())
    assert (finding.principal, finding.granted_by) == ("service:events.amazonaws.com", "monitoring/TopicPolicy")
    assert "the key policy must allow it" in str(finding)


def test_alarm_actions_and_rule_targets_publish_as_their_services() -> None:
    monitoring = _stack(Key=_key(TRUST_ACCOUNT), Topic=_topic(KEY_ARN))
    monitoring["Outputs"] = {"TopicArn": {"Value": {"Ref": "Topic"}}}
    topic_arn = _output_of("monitoring", "TopicArn")
    templates = {
        "monitoring": monitoring,
        "etl": _stack(
            Alarm={"Type": "AWS::CloudWatch::Alarm", "Properties": {"OKActions": [topic_arn]}},
            Rule={"Type": "AWS::Events::Rule", "Properties": {"Targets": [{"Id": "T", "Arn": topic_arn}]}},
        ),
    }
    assert {(f.principal, f.granted_by) for f in key_usage(templates)} == {
        ("service:cloudwatch.amazonaws.com", "etl/Alarm"),
        ("service:events.amazonaws.com", "etl/Rule"),
    }
    services = {"Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com"]}
    templates["monitoring"]["Resources"]["Key"] = _key(
        TRUST_ACCOUNT, {"Effect": "Allow", "Principal": services, "Action": KEY_USE, "Resource": "*"}
    )
    assert key_usage(templates) == []


# -- across stacks ------------------------------------------------------------------------------------------


def _output_of(stack: str, output: str) -> dict[str, Any]:
    return {"Fn::GetStackOutput": {"StackName": stack, "Region": "eu-west-1", "OutputName": output}}


@pytest.mark.parametrize("reference", ["weak", "export"])
def test_a_publisher_in_another_stack_is_checked_against_the_producers_key(reference: str) -> None:
    def ref(output: str) -> dict[str, Any]:
        return _output_of("monitoring", output) if reference == "weak" else {"Fn::ImportValue": f"monitoring:{output}"}

    monitoring = _stack(Key=_key(TRUST_ACCOUNT), Topic=_topic(KEY_ARN))
    monitoring["Outputs"] = {
        "TopicArn": {"Value": {"Ref": "Topic"}, "Export": {"Name": "monitoring:TopicArn"}},
        "KeyArn": {"Value": KEY_ARN, "Export": {"Name": "monitoring:KeyArn"}},
    }
    without = {
        "monitoring": monitoring,
        "etl": _stack(Role=_role(), Policy=_policy({"Ref": "Role"}, _allow("sns:Publish", ref("TopicArn")))),
    }
    (finding,) = key_usage(without)
    assert (finding.principal, finding.resource, finding.key) == ("etl/Role", "monitoring/Topic", "monitoring/Key")

    with_key = copy.deepcopy(without)
    with_key["etl"]["Resources"]["Policy"]["Properties"]["PolicyDocument"]["Statement"].append(
        _allow(KEY_USE, ref("KeyArn"))
    )
    assert key_usage(with_key) == []


def test_a_key_grant_on_another_key_does_not_count() -> None:
    templates = _publisher(_allow(KEY_USE, {"Fn::GetAtt": ["OtherKey", "Arn"]}))
    templates["app"]["Resources"]["OtherKey"] = _key(TRUST_ACCOUNT)
    assert [f.principal for f in key_usage(templates)] == ["app/Role"]


# -- other encrypted resources ---------------------------------------------------------------------------


def test_a_reader_of_a_kms_encrypted_bucket_needs_decrypt() -> None:
    bucket = {
        "Type": "AWS::S3::Bucket",
        "Properties": {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEY_ARN}}
                ]
            }
        },
    }
    objects = {"Fn::Join": ["", [{"Fn::GetAtt": ["Bucket", "Arn"]}, "/*"]]}
    templates = {
        "app": _stack(
            Key=_key(TRUST_ACCOUNT),
            Bucket=bucket,
            Role=_role("lambda.amazonaws.com"),
            Policy=_policy({"Ref": "Role"}, _allow("s3:GetObject*", objects)),
        )
    }
    (finding,) = key_usage(templates)
    assert (finding.action, finding.missing) == ("s3:GetObject", ("kms:Decrypt",))
    templates["app"]["Resources"]["Policy"]["Properties"]["PolicyDocument"]["Statement"].append(
        _allow("kms:Decrypt", KEY_ARN)
    )
    assert key_usage(templates) == []


def test_an_encrypted_log_group_needs_the_logs_service_in_the_key_policy() -> None:
    group = {"Type": "AWS::Logs::LogGroup", "Properties": {"KmsKeyId": KEY_ARN}}
    (finding,) = key_usage({"app": _stack(Key=_key(TRUST_ACCOUNT), Logs=group)})
    assert finding.principal == "service:logs.*.amazonaws.com"
    logs = {"Service": {"Fn::Join": ["", ["logs.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}}
    key = _key(
        TRUST_ACCOUNT,
        {
            "Effect": "Allow",
            "Principal": logs,
            "Resource": "*",
            "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:GenerateDataKey*"],
        },
    )
    assert key_usage({"app": _stack(Key=key, Logs=group)}) == []


# -- the synthesised stages ------------------------------------------------------------------------------


def _templates(workspace) -> dict[str, dict[str, Any]]:
    return {workspace.stacks[c].stack_name: copy.deepcopy(t.to_json()) for c, t in workspace.templates.items()}


def test_every_stage_lets_each_publisher_use_its_key(workspace) -> None:
    findings = key_usage(_templates(workspace))
    assert findings == [], "\n".join(map(str, findings))


POLICY_TYPES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")  # int and prd have managed ones only


def _resources(templates: dict[str, dict[str, Any]], workspace, component: Component, *kinds: str):
    return [r for r in templates[workspace.stacks[component].stack_name]["Resources"].values() if r["Type"] in kinds]


@pytest.mark.parametrize("stage", [Stage.INT, Stage.PRD])  # feature: a topic without a key (cost)
def test_the_pipeline_without_its_key_grant_is_caught(app_and_workspaces, stage) -> None:
    """The state machine's SnsPublish steps: without the key in the machine role's policy (as before the
    fix) the rule names the pipeline role."""
    workspace = app_and_workspaces[1][stage]
    templates = _templates(workspace)
    for policy in _resources(templates, workspace, Component.ETL, *POLICY_TYPES):
        document = policy["Properties"]["PolicyDocument"]
        document["Statement"] = [s for s in document["Statement"] if "kms:" not in str(s["Action"])]
    findings = key_usage(templates)
    assert [(f.principal.split("/")[1].startswith("PipelineRole"), f.action) for f in findings] == [
        (True, "sns:Publish")
    ], "\n".join(map(str, findings))


@pytest.mark.parametrize("stage", [Stage.INT, Stage.PRD])  # feature: a topic without a key (cost)
def test_events_without_the_key_policy_are_caught_for_every_rule(app_and_workspaces, stage) -> None:
    """EventBridge publishes for the Glue-job-failed rule: drop events.amazonaws.com from the key policy
    and the rule (through its SNS target and through the topic policy) is named."""
    workspace = app_and_workspaces[1][stage]
    templates = _templates(workspace)
    (key,) = _resources(templates, workspace, Component.MONITORING, "AWS::KMS::Key")
    for statement in key["Properties"]["KeyPolicy"]["Statement"]:
        service = statement.get("Principal", {}).get("Service")
        if service is not None:
            kept = [s for s in ([service] if isinstance(service, str) else service) if s != "events.amazonaws.com"]
            statement["Principal"]["Service"] = kept
    findings = key_usage(templates)
    assert {f.principal for f in findings} == {"service:events.amazonaws.com"}
    holders = {f.granted_by.split("/")[1] for f in findings}
    assert any(h.startswith("GlueJobFailed") for h in holders), holders
    assert any(h.startswith("AlarmTopicPolicy") for h in holders), holders


def test_int_and_prd_encrypt_data_and_logs_with_the_workspace_key(app_and_workspaces) -> None:
    """Patient data at rest under a key of the workspace's own (HIPAA Security, NIST 800-53): every data bucket
    and every log group; the access-log bucket alone keeps SSE-S3 (S3 and ELB deliver logs to no other)."""
    _, workspaces = app_and_workspaces
    for stage, workspace in workspaces.items():
        templates = _templates(workspace)
        buckets = {
            name: r for t in templates.values() for name, r in t["Resources"].items() if r["Type"] == "AWS::S3::Bucket"
        }
        algorithms = {
            name: r["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
                "ServerSideEncryptionByDefault"
            ]["SSEAlgorithm"]
            for name, r in buckets.items()
        }
        groups = [r for t in templates.values() for r in t["Resources"].values() if r["Type"] == "AWS::Logs::LogGroup"]
        if stage.is_persistent:
            assert {n for n, a in algorithms.items() if a != "aws:kms"} == {
                n for n in algorithms if n.startswith("AccessLogs")
            }, stage
            assert groups and all("KmsKeyId" in g["Properties"] for g in groups), stage
        else:
            assert set(algorithms.values()) == {"AES256"} and not any("KmsKeyId" in g["Properties"] for g in groups)


@pytest.mark.parametrize("stage", [Stage.INT, Stage.PRD])
def test_a_bucket_reader_without_the_key_grant_is_caught(app_and_workspaces, stage) -> None:
    """Drop the key statements from the storage stack's access policies: every Glue job, Lambda and role
    that reads or writes a data bucket is named."""
    workspace = app_and_workspaces[1][stage]
    templates = _templates(workspace)
    for policy in _resources(templates, workspace, Component.STORAGE, *POLICY_TYPES):
        document = policy["Properties"]["PolicyDocument"]
        document["Statement"] = [s for s in document["Statement"] if "kms:" not in str(s["Action"])]
    principals = {f.principal.split("/")[1] for f in key_usage(templates) if f.resource.split("/")[1] != "AccessLogs"}
    for role in (
        "RawToStagingRole",
        "StagingToCuratedRole",
        "IngestRole",
        "ValidateRole",
        "GateRole",
        "NotebookRole",
        "ServiceTaskDefTaskRole",
        "MlflowRole",
    ):
        assert any(p.startswith(role) for p in principals), (role, sorted(principals))


@pytest.mark.parametrize("stage", [Stage.INT, Stage.PRD])
def test_log_groups_without_the_logs_service_in_the_key_policy_are_caught(app_and_workspaces, stage) -> None:
    workspace = app_and_workspaces[1][stage]
    templates = _templates(workspace)
    (key,) = _resources(templates, workspace, Component.STORAGE, "AWS::KMS::Key")
    key["Properties"]["KeyPolicy"]["Statement"] = [
        s for s in key["Properties"]["KeyPolicy"]["Statement"] if "Service" not in s.get("Principal", {})
    ]
    findings = key_usage(templates)
    assert {f.principal for f in findings} == {"service:logs.*.amazonaws.com"}
    assert len(findings) == sum(
        len(_resources(templates, workspace, c, "AWS::Logs::LogGroup")) for c in workspace.stacks
    )
