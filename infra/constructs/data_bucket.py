"""An S3 bucket with the platform's non-negotiable defaults."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

AUTO_DELETE_CHILD_ID = "AutoDeleteObjectsCustomResource"
"""The child CDK adds for `auto_delete_objects`; the stage rules look for it."""


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
        )
