"""The templates of one workspace read as one: resources by stack and logical ID, references followed
across stacks, and IAM policy statements matched against actions, resources and principals.

Stacks of a workspace refer to each other through weak references (`Fn::GetStackOutput`, what this app
synthesises) or exports (`Fn::ImportValue`); both are followed back to the producer's resource, so a
role in one stack and a key in another are compared as the same objects CloudFormation deploys.

Simplifications, all in the direction of the platform (one account, one region per workspace):
conditions are not evaluated (a conditional Allow counts as an Allow, a conditional Deny is ignored);
the partition, region and account parts of a literal ARN pattern are taken to match; a literal ARN
pattern matches a resource whose name CloudFormation generates only if it wildcards the whole name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

Json = Any
Templates = Mapping[str, Mapping[str, Any]]
"""Stack name -> synthesised template (e.g. `Template.to_json()`)."""

ACCOUNT = "account"
"""Principal label of a whole account (`arn:...:root` or an account ID): it enables identity policies."""
ANYONE = "*"
_GENERATED = "\x00generated"  # stands for a name CloudFormation generates: only '*' covers it
_PSEUDO = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}  # other pseudo parameters render as '*'


@dataclass(frozen=True, order=True)
class ResourceId:
    """A resource of the workspace: its stack and logical ID."""

    stack: str
    logical_id: str

    def __str__(self) -> str:
        return f"{self.stack}/{self.logical_id}"


@dataclass(frozen=True)
class Statement:
    """One statement of a policy document, with the stack its references resolve in and its holder."""

    stack: str
    holder: ResourceId
    raw: Mapping[str, Any]

    @property
    def allows(self) -> bool:
        return self.raw.get("Effect") == "Allow"

    @property
    def unconditional_deny(self) -> bool:
        return self.raw.get("Effect") == "Deny" and not self.raw.get("Condition")

    def matches_action(self, action: str) -> bool:
        """Whether the statement applies to `action` (wildcards and NotAction honoured; case-insensitive)."""
        if "NotAction" in self.raw:
            return not _any_action(_as_list(self.raw["NotAction"]), action)
        return _any_action(_as_list(self.raw.get("Action")), action)


def _as_list(value: Json) -> list[Json]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _any_action(patterns: list[Json], action: str) -> bool:
    return any(isinstance(p, str) and fnmatchcase(action.lower(), p.lower()) for p in patterns)


def _arn_shape(resource_type: str, properties: Mapping[str, Any]) -> tuple[str, tuple[str, ...]] | None:
    """(service, resource parts of the ARN) of a resource, the generated name as `_GENERATED`."""

    def name(prop: str) -> str:
        value = properties.get(prop)
        return value if isinstance(value, str) else _GENERATED

    shapes: dict[str, tuple[str, tuple[str, ...]]] = {
        "AWS::KMS::Key": ("kms", (f"key/{_GENERATED}",)),
        "AWS::SNS::Topic": ("sns", (name("TopicName"),)),
        "AWS::SQS::Queue": ("sqs", (name("QueueName"),)),
        "AWS::S3::Bucket": ("s3", (name("BucketName"), f"{name('BucketName')}/{_GENERATED}")),
        "AWS::Logs::LogGroup": ("logs", (f"log-group:{name('LogGroupName')}", f"log-group:{name('LogGroupName')}:*")),
    }
    return shapes.get(resource_type)


class Workspace:
    """All templates of a workspace, with references resolved across them."""

    def __init__(self, templates: Templates) -> None:
        self.templates = templates

    def resources(self, *types: str) -> Iterator[tuple[ResourceId, Mapping[str, Any]]]:
        for stack, template in sorted(self.templates.items()):
            for logical_id, resource in sorted(template.get("Resources", {}).items()):
                if not types or resource.get("Type") in types:
                    yield ResourceId(stack, logical_id), resource

    def resource(self, rid: ResourceId) -> Mapping[str, Any]:
        resources: Mapping[str, Mapping[str, Any]] = self.templates.get(rid.stack, {}).get("Resources", {})
        return resources.get(rid.logical_id, {})

    def type_of(self, rid: ResourceId) -> str | None:
        return self.resource(rid).get("Type")

    def properties(self, rid: ResourceId) -> Mapping[str, Any]:
        properties: Mapping[str, Any] = self.resource(rid).get("Properties", {})
        return properties

    # -- references -------------------------------------------------------------------------------------

    def refs(self, stack: str, expr: Json) -> set[ResourceId]:
        """The resources `expr` refers to (Ref, Fn::GetAtt), followed through Fn::GetStackOutput and
        Fn::ImportValue to the producer's resource; pseudo parameters and parameters refer to none."""
        if isinstance(expr, list):
            return set().union(*(self.refs(stack, e) for e in expr))
        if not isinstance(expr, Mapping):
            return set()
        if len(expr) == 1:
            ((function, argument),) = expr.items()
            if function == "Ref" and isinstance(argument, str):
                exists = argument in self.templates.get(stack, {}).get("Resources", {})
                return {ResourceId(stack, argument)} if exists else set()
            if function == "Fn::GetAtt":
                logical_id = argument[0] if isinstance(argument, list) else str(argument).split(".", 1)[0]
                return {ResourceId(stack, logical_id)}
            if function == "Fn::GetStackOutput" and isinstance(argument, Mapping):
                return self._output_refs(argument.get("StackName"), argument.get("OutputName"))
            if function == "Fn::ImportValue":
                return self._export_refs(self.render(stack, argument))
        return set().union(*(self.refs(stack, v) for v in expr.values()))

    def _output_refs(self, producer: Json, output: Json) -> set[ResourceId]:
        if not isinstance(producer, str) or not isinstance(output, str):
            return set()
        value = self.templates.get(producer, {}).get("Outputs", {}).get(output, {}).get("Value")
        return self.refs(producer, value)

    def _export_refs(self, export_name: str | None) -> set[ResourceId]:
        for stack, template in self.templates.items():
            for output in template.get("Outputs", {}).values():
                if export_name is not None and self.render(stack, output.get("Export", {}).get("Name")) == export_name:
                    return self.refs(stack, output.get("Value"))
        return set()

    def render(self, stack: str, expr: Json) -> str | None:
        """A literal string form of `expr` (Fn::Join of strings and pseudo parameters), or None when it
        depends on a resource."""
        if isinstance(expr, str):
            return expr
        if isinstance(expr, Mapping) and len(expr) == 1:
            ((function, argument),) = expr.items()
            if function == "Ref" and isinstance(argument, str) and argument.startswith("AWS::"):
                return _PSEUDO.get(argument, "*")
            if function == "Fn::Join" and isinstance(argument, list) and len(argument) == 2:
                parts = [self.render(stack, part) for part in _as_list(argument[1])]
                if isinstance(argument[0], str) and None not in parts:
                    return argument[0].join(p for p in parts if p is not None)
        return None

    # -- policies ---------------------------------------------------------------------------------------

    def statements(self, holder: ResourceId, document: Json) -> list[Statement]:
        if not isinstance(document, Mapping):
            return []
        return [
            Statement(holder.stack, holder, s) for s in _as_list(document.get("Statement")) if isinstance(s, Mapping)
        ]

    def covers(self, statement: Statement, target: ResourceId) -> bool:
        """Whether the statement's Resource (or NotResource) includes `target`."""
        if "NotResource" in statement.raw:
            return not any(
                self._entry_covers(statement.stack, e, target) for e in _as_list(statement.raw["NotResource"])
            )
        return any(self._entry_covers(statement.stack, e, target) for e in _as_list(statement.raw.get("Resource")))

    def _entry_covers(self, stack: str, entry: Json, target: ResourceId) -> bool:
        referenced = self.refs(stack, entry)
        if referenced:
            return target in referenced
        pattern = self.render(stack, entry)
        if pattern is None:
            return False
        if pattern == "*":
            return True
        shape = _arn_shape(self.type_of(target) or "", self.properties(target))
        parts = pattern.split(":", 5)
        if shape is None or len(parts) < 6 or parts[0] != "arn":
            return False
        service, resources = shape
        return fnmatchcase(service, parts[2]) and any(fnmatchcase(r, parts[5]) for r in resources)

    def principals(self, statement: Statement) -> set[str]:
        """Labels of a resource-policy statement's principals: `service:<name>`, a role's
        `<stack>/<logical ID>`, `role/<name>` for a role outside the workspace, ACCOUNT or ANYONE."""
        principal = statement.raw.get("Principal")
        if principal == "*":
            return {ANYONE}
        if not isinstance(principal, Mapping):
            return set()
        labels = {f"service:{self.render(statement.stack, s)}" for s in _as_list(principal.get("Service"))}
        for entry in _as_list(principal.get("AWS")):
            labels |= self._aws_principal(statement.stack, entry)
        return labels

    def _aws_principal(self, stack: str, entry: Json) -> set[str]:
        referenced = self.refs(stack, entry)
        if referenced:
            return {str(r) for r in referenced if self.type_of(r) == "AWS::IAM::Role"}
        text = self.render(stack, entry) or ""
        if text == "*":
            return {ANYONE}
        if text.endswith(":root") or text.isdigit() or text == "*:root":
            return {ACCOUNT}
        if ":role/" in text:
            return {self.role_label(text.rsplit("/", 1)[1])}
        return set()

    def role_label(self, name: str) -> str:
        """The label of a role known by name: the workspace's role of that RoleName, else `role/<name>`."""
        for rid, resource in self.resources("AWS::IAM::Role"):
            if resource.get("Properties", {}).get("RoleName") == name:
                return str(rid)
        return f"role/{name}"

    def roles_of(self, stack: str, entries: Json) -> set[str]:
        """Role labels of a policy's `Roles` list (references, or names of roles)."""
        labels: set[str] = set()
        for entry in _as_list(entries):
            referenced = self.refs(stack, entry)
            if referenced:
                labels |= {str(r) for r in referenced if self.type_of(r) == "AWS::IAM::Role"}
            elif (name := self.render(stack, entry)) is not None:
                labels.add(self.role_label(name))
        return labels

    def identity_statements(self) -> dict[str, list[Statement]]:
        """Every role's identity-policy statements: inline `Policies`, `AWS::IAM::Policy` and
        `AWS::IAM::ManagedPolicy` attached through `Roles`, managed policies of the workspace named in a
        role's `ManagedPolicyArns`. AWS managed policies are not in the templates and are not read."""
        by_role: dict[str, list[Statement]] = {}
        managed_docs: dict[ResourceId, list[Statement]] = {}
        for rid, resource in self.resources("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            props = resource.get("Properties", {})
            found = self.statements(rid, props.get("PolicyDocument"))
            managed_docs[rid] = found
            for label in self.roles_of(rid.stack, props.get("Roles")):
                by_role.setdefault(label, []).extend(found)
        for rid, resource in self.resources("AWS::IAM::Role"):
            props = resource.get("Properties", {})
            own = by_role.setdefault(str(rid), [])
            for inline in _as_list(props.get("Policies")):
                if isinstance(inline, Mapping):
                    own.extend(self.statements(rid, inline.get("PolicyDocument")))
            for managed in self.refs(rid.stack, props.get("ManagedPolicyArns")):
                if self.type_of(managed) == "AWS::IAM::ManagedPolicy" and not any(s.holder == managed for s in own):
                    own.extend(managed_docs.get(managed, []))
        return by_role


def principal_matches(label: str, granted: set[str]) -> bool:
    """Whether a principal label is among `granted` (ANYONE grants all; service names may be patterns,
    e.g. `logs.*.amazonaws.com`)."""
    return ANYONE in granted or any(fnmatchcase(label, g) or fnmatchcase(g, label) for g in granted)
