"""Every identity policy a customer-managed policy, none inline (int and prd: HIPAA Security, NIST 800-53).

CDK writes each grant into an inline policy (`AWS::IAM::Policy`, a role's DefaultPolicy), CDK's own handlers
included, and offers no switch. Managed policies are versioned (a change keeps the previous version to roll
back to) and can be reviewed and attached on their own. So once a workspace's stacks are built, every
`AWS::IAM::Policy` becomes an `AWS::IAM::ManagedPolicy` with the same document and principals.

The replacement keeps the construct path, so that whatever depends on the policy still does and the nag
acknowledgements and checkov skips on it are carried over; it takes a logical ID of its own, because
CloudFormation cannot change the type of an existing resource in an update.

What AWS enforces on managed policies and not on inline ones (6,144 characters per policy, 10 attached
per role by default) is checked on the synthesised templates: tests/infra/test_managed_policies.py.
"""

from __future__ import annotations

from aws_cdk import CfnResource, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import Construct

MANAGED_SUFFIX = "Managed"
"""Appended to the inline policy's logical ID: a new resource, not a change of type."""


def inline_policies_to_managed(stack: Stack) -> None:
    """Replace every `AWS::IAM::Policy` of `stack` by a managed policy (or nothing, if it grants nothing)."""
    inline = [
        c for c in stack.node.find_all() if isinstance(c, CfnResource) and c.cfn_resource_type == "AWS::IAM::Policy"
    ]
    for policy in inline:
        if not isinstance(policy, iam.CfnPolicy):
            raise TypeError(f"{policy.node.path}: an AWS::IAM::Policy but not a CfnPolicy: its document cannot be read")
        _replace(stack, policy)


def _replace(stack: Stack, policy: iam.CfnPolicy) -> None:
    parent, construct_id = policy.node.scope, policy.node.id
    if parent is None:
        raise ValueError(f"{policy.node.path}: an inline policy with no parent construct")
    if not isinstance(parent, Construct):  # CfnManagedPolicy's scope is a Construct, not any IConstruct
        raise TypeError(f"{policy.node.path}: its parent is a {type(parent).__name__}, not a Construct")
    logical_id = stack.get_logical_id(policy)
    document, roles, users, groups = policy.policy_document, policy.roles, policy.users, policy.groups
    acknowledgements = [e for e in policy.node.metadata if e.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY]
    checkov = policy.get_metadata("checkov")
    dependencies = policy.obtain_dependencies()
    parent.node.try_remove_child(construct_id)
    # CDK renders an inline policy only if it has a statement and a principal (else it is not attached)
    statements = (stack.resolve(document) or {}).get("Statement") or []
    if not statements or not any(stack.resolve(p) for p in (roles, users, groups)):
        return
    managed = iam.CfnManagedPolicy(
        parent,
        construct_id,
        policy_document=document,
        description=f"Inline policy {parent.node.path} made managed",
        roles=roles,
        users=users,
        groups=groups,
    )
    managed.override_logical_id(logical_id + MANAGED_SUFFIX)
    for entry in acknowledgements:
        managed.node.add_metadata(entry.type, entry.data)
    if checkov:
        managed.add_metadata("checkov", checkov)
    for dependency in dependencies:
        if not isinstance(dependency, CfnResource):  # a whole stack: CfnResource.add_dependency takes a resource
            raise TypeError(f"{policy.node.path} depends on stack {dependency.node.path}: not carried over")
        managed.add_dependency(dependency)
