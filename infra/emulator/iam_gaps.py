"""Where moto's IAM enforcement differs from AWS's, closed for the lifecycle's IAM-enforced runs.

moto evaluates a policy's actions, not its resources or conditions: a call carries resource "*" (S3 aside),
which an Allow on a specific ARN never matches, and a condition without a context value denies. It also
wants a signature on AssumeRoleWithWebIdentity, which AWS takes unsigned (the token is the credential).
These patches make an Allow's resources and conditions count as met and a Deny of named resources not
apply (the static test, tests/workflows/test_role_calls.py, checks those), and let the web-identity call
through. Inert while enforcement is off (moto's default)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.core.authorization import ActionAuthenticatorMixin
from moto.iam.access_control import IAMPolicyStatement, PermissionResult

from infra.emulator import patching

PUBLIC_ACTIONS = frozenset({"AssumeRoleWithWebIdentity"})


def actions_only(evaluate: Callable[..., PermissionResult]) -> Callable[..., PermissionResult]:
    def is_action_permitted(
        self: IAMPolicyStatement,
        action: str,
        resource: str = "*",
        principal: Any = None,
        incoming_condition_values: Any = None,
    ) -> PermissionResult:
        statement = dict(self._statement)
        if statement.get("Effect") == "Deny" and statement.get("Resource") not in (None, "*", ["*"]):
            return PermissionResult.NEUTRAL  # a deny of named resources: the static test's part
        statement.pop("Condition", None)
        if statement.get("Resource"):
            statement["Resource"] = "*"
        return evaluate(IAMPolicyStatement(statement), action, resource, principal, incoming_condition_values)

    return is_action_permitted


def public_web_identity(authorize: Callable[..., None]) -> Callable[..., None]:
    def authenticate(self: Any, resource: str = "*") -> None:
        if self._get_action() in PUBLIC_ACTIONS:
            return
        authorize(self, resource)

    return authenticate


def install() -> None:
    """Patch moto in this process (the emulator server)."""
    patching.replace(IAMPolicyStatement, "is_action_permitted", actions_only(IAMPolicyStatement.is_action_permitted))
    patching.replace(
        ActionAuthenticatorMixin,
        "_authenticate_and_authorize_normal_action",
        public_web_identity(ActionAuthenticatorMixin._authenticate_and_authorize_normal_action),
    )
