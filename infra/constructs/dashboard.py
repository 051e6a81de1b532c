"""One CloudWatch dashboard per workspace: the pipeline and the model service on one page.

Each stack builds the widgets of its own resources (a `DashboardSection`); infra/platform.py places the
dashboard (`dashboard_home`: the model service's stack, or etl's where the service is switched off; none where
neither is on: nothing to show), lays the sections out and deploys that stack after every other. That stack
because it reads etl's state machine, functions and jobs and the service's load balancer, and only a stack
deployed after them can reference all of them without a cycle (in `monitoring` it would depend on etl, which
depends on monitoring for the alarm topic). Its references to etl are weak (Fn::GetStackOutput, cdk.json
defaultCrossStackReferences): they pin nothing in etl, and a destroy, which goes in reverse order, removes
the dashboard first.

Plain aws_cloudwatch rather than cdk-monitoring-constructs (which would fit aws-cdk-lib 2.275): a dozen
graphs need no facade; the library builds its own dashboards (summary, detail, alarms) and names, adds an
alarm convention beside infra/constructs/alarms.py, and a jsii assembly loaded at every synth; and the
graphs here must read exactly the metrics the handlers emit (tests/infra/test_observability.py), which is
simplest when each metric is built where its resource is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

FULL_WIDTH = 24  # a dashboard row is 24 units wide


@dataclass(frozen=True)
class DashboardSection:
    """A titled block of rows of widgets, built by the stack whose resources it shows."""

    title: str
    rows: Sequence[Sequence[cloudwatch.IWidget]]


def graph(title: str, metrics: Sequence[cloudwatch.IMetric], *, width: int = 8) -> cloudwatch.GraphWidget:
    """A time series of `metrics` on the left axis, six units high; `width` of 24."""
    return cloudwatch.GraphWidget(title=title, left=list(metrics), width=width, height=6)


class WorkspaceDashboard(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, dashboard_name: str, sections: Sequence[DashboardSection]
    ) -> None:
        """`sections` top to bottom, each under a heading; the dashboard opens on the last day."""
        super().__init__(scope, construct_id)
        widgets: list[list[cloudwatch.IWidget]] = []
        for section in sections:
            widgets.append([cloudwatch.TextWidget(markdown=f"## {section.title}", width=FULL_WIDTH, height=1)])
            widgets += [list(row) for row in section.rows]
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=dashboard_name, default_interval=Duration.days(1), widgets=widgets
        )
