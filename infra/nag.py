"""cdk-nag (AwsSolutions) as a CDK validation plugin, and the one way to acknowledge a finding.

An acknowledgement sits on the construct it is about and carries a reason a reviewer can check;
`make synth` and the tests fail on any finding that has none.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def add_nag(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge_asset_reads(role: IConstruct, what: str) -> None:
    """CDK's grant to read an asset from the bootstrap bucket has wildcard actions and objects: acknowledge
    its four IAM5 findings on the role's default policy, saying what the role reads there."""
    policy = role.node.find_child("DefaultPolicy").node.default_child
    stack = Stack.of(role)
    for finding in ("Action::s3:GetBucket*", "Action::s3:GetObject*", "Action::s3:List*",
                    f"Resource::arn:aws:s3:::cdk-hnb659fds-assets-{stack.account}-{stack.region}/*"):
        acknowledge(policy, "IAM5", finding=finding,
                    reason=f"Read access to the CDK asset bucket, granted by CDK for {what}.")


def acknowledge(construct: IConstruct, rule: str, reason: str, finding: str | None = None) -> None:
    """Acknowledge `rule` (e.g. "IAM5") on `construct`; `finding` narrows it to one detail of the rule
    (e.g. "Resource::<Raw1234.Arn>/*"), as cdk-nag reports each wildcard separately."""
    rule_id = f"AwsSolutions::AwsSolutions-{rule}" + (f"[{finding}]" if finding else "")
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))
