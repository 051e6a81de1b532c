"""The CloudFormation resources that CDK creates inside its constructs, found by position and typed.

CDK types `node.default_child` and `node.try_find_child` as any construct or None. The nag acknowledgements,
checkov skips and logical IDs here are about one CloudFormation resource each: where CDK holds none (a
construct that changed shape in a CDK upgrade), synthesis stops and names it, rather than acknowledging on
nothing or failing later on a None.
"""

from __future__ import annotations

from aws_cdk import CfnResource
from constructs import IConstruct


def cfn_resource(construct: IConstruct) -> CfnResource:
    """The CloudFormation resource `construct` wraps: its `node.default_child` (an L2's L1)."""
    child = construct.node.default_child
    if not isinstance(child, CfnResource):
        raise TypeError(
            f"{construct.node.path}: its default child is {type(child).__name__}, not a CloudFormation resource"
        )
    return child


def default_policy(role: IConstruct) -> CfnResource:
    """The inline policy CDK writes a role's grants into (its `DefaultPolicy` child)."""
    return cfn_resource(role.node.find_child("DefaultPolicy"))


def cfn_child(scope: IConstruct, child_id: str) -> CfnResource:
    """The child `child_id` of `scope`, a CloudFormation resource (CDK's own handlers are plain `CfnResource`s)."""
    return _resource(scope.node.find_child(child_id))


def try_cfn_child(scope: IConstruct, child_id: str) -> CfnResource | None:
    """The child `child_id` of `scope` if there is one; it must then be a CloudFormation resource."""
    child = scope.node.try_find_child(child_id)
    return None if child is None else _resource(child)


def _resource(construct: IConstruct) -> CfnResource:
    if not isinstance(construct, CfnResource):
        raise TypeError(f"{construct.node.path}: a {type(construct).__name__}, not a CloudFormation resource")
    return construct
