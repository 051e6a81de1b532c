"""What the lifecycle's tests (tests/workflows/test_lifecycle_*.py) share: the project's stacks in the moto
account, tagged as the platform tags them, and a clock that moves only when told."""

from __future__ import annotations

import json

from infra.workspace import branch_tag_value, owner_tag_value

PROJECT = "dataplat"
VERSIONED = {"VersioningConfiguration": {"Status": "Enabled"}}
BUCKET_TEMPLATE = json.dumps({"Resources": {"Data": {"Type": "AWS::S3::Bucket", "Properties": VERSIONED}}})
TOPIC_TEMPLATE = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})


def deploy(
    cfn,
    workspace: str,
    component: str,
    *,
    branch: str,
    stage: str = "feature",
    project: str = PROJECT,
    template: str = TOPIC_TEMPLATE,
    owned: bool = False,
) -> str:
    """A stack tagged as the platform tags them; `owned`: with the exact owner tag (stacks deployed
    before it existed have the lossy branch tag only)."""
    name = f"{project}-{workspace}-{component}"
    owner = [{"Key": "owner", "Value": owner_tag_value(f"refs/heads/{branch}")}] if owned else []
    cfn.create_stack(
        StackName=name,
        TemplateBody=template,
        Tags=[
            {"Key": "project", "Value": project},
            {"Key": "workspace", "Value": workspace},
            {"Key": "stage", "Value": stage},
            {"Key": "branch", "Value": branch_tag_value(branch)},
            *owner,
        ],
    )
    return name


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
