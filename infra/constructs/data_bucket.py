"""An S3 bucket with the platform's non-negotiable defaults, and the access policies to it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from aws_cdk import CfnResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.checkov import skip_checkov
from infra.construct_tree import cfn_child, cfn_resource, try_cfn_child
from infra.nag import acknowledge
from infra.naming import table_id_part

AUTO_DELETE_CHILD_ID = "AutoDeleteObjectsCustomResource"
"""The child CDK adds for `auto_delete_objects`; the stage rules look for it."""


class Access(StrEnum):
    READ = "Read"
    APPEND = "Append"  # write new objects, never delete: raw is write-once
    READ_WRITE = "ReadWrite"
    DELETE_VERSIONS = "DeleteVersions"  # delete a version for good, beside ReadWrite: ingest on landing


_OBJECT_ACTIONS = {
    Access.READ: ["s3:GetObject", "s3:GetObjectVersion"],
    Access.APPEND: ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:AbortMultipartUpload"],
    Access.READ_WRITE: [
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:DeleteObject",
    ],
    Access.DELETE_VERSIONS: ["s3:DeleteObjectVersion"],
}
_BUCKET_ACTIONS = {access: ["s3:ListBucket", "s3:GetBucketLocation"] for access in Access} | {
    Access.DELETE_VERSIONS: ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketVersions"]
}
"""Deleting versions needs their ids: ingest lists landing's versions, every upload under a name
(tests/infra/test_lambda_role_calls.py holds every function's role to the calls its handler makes)."""
# What S3 asks KMS for on the caller's behalf: a data key to write (Decrypt too, for multipart uploads), a
# decryption to read. tests/infra/test_key_usage.py holds every reader and writer to it.
_KEY_ACTIONS = {
    Access.READ: ["kms:Decrypt"],
    Access.APPEND: ["kms:Decrypt", "kms:GenerateDataKey"],
    Access.READ_WRITE: ["kms:Decrypt", "kms:GenerateDataKey"],
    Access.DELETE_VERSIONS: [],
}


AUTO_DELETE_PROVIDER_ID = "Custom::S3AutoDeleteObjectsCustomResourceProvider"
NOTIFICATIONS_HANDLER_ID = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"


def _explain_cdk_handler(handler: CfnResource | None, what: str) -> None:
    """CDK's own deploy-time Lambdas (one per stack) are not ours to configure: say why checkov may pass them."""
    if handler is None or handler.get_metadata("checkov"):
        return
    reason = (
        f"CDK's {what}: CloudFormation invokes it synchronously at deploy or delete time; it calls the "
        "S3 API alone and runs once per stack operation"
    )
    skip_checkov(
        handler,
        CKV_AWS_115=reason + " (no concurrency to limit).",
        CKV_AWS_116=reason + " (a failure fails the stack operation; there is no event to dead-letter).",
        CKV_AWS_117=reason + " (no VPC resource to reach).",
    )


def _explain_auto_delete_provider(stack: Stack) -> None:
    provider = stack.node.try_find_child(AUTO_DELETE_PROVIDER_ID)
    _explain_cdk_handler(
        try_cfn_child(provider, "Handler") if provider else None,
        "auto-delete-objects provider, which empties a feature workspace's buckets on delete",
    )


def _explain_notifications_handler(stack: Stack) -> None:
    handler = stack.node.try_find_child(NOTIFICATIONS_HANDLER_ID)
    if handler is None:
        return
    function = cfn_child(handler, "Resource")
    if function.get_metadata("checkov"):
        return
    _explain_cdk_handler(
        function,
        "bucket-notifications handler, which turns on EventBridge notifications of the bucket",
    )
    acknowledge(
        cfn_resource(handler.node.find_child("Role")),
        "IAM4",
        finding="Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        reason="CDK's bucket-notifications handler role: the AWS-managed basic execution policy only lets "
        "it write its own logs; CDK creates the role and offers no way to replace the policy.",
    )


@dataclass(frozen=True)
class ReplicaTarget:
    """Where a bucket's new objects are copied (config storage.replication): a bucket, and its key when the
    source is encrypted with a customer-managed key."""

    bucket_arn: str
    kms_key_arn: str | None = None


class DataBucket(s3.Bucket):
    """Versioned, encrypted, public access blocked, TLS 1.2+ only, access-logged.

    With `encryption_key` (int and prd: patient data) objects are encrypted with that customer-managed key,
    whose use CloudTrail records and whose policy decides who may decrypt; with S3 bucket keys, so that KMS is
    called per bucket and hour rather than per object. Without one (feature stages) SSE-S3: free, and no key
    is left in a pending-deletion window when the workspace is destroyed. `ephemeral` buckets empty
    themselves on delete so that `cdk destroy` leaves nothing; persistent ones are retained by the stage rules.
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
        encryption_key: kms.IKey | None = None,
        replica: ReplicaTarget | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            versioned=True,
            encryption=s3.BucketEncryption.KMS if encryption_key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=encryption_key,
            bucket_key_enabled=True if encryption_key else None,
            replication_rules=[_replication_rule(scope, construct_id, replica, encrypted=encryption_key is not None)]
            if replica
            else None,
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
                    abort_incomplete_multipart_upload_after=Duration.days(abort_incomplete_multipart_upload_days),
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
                    iam.PolicyStatement(actions=_BUCKET_ACTIONS[access], resources=[self.bucket_arn]),
                    *self._key_statements(access),
                ],
            )
            bucket_logical_id = Stack.of(self).get_logical_id(cfn_resource(self))
            acknowledge(
                cfn_resource(policy),
                "IAM5",
                finding=f"Resource::<{bucket_logical_id}.Arn>/*",
                reason="Object-level access to the objects of this one bucket: object keys are data, "
                "unknown at deploy time; the actions are listed explicitly and no other bucket is reachable.",
            )
            self._policies[access] = policy
        return self._policies[access]

    def _key_statements(self, access: Access) -> list[iam.PolicyStatement]:
        """What `access` needs of the bucket's key (int, prd), through S3 only; nothing without one."""
        if not self.encryption_key or not _KEY_ACTIONS[access]:
            return []
        return [
            iam.PolicyStatement(
                actions=_KEY_ACTIONS[access],
                resources=[self.encryption_key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": _via_s3(self)}},
            )
        ]

    def append_under_policy(self, prefix: str) -> iam.ManagedPolicy:
        """A managed policy to write new objects under `prefix` of this bucket only (no read, no delete; the
        bucket's key through S3 only), created beside the bucket as `access_policy`'s are: an extractor's, which
        writes its table's files and nothing else."""
        return self._prefix_policy(
            f"AppendUnder{table_id_part(prefix)}",
            prefix,
            description=f"New objects under {prefix}/ of bucket {self.node.path} and nothing else",
            statements=[
                iam.PolicyStatement(
                    actions=["s3:PutObject", "s3:AbortMultipartUpload"], resources=[self.arn_for_objects(f"{prefix}/*")]
                ),
                *self._key_statements(Access.APPEND),
            ],
            reason=f"New objects under {prefix}/ of this one bucket, whose names are known only when they are "
            "written; no read, no delete, no other prefix.",
        )

    def read_under_policy(self, prefix: str) -> iam.ManagedPolicy:
        """A managed policy to read the objects under `prefix` of this bucket only, and list that prefix (the
        bucket's key through S3 only): a training job's, which reads its model's table and no other."""
        return self._prefix_policy(
            f"ReadUnder{table_id_part(prefix)}",
            prefix,
            description=f"Objects under {prefix}/ of bucket {self.node.path}, read only, and nothing else",
            statements=[
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[self.arn_for_objects(f"{prefix}/*")]),
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[self.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{prefix}/*"]}},
                ),
                *self._key_statements(Access.READ),
            ],
            reason=f"The objects under {prefix}/ of this one bucket (a table's builds, named as they are written): "
            "read only, no other prefix.",
        )

    def _prefix_policy(
        self, construct_id: str, prefix: str, *, description: str, statements: list[iam.PolicyStatement], reason: str
    ) -> iam.ManagedPolicy:
        """One managed policy per prefix and kind beside the bucket (asked twice, made once), its wildcard under
        the prefix acknowledged with `reason`."""
        existing = self.node.try_find_child(construct_id)
        if isinstance(existing, iam.ManagedPolicy):
            return existing
        policy = iam.ManagedPolicy(self, construct_id, description=description, statements=statements)
        bucket_logical_id = Stack.of(self).get_logical_id(cfn_resource(self))
        acknowledge(
            cfn_resource(policy), "IAM5", finding=f"Resource::<{bucket_logical_id}.Arn>/{prefix}/*", reason=reason
        )
        return policy


def _via_s3(scope: Construct) -> str:
    return f"s3.{Stack.of(scope).region}.amazonaws.com"


def _replication_rule(
    scope: Construct, construct_id: str, replica: ReplicaTarget, *, encrypted: bool
) -> s3.ReplicationRule:
    """Every new object and delete marker, to the destination, encrypted there with its own key."""
    if encrypted and replica.kms_key_arn is None:
        raise ValueError(
            f"{construct_id}: replicating a bucket encrypted with the workspace's key needs the "
            "destination's key (storage.replication[].destination_kms_key_arn)"
        )
    return s3.ReplicationRule(
        destination=s3.Bucket.from_bucket_arn(scope, f"{construct_id}Replica", replica.bucket_arn),
        priority=0,
        delete_marker_replication=True,
        sse_kms_encrypted_objects=True if encrypted else None,
        kms_key=kms.Key.from_key_arn(scope, f"{construct_id}ReplicaKey", replica.kms_key_arn)
        if replica.kms_key_arn
        else None,
    )
