"""Resource-level checkov skips: the reason travels with the resource, in its template metadata."""

from __future__ import annotations

from aws_cdk import CfnResource


def skip_checkov(resource: CfnResource, **reasons: str) -> None:
    """`skip_checkov(res, CKV_AWS_18="why")`: checkov reads `Metadata.checkov.skip` of a resource."""
    resource.add_metadata("checkov", {"skip": [{"id": check, "comment": why} for check, why in reasons.items()]})
