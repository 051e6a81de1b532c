"""Log groups owned by their stack, with the retention the stage's config sets."""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import LOG_RETENTION_DAYS

# RetentionDays lists the same periods in the same order (then INFINITE, which config never allows).
_RETENTION = dict(zip(LOG_RETENTION_DAYS, list(logs.RetentionDays)[: len(LOG_RETENTION_DAYS)], strict=True))


def retention(days: int) -> logs.RetentionDays:
    return _RETENTION[days]


def owned_log_group(
    scope: Construct, construct_id: str, retention_days: int, key: kms.IKey | None = None
) -> logs.LogGroup:
    """Created by the stack rather than on first write by the service, so that it is deleted with a
    feature workspace (the stage rules set its removal policy) instead of lingering forever. `key` (int and
    prd: the workspace's data key, whose policy lets CloudWatch Logs use it) encrypts its events."""
    return logs.LogGroup(scope, construct_id, retention=retention(retention_days), encryption_key=key)
