"""Names that the stacks publish and the deploy smoke check (infra/smoke.py) reads, in one place.

The construct IDs of top-level CfnOutputs are their output keys: fixed strings, the same in every workspace.
The smoke check imports this module, not the stacks, so that it starts without loading the CDK.
"""

from __future__ import annotations

LANDING_OUTPUT = "LandingBucketName"
RAW_OUTPUT = "RawBucketName"
CURATED_OUTPUT = "CuratedBucketName"
"""Storage stack (infra/stacks/storage.py writes these keys)."""

ALARM_TOPIC_OUTPUT = "AlarmTopicArn"
"""Monitoring stack: the workspace's alarm topic (destroy publishes what it could not delete there)."""

INGEST_FUNCTION_OUTPUT = "IngestFunctionName"
STATE_MACHINE_OUTPUT = "PipelineStateMachineArn"
"""ETL stack."""

SERVICE_URL_OUTPUT = "ServiceUrl"
"""Model-service stack; absent when a stage exposes no endpoint the check can call."""

CHECK_PASSED_STATE = "CheckPassed"
"""Where a pipeline execution of a check-only dataset ends after its gate passed: nothing promoted."""

PROMOTION_STATE = "StagingToCuratedRun"
"""The state that promotes to curated; check data must never enter it."""

INVOKED_BY_SMOKE_CHECK_TAG = ("invoked-by", "smoke-check")
"""The tag (key, value) of the one function the smoke check may invoke (ingest): the deploy role's invoke
permission is conditioned on it, since CloudFormation generates function names."""
