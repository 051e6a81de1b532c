"""Stateful storage: the data lake buckets, their access logs and the Glue Data Catalog database."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Required, TypedDict, Unpack

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_athena as athena
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.checkov import skip_checkov
from infra.construct_tree import cfn_resource
from infra.constructs.data_bucket import DataBucket, ReplicaTarget
from infra.nag import acknowledge_compliance
from infra.naming import Component, athena_workgroup_name, glue_database_name
from infra.stack_outputs import (
    ARTIFACTS_OUTPUT,
    CURATED_OUTPUT,
    LANDING_OUTPUT,
    LEDGER_OUTPUT,
    QUARANTINE_OUTPUT,
    QUERY_WORKGROUP_OUTPUT,
    RAW_OUTPUT,
    STAGING_OUTPUT,
)
from infra.stacks.base import WorkspaceContext, WorkspaceStack
from pipeline.ledger import FILE_KEY


class _DataBucketOptions(TypedDict, total=False):
    """DataBucket's parameters that one data bucket sets for itself (`data_bucket` gives the others)."""

    transitions: Sequence[s3.Transition]
    event_bridge: bool
    noncurrent_version_expiration_days: int


class _BucketOptions(_DataBucketOptions, total=False):
    """DataBucket's parameters that differ between the stack's buckets (`bucket` gives the others)."""

    access_logs: Required[s3.IBucket | None]
    expiration_days: int | None
    encryption_key: kms.IKey | None
    replica: ReplicaTarget | None


def trains_after_promotion(ctx: WorkspaceContext) -> bool:
    """Training in AWS starts on a new curated build (config ml.training.after_promotion, with MLflow on)."""
    return ctx.settings.components.mlflow and ctx.settings.ml.training.after_promotion


class StorageStack(WorkspaceStack):
    component = Component.STORAGE

    def __init__(self, scope: Construct, ctx: WorkspaceContext) -> None:
        super().__init__(scope, ctx)
        storage = ctx.settings.storage
        replicas = {
            rule.bucket.capitalize(): ReplicaTarget(rule.destination_bucket_arn, rule.destination_kms_key_arn)
            for rule in storage.replication
        }
        # int and prd: the data and the logs about it are encrypted with a key of the workspace's own
        self.data_key = None if ctx.ephemeral else self._data_key(ctx)

        def bucket(construct_id: str, **extra: Unpack[_BucketOptions]) -> DataBucket:
            extra.setdefault("noncurrent_version_expiration_days", storage.noncurrent_version_expiration_days)
            return DataBucket(
                self,
                construct_id,
                ephemeral=ctx.ephemeral,
                abort_incomplete_multipart_upload_days=storage.abort_incomplete_multipart_upload_days,
                **extra,
            )

        # S3 server access logs cannot be delivered to the bucket they describe: this one is not logged. Nor
        # can they (or the load balancer's) be delivered to a bucket encrypted with a customer-managed key.
        self.access_logs = bucket("AccessLogs", access_logs=None, expiration_days=storage.access_log_expiration_days)
        skip_checkov(
            cfn_resource(self.access_logs),
            CKV_AWS_18=(
                "This is the access-log bucket: S3 cannot deliver server access logs to the bucket they "
                "describe, and logging it elsewhere would need a log bucket for it."
            ),
        )
        raw_transitions = [
            s3.Transition(
                storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                transition_after=Duration.days(storage.raw_infrequent_access_after_days),
            ),
        ]
        if storage.raw_glacier_after_days is not None:
            raw_transitions.append(
                s3.Transition(
                    storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                    transition_after=Duration.days(storage.raw_glacier_after_days),
                )
            )

        def data_bucket(construct_id: str, **extra: Unpack[_DataBucketOptions]) -> DataBucket:
            """A bucket of data: logged, encrypted with the workspace's key (int, prd), replicated and
            expired as config says (storage.replication, storage.retention_days)."""
            return bucket(
                construct_id,
                access_logs=self.access_logs,
                encryption_key=self.data_key,
                replica=replicas.get(construct_id),
                expiration_days=getattr(storage.retention_days, re.sub(r"(?<!^)([A-Z])", r"_\1", construct_id).lower()),
                **extra,
            )

        # Uploads land here; ingest moves them to raw (write-once) under created_at=<time landed>.
        self.landing = data_bucket("Landing")
        # Raw object-created events start the pipeline (EventBridge, so that rules can filter).
        self.raw = data_bucket("Raw", transitions=raw_transitions, event_bridge=True)
        # Files that cannot be read and rows that break the contract, each with its reason: nothing
        # is dropped. A bucket of its own, so that readers of data never see rejects by accident.
        self.quarantine = data_bucket("Quarantine")
        self.staging = data_bucket("Staging")
        # a new build's pointer starts training where config asks for it (ml.training.after_promotion)
        self.curated = data_bucket("Curated", event_bridge=trains_after_promotion(ctx))
        self.artifacts = data_bucket("Artifacts")
        # What Athena queries of the workspace's tables return: a copy of curated rows, so encrypted and
        # logged as they are, and expired after storage.retention_days.query_results; an expired result's
        # version goes the next day (a result is a query run again, not data to recover), so a subject's rows
        # in a result are gone within retention + 1 days (README: "Erasing a person's data")
        self.query_results = data_bucket("QueryResults", noncurrent_version_expiration_days=1)
        if not ctx.ephemeral:
            self._acknowledge(ctx, replicated=set(replicas))

        self.database = glue.Database(
            self,
            "Catalog",
            database_name=glue_database_name(ctx.config.project, ctx.target.workspace),
            description=f"Data catalog of workspace {ctx.target.workspace}",
        )

        for output, published in {
            LANDING_OUTPUT: self.landing,
            RAW_OUTPUT: self.raw,
            QUARANTINE_OUTPUT: self.quarantine,
            STAGING_OUTPUT: self.staging,
            CURATED_OUTPUT: self.curated,
            ARTIFACTS_OUTPUT: self.artifacts,
        }.items():
            CfnOutput(self, output, value=published.bucket_name)
        CfnOutput(self, "CatalogDatabaseName", value=self.database.database_name)
        self.workgroup = self._workgroup(ctx)
        CfnOutput(self, QUERY_WORKGROUP_OUTPUT, value=self.workgroup.name)
        self.ledger, self.ledger_write = self._ledger(ctx)
        CfnOutput(self, LEDGER_OUTPUT, value=self.ledger.table_name)

    def _workgroup(self, ctx: WorkspaceContext) -> athena.CfnWorkGroup:
        """The workspace's Athena workgroup: engine 3, results in the query-results bucket, encrypted with the
        workspace's key where it has one, and its settings enforced (a client cannot send results elsewhere).
        Destroyed with the workspace together with its saved queries and history (`recursive_delete_option`):
        they are about the data, not the data."""
        encryption = (
            athena.CfnWorkGroup.EncryptionConfigurationProperty(encryption_option="SSE_S3")
            if self.data_key is None
            else athena.CfnWorkGroup.EncryptionConfigurationProperty(
                encryption_option="SSE_KMS", kms_key=self.data_key.key_arn
            )
        )
        return athena.CfnWorkGroup(
            self,
            "QueryWorkgroup",
            name=athena_workgroup_name(ctx.config.project, ctx.target.workspace),
            description=f"Queries of workspace {ctx.target.workspace}'s catalog (curated tables)",
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="Athena engine version 3"
                ),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{self.query_results.bucket_name}/",
                    encryption_configuration=encryption,
                    expected_bucket_owner=self.account,
                ),
            ),
        )

    def _ledger(self, ctx: WorkspaceContext) -> tuple[dynamodb.Table, iam.ManagedPolicy]:
        """The run ledger (pipeline/ledger.py), and the policy to record in it. It holds what no one can
        rebuild (what became of each landed file): point-in-time recovery, 35 days, in every stage; kept in int
        and prd like every stateful resource. Its records hold keys, counts and reasons, no data values:
        DynamoDB's own key encrypts it (no key policy for each writer)."""
        table = dynamodb.Table(
            self,
            "Ledger",
            partition_key=dynamodb.Attribute(name=FILE_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
        )
        policy = iam.ManagedPolicy(
            self,
            "LedgerWritePolicy",
            description=f"Recording in the run ledger of workspace {ctx.target.workspace} and nothing else",
            statements=[iam.PolicyStatement(actions=["dynamodb:UpdateItem"], resources=[table.table_arn])],
        )
        reason = (
            "The run ledger: point-in-time recovery (35 days) is its backup, restorable to any second; it holds "
            "what became of each file, no data values."
        )
        skip_checkov(
            cfn_resource(table),
            CKV_AWS_119="Encrypted by DynamoDB's own key: the ledger holds keys, counts and reasons, no data "
            "values, and a customer key would need a key grant for every writer.",
        )
        if not ctx.ephemeral:
            acknowledge_compliance(cfn_resource(table), "DynamoDBInBackupPlan", reason)
        return table, policy

    def _data_key(self, ctx: WorkspaceContext) -> kms.Key:
        """The workspace's customer-managed key: its data buckets and its log groups. The default key policy
        lets the account's IAM policies grant its use (each reader and writer is granted it with its bucket);
        CloudWatch Logs, which encrypts log events itself, is allowed here for this account's log groups."""
        key = kms.Key(
            self, "DataKey", enable_key_rotation=True, description=f"Data and logs of workspace {ctx.target.workspace}"
        )
        region, account = ctx.settings.region, ctx.settings.account
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal(f"logs.{region}.amazonaws.com")],
                actions=["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={
                    "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{region}:{account}:log-group:*"}
                },
            )
        )
        return key

    def _acknowledge(self, ctx: WorkspaceContext, replicated: set[str]) -> None:
        """What the HIPAA Security and NIST 800-53 packs find in int and prd and is so on purpose."""
        acknowledge_compliance(
            cfn_resource(self.access_logs),
            "S3DefaultEncryptionKMS",
            reason=(
                "The access-log bucket: S3 server access logs and load balancer access logs are delivered only to "
                "buckets encrypted with SSE-S3; it holds request metadata, no data."
            ),
        )
        for bucket in (
            self.access_logs,
            self.landing,
            self.raw,
            self.quarantine,
            self.staging,
            self.curated,
            self.artifacts,
        ):
            if bucket.node.id not in replicated:
                acknowledge_compliance(
                    cfn_resource(bucket),
                    "S3BucketReplicationEnabled",
                    reason=(
                        f"No cross-region copy in {ctx.stage.value} by default: versioned, retained, and kept by S3 "
                        "in three zones of its region; a team that needs one lists it in storage.replication."
                    ),
                )
        acknowledge_compliance(
            cfn_resource(self.query_results),
            "S3BucketReplicationEnabled",
            reason="Athena's query results: copies of what a query read, expired after "
            "storage.retention_days.query_results; a lost result is a query run again, not lost data.",
        )
