"""Rule: the workspace's identity policies are managed ones, and each fits what IAM allows.

IAM refuses a managed policy over 6,144 characters (whitespace not counted) and, by default, an eleventh
managed policy on a role; inline policies have other limits (10,240 characters per role in total), so
turning CDK's inline policies into managed ones (infra/managed_policies.py) can make a deploy fail that
synthesised fine. The template holds references, not ARNs: each is counted at `REFERENCE_LENGTH`
characters, the length of a long generated ARN, so that a document that passes here fits once deployed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from infra.invariants.cfn import Templates, Workspace

MANAGED_POLICY_MAX_CHARS = 6144
MANAGED_POLICIES_PER_ROLE = 10
REFERENCE_LENGTH = 120
"""Characters an intrinsic function stands for: an ARN such as
arn:aws:s3:::dataplat-we-1234-some-feature-storage-quarantine23ff09fe-1a2b3c4d5e6f/* is 82."""


def managed_policy_limits(templates: Templates) -> list[str]:
    workspace = Workspace(templates)
    findings = [f"{rid}: an inline policy (AWS::IAM::Policy)" for rid, _ in workspace.resources("AWS::IAM::Policy")]
    attached: dict[str, int] = {}
    for rid, resource in workspace.resources("AWS::IAM::Role"):
        props = resource.get("Properties", {})
        if props.get("Policies"):
            findings.append(f"{rid}: inline policies in the role (Policies)")
        attached[str(rid)] = len(props.get("ManagedPolicyArns", []))
    for rid, resource in workspace.resources("AWS::IAM::ManagedPolicy"):
        props = resource.get("Properties", {})
        size = policy_size(props.get("PolicyDocument", {}))
        if size > MANAGED_POLICY_MAX_CHARS:
            findings.append(
                f"{rid}: about {size} characters, over IAM's {MANAGED_POLICY_MAX_CHARS} for a "
                "managed policy: split its grants"
            )
        for role in workspace.roles_of(rid.stack, props.get("Roles")):
            attached[role] = attached.get(role, 0) + 1
    findings += [
        f"{role}: {count} managed policies, over IAM's default quota of {MANAGED_POLICIES_PER_ROLE}"
        for role, count in sorted(attached.items())
        if count > MANAGED_POLICIES_PER_ROLE
    ]
    return findings


def policy_size(document: Any) -> int:
    """Characters of the document as IAM counts them (no whitespace), each reference as a long ARN."""
    return len(json.dumps(_with_placeholders(document), separators=(",", ":")))


def _with_placeholders(value: Any) -> Any:
    if isinstance(value, Mapping):
        if len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref")):
            return "x" * REFERENCE_LENGTH
        return {k: _with_placeholders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_placeholders(v) for v in value]
    return value
