"""Stateful storage: the data lake buckets, their access logs and the Glue Data Catalog database."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_glue as glue
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.checkov import skip_checkov
from infra.constructs.data_bucket import DataBucket
from infra.naming import Component, glue_database_name
from infra.stacks.base import WorkspaceContext, WorkspaceStack


class StorageStack(WorkspaceStack):
    component = Component.STORAGE

    def __init__(self, scope: Construct, ctx: WorkspaceContext) -> None:
        super().__init__(scope, ctx)
        storage = ctx.settings.storage

        def bucket(construct_id: str, **extra: object) -> DataBucket:
            return DataBucket(
                self,
                construct_id,
                ephemeral=ctx.ephemeral,
                noncurrent_version_expiration_days=storage.noncurrent_version_expiration_days,
                abort_incomplete_multipart_upload_days=storage.abort_incomplete_multipart_upload_days,
                **extra,  # type: ignore[arg-type]
            )

        # S3 server access logs cannot be delivered to the bucket they describe: this one is not logged.
        self.access_logs = bucket("AccessLogs", access_logs=None,
                                  expiration_days=storage.access_log_expiration_days)
        skip_checkov(self.access_logs.node.default_child, CKV_AWS_18=(
            "This is the access-log bucket: S3 cannot deliver server access logs to the bucket they "
            "describe, and logging it elsewhere would need a log bucket for it."))
        raw_transitions = [
            s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                          transition_after=Duration.days(storage.raw_infrequent_access_after_days)),
        ]
        if storage.raw_glacier_after_days is not None:
            raw_transitions.append(
                s3.Transition(storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                              transition_after=Duration.days(storage.raw_glacier_after_days)))
        # Uploads land here; ingest moves them to raw (write-once) under created_at=<time landed>.
        self.landing = bucket("Landing", access_logs=self.access_logs)
        # Raw object-created events start the pipeline (EventBridge, so that rules can filter).
        self.raw = bucket("Raw", access_logs=self.access_logs, transitions=raw_transitions, event_bridge=True)
        # Files that cannot be read and rows that break the contract, each with its reason: nothing
        # is dropped. A bucket of its own, so that readers of data never see rejects by accident.
        self.quarantine = bucket("Quarantine", access_logs=self.access_logs)
        self.staging = bucket("Staging", access_logs=self.access_logs)
        self.curated = bucket("Curated", access_logs=self.access_logs)
        self.artifacts = bucket("Artifacts", access_logs=self.access_logs)

        self.database = glue.Database(
            self,
            "Catalog",
            database_name=glue_database_name(ctx.config.project, ctx.target.workspace),
            description=f"Data catalog of workspace {ctx.target.workspace}",
        )

        for construct_id, data_bucket in {"LandingBucketName": self.landing, "RawBucketName": self.raw,
                                          "QuarantineBucketName": self.quarantine,
                                          "StagingBucketName": self.staging,
                                          "CuratedBucketName": self.curated,
                                          "ArtifactsBucketName": self.artifacts}.items():
            CfnOutput(self, construct_id, value=data_bucket.bucket_name)
        CfnOutput(self, "CatalogDatabaseName", value=self.database.database_name)
