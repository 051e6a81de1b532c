"""Stage rules, applied to every construct of a workspace stack so that no stack can forget them.

feature  everything destroyable: removal policy DESTROY on every resource; a bucket that would not
         empty itself on delete is a synth error (a `cdk destroy` must leave nothing behind).
int      stateful resources retained (deletion and replacement).
prd      as int, and every stack termination-protected.
"""

from __future__ import annotations

import jsii
from aws_cdk import Annotations, CfnResource, IAspect, RemovalPolicy, Stack
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

from infra.constructs.data_bucket import AUTO_DELETE_CHILD_ID
from infra.stateful import STATEFUL_RESOURCE_TYPES
from infra.workspace import Stage


@jsii.implements(IAspect)
class StageRules:
    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, Stack) and self.stage is Stage.PRD:
            node.termination_protection = True
        if isinstance(node, CfnResource):
            self._apply_removal_policy(node)
        if (
            isinstance(node, s3.Bucket)
            and not self.stage.is_persistent
            and node.node.try_find_child(AUTO_DELETE_CHILD_ID) is None
        ):
            Annotations.of(node).add_error(
                f"bucket {node.node.path} does not delete its objects on destroy; feature "
                "workspaces must leave nothing behind: create it with auto_delete_objects=True "
                "(DataBucket(ephemeral=True) does)"
            )

    def _apply_removal_policy(self, resource: CfnResource) -> None:
        if not self.stage.is_persistent:
            resource.apply_removal_policy(RemovalPolicy.DESTROY)
        elif resource.cfn_resource_type in STATEFUL_RESOURCE_TYPES:
            resource.apply_removal_policy(RemovalPolicy.RETAIN)
