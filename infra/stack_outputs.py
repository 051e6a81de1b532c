"""Names that the stacks publish and the deploy smoke check (infra/smoke.py) reads, in one place.

The construct IDs of top-level CfnOutputs are their output keys: fixed strings, the same in every workspace.
The smoke check imports this module, not the stacks, so that it starts without loading the CDK.
"""

from __future__ import annotations

LANDING_OUTPUT = "LandingBucketName"
RAW_OUTPUT = "RawBucketName"
QUARANTINE_OUTPUT = "QuarantineBucketName"
STAGING_OUTPUT = "StagingBucketName"
CURATED_OUTPUT = "CuratedBucketName"
QUERY_WORKGROUP_OUTPUT = "QueryWorkgroupName"
ARTIFACTS_OUTPUT = "ArtifactsBucketName"
"""Storage stack (infra/stacks/storage.py writes these keys; the erasure reads every one)."""
LEDGER_OUTPUT = "LedgerTableName"
"""Storage stack: the run ledger's table (pipeline/ledger.py)."""

ALARM_TOPIC_OUTPUT = "AlarmTopicArn"
"""Monitoring stack: the workspace's alarm topic (destroy publishes what it could not delete there)."""

INGEST_FUNCTION_OUTPUT = "IngestFunctionName"
STATE_MACHINE_OUTPUT = "PipelineStateMachineArn"
RAW_FILE_QUEUE_OUTPUT = "RawFileQueueUrl"
"""ETL stack (a backfill queues raw files again on the raw-file queue: infra/backfill.py)."""

MLFLOW_TRACKING_OUTPUT = "MlflowTrackingArn"
"""ML stack: the workspace's MLflow (its ARN, the tracking URI); infra/model_alias.py reads it."""

SERVICE_URL_OUTPUT = "ServiceUrl"
SERVICE_ENDPOINT_OUTPUT = "ServiceEndpoint"
SERVICE_TARGET_GROUP_OUTPUT = "ServiceTargetGroup"
"""Model-service stack: its URL, who reaches it (config `service.endpoint`: internal, public or open) and
its target group. The check calls the URL of an open or public service; an internal one it cannot reach
from outside the VPC, so it reads the load balancer's own health check of the tasks instead."""

CHECK_PASSED_STATE = "CheckPassed"
"""Where a pipeline execution of a check-only dataset ends after its gate passed: nothing promoted."""

PROMOTION_STATE = "AwaitingPromotion"
"""Where a pipeline execution ends once its batch passed: the scheduled promotion of its table takes it into
curated. Check data must never reach it."""
PROMOTION_JOB_OUTPUT = "PromotionJobName"
"""ETL stack: the staging_to_curated Glue job, which a backfill starts for one table (`--from_scratch true`)."""
TABLE_PROMOTION_JOBS_OUTPUT = "TablePromotionJobs"
"""ETL stack, with config etl.dedicated_jobs only: the tables with a promotion job of their own, as JSON
(`dataset/table` -> job name); a backfill of such a table starts that job."""

INVOKED_BY_SMOKE_CHECK_TAG = ("invoked-by", "smoke-check")
"""The tag (key, value) of the one function the smoke check may invoke (ingest): the deploy role's invoke
permission is conditioned on it, since CloudFormation generates function names."""
