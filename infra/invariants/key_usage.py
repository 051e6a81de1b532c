"""Rule: whoever may write to (or read from) a resource encrypted with a customer-managed KMS key may
also use that key for it.

AWS checks the key separately from the resource: `sns:Publish` to a topic encrypted with a customer key
is denied unless the publisher may also call `kms:GenerateDataKey*` and `kms:Decrypt` on that key,
through its own policy (when the key policy trusts the account, as CDK's default key policy does) or
through the key policy (the only way for a service principal such as cloudwatch.amazonaws.com). Neither
cdk-nag nor the emulator checks this; a missing grant shows only as lost messages in a real account.

Who writes or reads is found in every stack of the workspace:
- identity policies of roles (inline, `AWS::IAM::Policy`, the workspace's managed policies), e.g. a
  Step Functions role whose `SnsPublish` task got `sns:Publish`;
- resource policies (topic, queue and bucket policies), e.g. `events.amazonaws.com` allowed to publish;
- services that publish because a resource names the topic: an alarm's actions (CloudWatch) and a
  rule's targets (EventBridge, or the target's role when it has one).

To cover another encrypted resource type, add an `EncryptedKind` to `KINDS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.invariants.cfn import ACCOUNT, ResourceId, Statement, Templates, Workspace, principal_matches

WRITE_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
"""What a writer needs on the key (SNS, SQS and S3 multipart uploads all need Decrypt as well)."""
READ_KEY_ACTIONS = ("kms:Decrypt",)


@dataclass(frozen=True)
class EncryptedKind:
    """A resource type that can be encrypted with a customer-managed key, and what using it needs.

    `writes`/`reads`: actions (on the resource) whose caller uses the key. `service`: a service principal
    that uses the key itself whoever calls (CloudWatch Logs), checked in the key policy only.
    """

    type: str
    key_property: tuple[str, ...]
    policy_type: str | None = None  # its resource policy's type, and the property naming the resources
    policy_targets: str | None = None
    writes: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    service: str | None = None


KINDS = (
    EncryptedKind("AWS::SNS::Topic", ("KmsMasterKeyId",), "AWS::SNS::TopicPolicy", "Topics", writes=("sns:Publish",)),
    EncryptedKind(
        "AWS::SQS::Queue",
        ("KmsMasterKeyId",),
        "AWS::SQS::QueuePolicy",
        "Queues",
        writes=("sqs:SendMessage",),
        reads=("sqs:ReceiveMessage",),
    ),
    EncryptedKind(
        "AWS::S3::Bucket",
        ("BucketEncryption",),
        "AWS::S3::BucketPolicy",
        "Bucket",
        writes=("s3:PutObject",),
        reads=("s3:GetObject",),
    ),
    # Log events are encrypted by CloudWatch Logs itself: callers of logs:PutLogEvents need no key
    # permission, the regional service principal needs it in the key policy.
    EncryptedKind("AWS::Logs::LogGroup", ("KmsKeyId",), service="logs.*.amazonaws.com"),
)
_SERVICE_KEY_ACTIONS = ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt")


@dataclass(frozen=True, order=True)
class Finding:
    """A principal granted `action` on `resource` that may not use its `key` as that needs."""

    principal: str
    resource: str
    action: str
    key: str
    missing: tuple[str, ...]
    granted_by: str

    def __str__(self) -> str:
        where = (
            "the key policy must allow it"
            if self.principal.startswith("service:")
            else "neither its policies nor the key policy allow it"
        )
        return (
            f"{self.principal} may {self.action} on {self.resource} (granted by {self.granted_by}) but not "
            f"{', '.join(self.missing)} on its key {self.key}: {where}"
        )


def key_usage(templates: Templates) -> list[Finding]:
    """Every grant on a resource encrypted with a workspace key whose principal may not use the key."""
    workspace = Workspace(templates)
    identity = workspace.identity_statements()
    findings: set[Finding] = set()
    for kind in KINDS:
        for resource, definition in workspace.resources(kind.type):
            key = _key_of(workspace, resource, definition.get("Properties", {}), kind)
            if key is None:
                continue
            if kind.service is not None:
                missing = _missing(workspace, identity, f"service:{kind.service}", _SERVICE_KEY_ACTIONS, key)
                if missing:
                    findings.add(
                        Finding(
                            f"service:{kind.service}",
                            str(resource),
                            "encrypt its data",
                            str(key),
                            missing,
                            "the service itself",
                        )
                    )
            for principal, action, granted_by in _grants(workspace, identity, kind, resource):
                needed = WRITE_KEY_ACTIONS if action in kind.writes else READ_KEY_ACTIONS
                missing = _missing(workspace, identity, principal, needed, key)
                if missing:
                    findings.add(Finding(principal, str(resource), action, str(key), missing, str(granted_by)))
    return sorted(findings)


def _key_of(
    workspace: Workspace, resource: ResourceId, props: Mapping[str, Any], kind: EncryptedKind
) -> ResourceId | None:
    """The workspace's KMS key that encrypts the resource; None for none, an AWS-managed or outside key."""
    value: Any = props
    for name in kind.key_property:
        value = value.get(name) if isinstance(value, Mapping) else None
    keys = {k for k in workspace.refs(resource.stack, value) if workspace.type_of(k) == "AWS::KMS::Key"}
    return min(keys) if keys else None


def _grants(
    workspace: Workspace, identity: dict[str, list[Statement]], kind: EncryptedKind, resource: ResourceId
) -> set[tuple[str, str, ResourceId]]:
    """(principal, action, where granted) for each principal that may write to or read from `resource`."""
    actions = (*kind.writes, *kind.reads)
    found: set[tuple[str, str, ResourceId]] = set()
    for principal, statements in identity.items():
        for statement in statements:
            if statement.allows and workspace.covers(statement, resource):
                found |= {(principal, a, statement.holder) for a in actions if statement.matches_action(a)}
    if kind.policy_type is not None and kind.policy_targets is not None:
        for policy, definition in workspace.resources(kind.policy_type):
            props = definition.get("Properties", {})
            if resource not in workspace.refs(policy.stack, props.get(kind.policy_targets)):
                continue
            for statement in workspace.statements(policy, props.get("PolicyDocument")):
                if statement.allows:
                    principals = workspace.principals(statement) - {ACCOUNT}  # the account: its roles, above
                    found |= {(p, a, policy) for p in principals for a in actions if statement.matches_action(a)}
    if kind.writes:
        found |= {(p, kind.writes[0], holder) for p, holder in _notifiers(workspace, resource)}
    return found


def _notifiers(workspace: Workspace, resource: ResourceId) -> set[tuple[str, ResourceId]]:
    """Services that send to `resource` because another resource names it: alarm actions (CloudWatch)
    and rule targets (EventBridge, or the target's role if it has one)."""
    found: set[tuple[str, ResourceId]] = set()
    for alarm, definition in workspace.resources("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"):
        props = definition.get("Properties", {})
        actions = [props.get(p) for p in ("AlarmActions", "OKActions", "InsufficientDataActions")]
        if resource in workspace.refs(alarm.stack, actions):
            found.add(("service:cloudwatch.amazonaws.com", alarm))
    for rule, definition in workspace.resources("AWS::Events::Rule"):
        for target in definition.get("Properties", {}).get("Targets", []):
            if resource in workspace.refs(rule.stack, target.get("Arn")):
                roles = workspace.roles_of(rule.stack, target["RoleArn"]) if "RoleArn" in target else set()
                found |= {(r, rule) for r in roles} or {("service:events.amazonaws.com", rule)}
    return found


def _missing(
    workspace: Workspace,
    identity: dict[str, list[Statement]],
    principal: str,
    key_actions: tuple[str, ...],
    key: ResourceId,
) -> tuple[str, ...]:
    """The key actions `principal` may not use on `key`: an Allow in the key policy naming it, or (for a
    role, when the key policy allows the account the action) an Allow in its identity policy on the key;
    an unconditional Deny in either wins."""
    key_policy = workspace.statements(key, workspace.properties(key).get("KeyPolicy"))
    own = identity.get(principal, []) if not principal.startswith("service:") else []

    def may(action: str) -> bool:
        relevant = [s for s in key_policy if s.matches_action(action)]
        named = [s for s in relevant if principal_matches(principal, workspace.principals(s))]
        mine = [s for s in own if s.matches_action(action) and workspace.covers(s, key)]
        if any(s.unconditional_deny for s in (*named, *mine)):
            return False
        if any(s.allows for s in named):
            return True
        account_trusted = any(s.allows and ACCOUNT in workspace.principals(s) for s in relevant)
        return account_trusted and any(s.allows for s in mine)

    return tuple(a + ("*" if a == "kms:GenerateDataKey" else "") for a in key_actions if not may(a))
