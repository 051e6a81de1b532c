"""cdk-nag as CDK validation plugins, and the one way to acknowledge a finding.

AwsSolutions checks every stack. The HIPAA Security and NIST 800-53 R5 packs check the stacks of the stages
that hold patient data (int and prd), where their findings are fixed or acknowledged; a feature workspace
keeps its cheaper choices (SSE-S3, public subnets, plain HTTP) and is not held to them.

An acknowledgement sits on the construct it is about and carries a reason a reviewer can check;
`make synth` and the tests fail on any finding that has none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import jsii
from aws_cdk import (
    Acknowledgment,
    App,
    IPolicyValidationContextBeta1,
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    Stack,
    Validations,
)
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NagPack, NIST80053R5Checks
from constructs import IConstruct

from infra.construct_tree import default_policy

AWS_SOLUTIONS = "AwsSolutions"
COMPLIANCE_PACKS = ("HIPAA.Security", "NIST.800.53.R5")
"""The packs run on int and prd. Both name the rules this project meets them on alike (S3DefaultEncryptionKMS,
IAMNoInlinePolicy, ...), so one acknowledgement names the rule and holds for both."""


@jsii.implements(IPolicyValidationPlugin)
class _ScopedPack:
    """A nag pack run on some stacks of the app only (cdk-nag's own plugin walks the whole app)."""

    def __init__(self, pack: NagPack, stacks: Callable[[], Iterable[Stack]]) -> None:
        self._pack, self._stacks = pack, stacks

    @property
    def name(self) -> str:
        return self._pack.name

    @property
    def version(self) -> str | None:
        return None

    @property
    def rule_ids(self) -> list[str] | None:
        return None

    def validate(self, context: IPolicyValidationContextBeta1) -> PolicyValidationPluginReport:
        violations = [v for stack in self._stacks() for v in self._pack.validate_scope(stack).violations]
        return PolicyValidationPluginReport(success=not violations, violations=violations)


def add_nag(app: App, holds_patient_data: Callable[[Stack], bool]) -> None:
    """AwsSolutions on every stack; HIPAA Security and NIST 800-53 R5 on the stacks `holds_patient_data`."""

    def stacks() -> list[Stack]:
        return [child for child in app.node.children if isinstance(child, Stack) and holds_patient_data(child)]

    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app), _ScopedPack(HIPAASecurityChecks(), stacks), _ScopedPack(NIST80053R5Checks(), stacks)
    )


def acknowledge_asset_reads(role: IConstruct, what: str) -> None:
    """CDK's grant to read an asset from the bootstrap bucket has wildcard actions and objects: acknowledge
    its four IAM5 findings on the role's default policy, saying what the role reads there."""
    policy = default_policy(role)
    stack = Stack.of(role)
    for finding in (
        "Action::s3:GetBucket*",
        "Action::s3:GetObject*",
        "Action::s3:List*",
        f"Resource::arn:aws:s3:::cdk-hnb659fds-assets-{stack.account}-{stack.region}/*",
    ):
        acknowledge(
            policy, "IAM5", finding=finding, reason=f"Read access to the CDK asset bucket, granted by CDK for {what}."
        )


def acknowledge(
    construct: IConstruct, rule: str, reason: str, finding: str | None = None, pack: str = AWS_SOLUTIONS
) -> None:
    """Acknowledge `rule` (e.g. "IAM5") of `pack` on `construct`; `finding` narrows it to one detail of the
    rule (e.g. "Resource::<Raw1234.Arn>/*"), as cdk-nag reports each wildcard separately."""
    rule_id = f"{pack}::{pack}-{rule}" + (f"[{finding}]" if finding else "")
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def acknowledge_compliance(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge `rule` (e.g. "S3BucketReplicationEnabled") of both compliance packs on `construct`."""
    for pack in COMPLIANCE_PACKS:
        acknowledge(construct, rule, reason, pack=pack)
