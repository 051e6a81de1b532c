"""Ingest, validation and transformation from raw to curated (the ETL issue fills it)."""

from __future__ import annotations

from constructs import Construct

from infra.naming import Component
from infra.stacks.base import WorkspaceContext, WorkspaceStack


class EtlStack(WorkspaceStack):
    component = Component.ETL

    def __init__(self, scope: Construct, ctx: WorkspaceContext) -> None:
        super().__init__(scope, ctx)
