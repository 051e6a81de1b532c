"""An S3 bucket with the platform's non-negotiable defaults, and the access policies to it."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from aws_cdk import CfnResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.checkov import skip_checkov
from infra.nag import acknowledge

AUTO_DELETE_CHILD_ID = "AutoDeleteObjectsCustomResource"
"""The child CDK adds for `auto_delete_objects`; the stage rules look for it."""


class Access(StrEnum):
    READ = "Read"
    APPEND = "Append"  # write new objects, never delete: raw is write-once
    READ_WRITE = "ReadWrite"


_OBJECT_ACTIONS = {
    Access.READ: ["s3:GetObject", "s3:GetObjectVersion"],
    Access.APPEND: ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:AbortMultipartUpload"],
    Access.READ_WRITE: ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:AbortMultipartUpload",
                        "s3:DeleteObject"],
}
_BUCKET_ACTIONS = ["s3:ListBucket", "s3:GetBucketLocation"]


AUTO_DELETE_PROVIDER_ID = "Custom::S3AutoDeleteObjectsCustomResourceProvider"
NOTIFICATIONS_HANDLER_ID = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"


def _explain_cdk_handler(handler: CfnResource | None, what: str) -> None:
    """CDK's own deploy-time Lambdas (one per stack) are not ours to configure: say why checkov may pass them."""
    if handler is None or handler.get_metadata("checkov"):
        return
    reason = (f"CDK's {what}: CloudFormation invokes it synchronously at deploy or delete time; it calls the "
              "S3 API alone and runs once per stack operation")
    skip_checkov(handler, CKV_AWS_115=reason + " (no concurrency to limit).",
                 CKV_AWS_116=reason + " (a failure fails the stack operation; there is no event to dead-letter).",
                 CKV_AWS_117=reason + " (no VPC resource to reach).")


def _explain_auto_delete_provider(stack: Stack) -> None:
    provider = stack.node.try_find_child(AUTO_DELETE_PROVIDER_ID)
    _explain_cdk_handler(provider.node.try_find_child("Handler") if provider else None,
                         "auto-delete-objects provider, which empties a feature workspace's buckets on delete")


def _explain_notifications_handler(stack: Stack) -> None:
    handler = stack.node.try_find_child(NOTIFICATIONS_HANDLER_ID)
    if handler is None or handler.node.try_find_child("Resource").get_metadata("checkov"):
        return
    _explain_cdk_handler(handler.node.try_find_child("Resource"),
                         "bucket-notifications handler, which turns on EventBridge notifications of the bucket")
    acknowledge(handler.node.find_child("Role").node.default_child, "IAM4",
                finding="Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
                reason="CDK's bucket-notifications handler role: the AWS-managed basic execution policy only lets "
                "it write its own logs; CDK creates the role and offers no way to replace the policy.")


class DataBucket(s3.Bucket):
    """Versioned, SSE-S3 encrypted, public access blocked, TLS 1.2+ only, access-logged.

    SSE-S3 rather than KMS: it is free, needs no key policy for every reader, and leaves no key
    behind in a pending-deletion window when a feature workspace is destroyed. `ephemeral` buckets
    (feature stages) empty themselves on delete so that `cdk destroy` leaves nothing; persistent
    ones are retained by the stage rules.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ephemeral: bool,
        access_logs: s3.IBucket | None,
        noncurrent_version_expiration_days: int,
        abort_incomplete_multipart_upload_days: int,
        transitions: Sequence[s3.Transition] = (),
        expiration_days: int | None = None,
        event_bridge: bool = False,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=f"{construct_id}/" if access_logs else None,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(noncurrent_version_expiration_days),
                    abort_incomplete_multipart_upload_after=Duration.days(
                        abort_incomplete_multipart_upload_days
                    ),
                    expired_object_delete_marker=expiration_days is None,
                    expiration=Duration.days(expiration_days) if expiration_days else None,
                ),
                *(
                    [s3.LifecycleRule(id="age-to-cheaper-storage", transitions=list(transitions))]
                    if transitions
                    else []
                ),
            ],
            removal_policy=RemovalPolicy.DESTROY if ephemeral else RemovalPolicy.RETAIN,
            auto_delete_objects=ephemeral,
            event_bridge_enabled=event_bridge,
        )
        self._policies: dict[Access, iam.ManagedPolicy] = {}
        if ephemeral:
            _explain_auto_delete_provider(Stack.of(self))
        if event_bridge:
            _explain_notifications_handler(Stack.of(self))

    def access_policy(self, access: Access) -> iam.ManagedPolicy:
        """A managed policy for `access` to this bucket only, created beside the bucket.

        Consumers in other stacks attach it to their roles. Access is thus defined once, next to
        the data, with explicit actions; and cdk-nag's acknowledgement of the one wildcard left
        (the objects of this bucket) sits on this policy, not on every consumer.
        """
        if access not in self._policies:
            policy = iam.ManagedPolicy(
                self,
                f"{access.value}Policy",
                description=f"{access.value} access to bucket {self.node.path} and nothing else",
                statements=[
                    iam.PolicyStatement(actions=_OBJECT_ACTIONS[access], resources=[self.arn_for_objects("*")]),
                    iam.PolicyStatement(actions=_BUCKET_ACTIONS, resources=[self.bucket_arn]),
                ],
            )
            bucket_logical_id = Stack.of(self).get_logical_id(self.node.default_child)
            acknowledge(
                policy.node.default_child,
                "IAM5",
                finding=f"Resource::<{bucket_logical_id}.Arn>/*",
                reason="Object-level access to the objects of this one bucket: object keys are data, "
                "unknown at deploy time; the actions are listed explicitly and no other bucket is reachable.",
            )
            self._policies[access] = policy
        return self._policies[access]
