"""What every stack of a workspace has in common: its name, environment, tags and stage rules."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, AspectPriority, Aspects, Environment, Stack, Tags, Validations
from constructs import Construct

from infra.aspects import StageRules
from infra.config import ProjectConfig, StageSettings
from infra.naming import (
    TAG_BRANCH,
    TAG_OWNER,
    TAG_PROJECT,
    TAG_RELEASE,
    TAG_STAGE,
    TAG_WORKSPACE,
    Component,
    stack_name,
)
from infra.releases import release_of
from infra.workspace import Stage, Target, branch_tag_value, owner_tag_value


@dataclass(frozen=True)
class WorkspaceContext:
    """The config and the target of one workspace: everything a stack may depend on."""

    config: ProjectConfig
    target: Target

    @property
    def stage(self) -> Stage:
        return self.target.stage

    @property
    def settings(self) -> StageSettings:
        return self.config.stage(self.stage)

    @property
    def ephemeral(self) -> bool:
        """Feature workspaces are destroyed with their branch, data included."""
        return not self.stage.is_persistent

    def stack_name(self, component: Component) -> str:
        return stack_name(self.config.project, self.target.workspace, component)

    def tags(self) -> dict[str, str]:
        return {
            **self.config.tags,
            TAG_PROJECT: self.config.project,
            TAG_STAGE: self.stage.value,
            TAG_WORKSPACE: self.target.workspace,
            TAG_BRANCH: branch_tag_value(self.target.name),
            TAG_OWNER: owner_tag_value(self.target.full_ref),
            **({TAG_RELEASE: release} if (release := release_of(self.target)) else {}),
        }


class WorkspaceStack(Stack):
    """A stack of one workspace. Subclasses set `component` and build their resources."""

    component: Component

    def __init__(self, scope: Construct, ctx: WorkspaceContext) -> None:
        name = ctx.stack_name(self.component)
        self._zones = list(ctx.settings.availability_zones)
        super().__init__(
            scope,
            name,
            stack_name=name,
            env=Environment(account=ctx.settings.account, region=ctx.settings.region),
            description=f"{ctx.config.project} {self.component.value} of workspace "
            f"{ctx.target.workspace} (stage {ctx.stage.value}, {ctx.target.ref_type} {ctx.target.name})",
            # Stack tags: the workflows find a workspace's stacks by them, and CloudFormation also
            # propagates them to resources it creates without a Tags property (custom resources).
            tags=ctx.tags(),
        )
        self.ctx = ctx
        for key, value in ctx.tags().items():  # and in the template, so that diffs and tests see them
            Tags.of(self).add(key, value)
        Aspects.of(self).add(StageRules(ctx.stage), priority=AspectPriority.MUTATING)
        Validations.of(self).acknowledge(
            Acknowledgment(
                id="CloudFormation-Validate::W3010",
                reason="Availability zones come from config on purpose: synthesis makes no look-ups.",
            )
        )

    @property
    def availability_zones(self) -> list[str]:
        """The stage's zones from config: CDK would otherwise look them up in the account at synth."""
        return self._zones
