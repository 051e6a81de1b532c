"""Observability per workspace: the Lambdas trace actively and emit their metrics with the workspace as a
dimension; every alarm and graph on a custom metric reads one that something emits, with exactly its
dimensions (the handlers are run with their synthesised environment to see what they emit); and the
workspace's dashboard shows this workspace's pipeline and service, nobody else's."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest

from infra.constructs.pipeline_function import METRICS_NAMESPACE
from infra.naming import Component, resource_name, table_job_name
from infra.workspace import Stage
from lambdas.telemetry import (
    DEFAULT_DIMENSIONS_ENV,
    GATE_TABLE_METRICS,
    SERVICE_DIMENSION,
    TABLE_DIMENSION,
    TABLE_METRICS,
    Metric,
)
from pipeline.contract import load_contracts
from pipeline.layout import parse_raw_key
from tests.infra.conftest import MINIMAL_REF, lambda_functions, powertools_environment
from tests.infra.state_machine import definition
from tests.lambdas.harness import KEY as HARNESS_KEY
from tests.lambdas.harness import SOURCE_TABLE as HARNESS_SOURCE_TABLE
from tests.lambdas.harness import EmittedMetric, HandlerRun

AWS_NAMESPACES = re.compile(r"^(AWS/|Glue$|ECS/ContainerInsights$)")
"""Metrics AWS emits; every other namespace is ours and must have an emitter in the code or the templates."""
_TOKEN = "__TOKEN_{}__"


def predicted(environment: dict[str, str], names: set[str], tables: set[str] = frozenset()) -> set[EmittedMetric]:
    """What Powertools emits for these metric names, given a function's environment; a per-table metric
    once for each of `tables`, with the table's dimension."""
    dimensions = {
        **json.loads(environment[DEFAULT_DIMENSIONS_ENV]),
        SERVICE_DIMENSION: environment["POWERTOOLS_SERVICE_NAME"],
    }
    namespace = environment["POWERTOOLS_METRICS_NAMESPACE"]
    return {
        EmittedMetric(namespace, name, tuple(sorted(dimensions.items()))) for name in names if name not in TABLE_METRICS
    } | {
        EmittedMetric(namespace, name, tuple(sorted((dimensions | {TABLE_DIMENSION: table}).items())))
        for name in names
        if name in TABLE_METRICS
        for table in tables
    }


PIPELINE_FUNCTIONS = ("ingest", "dispatch", "validate", "gate", "promote")
"""Every ETL stack's functions; an extractor besides for each database source (`extract_function`)."""


def extract_function(workspace) -> set[str]:
    return {"extract"} if workspace.stacks[Component.ETL].extractors else set()


def tables_of(workspace, function: str) -> set[str]:
    """The tables a function's per-table metrics may name: an extractor's sources, every contract otherwise."""
    return set(workspace.stacks[Component.ETL].extractors) if function == "extract" else set(load_contracts())


HARNESS_TABLE = parse_raw_key(HARNESS_KEY).contract_name
"""The table of the file the harness runs the gate on (tests/lambdas/harness.py)."""


@pytest.fixture(scope="module")
def emitted_in_feature(handler_runs_in_feature: dict[str, HandlerRun]) -> dict[str, list[EmittedMetric]]:
    return {name: run.metrics for name, run in handler_runs_in_feature.items()}


@pytest.fixture(scope="module")
def empty_registry(tmp_path_factory) -> str:
    """A local MLflow store with no model: what a training job's report is run against."""
    from training.train import local_tracking_uri

    return local_tracking_uri(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="module")
def names_by_function(emitted_in_feature) -> dict[str, set[str]]:
    return {function: {m.name for m in emitted} for function, emitted in emitted_in_feature.items()}


# --- reading metrics out of templates ---------------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    """A metric an alarm or a graph reads; dimension values are strings or resolved references."""

    where: str
    namespace: str
    name: str
    dimensions: tuple[tuple[str, Any], ...]
    stat: str | None = None

    def key(self) -> tuple[str, str, tuple[tuple[str, Any], ...]]:
        return self.namespace, self.name, tuple(sorted(self.dimensions))


def _freeze(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


def alarm_reads(workspace) -> list[Read]:
    reads = []
    for component, template in workspace.templates.items():
        for logical_id, alarm in template.find_resources("AWS::CloudWatch::Alarm").items():
            props = alarm["Properties"]
            metrics = (
                [props]
                if "MetricName" in props
                else [q["MetricStat"]["Metric"] for q in props.get("Metrics", []) if "MetricStat" in q]
            )
            reads += [
                Read(
                    f"{component.value}/{logical_id}",
                    m["Namespace"],
                    m["MetricName"],
                    tuple((d["Name"], _freeze(d["Value"])) for d in m.get("Dimensions", [])),
                )
                for m in metrics
            ]
    return reads


def dashboards(workspace) -> dict[tuple[Component, str], dict[str, Any]]:
    return {
        (component, logical_id): r["Properties"]
        for component, template in workspace.templates.items()
        for logical_id, r in template.find_resources("AWS::CloudWatch::Dashboard").items()
    }


def dashboard_body(props: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """The body as JSON, each CloudFormation token in it replaced by a marker; and the tokens."""
    body = props["DashboardBody"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    tokens = [p for p in parts if not isinstance(p, str)]
    text, index = "", 0
    for part in parts:
        if isinstance(part, str):
            text += part
        else:
            text += _TOKEN.format(index)
            index += 1
    return json.loads(text), tokens


def widget_reads(workspace, component: Component, props: dict[str, Any]) -> dict[str, list[Read]]:
    """The metrics of each graph of a dashboard by its title, references resolved (see `resolve`)."""
    body, tokens = dashboard_body(props)

    def value(text: str) -> Any:
        """A dimension value: a string, a resolved reference, or a string built from references."""
        indexes = [int(i) for i in re.findall(r"__TOKEN_(\d+)__", text)]
        if not indexes:
            return text
        if text == _TOKEN.format(indexes[0]):
            return resolve(workspace, component, tokens[indexes[0]])
        return Derived(frozenset().union(*(references(resolve(workspace, component, tokens[i])) for i in indexes)))

    by_title: dict[str, list[Read]] = {}
    for widget in body["widgets"]:
        if widget["type"] != "metric":
            continue
        reads = by_title.setdefault(widget["properties"]["title"], [])
        for entry in widget["properties"]["metrics"]:
            options = entry[-1] if isinstance(entry[-1], dict) else {}
            plain = [e for e in entry if not isinstance(e, dict)]
            namespace, name, rest = plain[0], plain[1], plain[2:]
            dimensions = tuple((rest[i], value(rest[i + 1])) for i in range(0, len(rest), 2))
            reads.append(
                Read(
                    f"{component.value}/dashboard/{widget['properties']['title']}",
                    namespace,
                    name,
                    dimensions,
                    options.get("stat"),
                )
            )
    return by_title


@dataclass(frozen=True)
class Resource:
    """A reference resolved to the resource it names, in this workspace's stacks."""

    component: Component
    logical_id: str
    attribute: str = "Ref"


@dataclass(frozen=True)
class Derived:
    """A value computed from references, e.g. a load balancer's name cut out of its listener's ARN."""

    references: frozenset[Resource]


def resolve(workspace, component: Component, token: Any) -> Any:
    """A token of `component`'s template as a `Resource` of this workspace (following Fn::GetStackOutput into
    the producing stack), the region, or a `Derived` value; a reference to another workspace's stack raises
    StopIteration."""
    if "Ref" in token:
        return "<region>" if token["Ref"] == "AWS::Region" else Resource(component, token["Ref"])
    if "Fn::GetAtt" in token:
        return Resource(component, *token["Fn::GetAtt"])
    if "Fn::GetStackOutput" in token:
        output = token["Fn::GetStackOutput"]
        producer = next(c for c, s in workspace.stacks.items() if s.stack_name == output["StackName"])
        value = template_json(workspace, producer)["Outputs"][output["OutputName"]]["Value"]
        return resolve(workspace, producer, value)
    inner = [v for v in (token.values() if isinstance(token, dict) else token) if isinstance(v, dict | list)]
    return Derived(frozenset().union(*(references(resolve(workspace, component, v)) for v in inner)))


def references(value: Any) -> frozenset[Resource]:
    if isinstance(value, Resource):
        return frozenset({value})
    return value.references if isinstance(value, Derived) else frozenset()


_TEMPLATES: dict[tuple[str, Component], dict[str, Any]] = {}


def template_json(workspace, component: Component) -> dict[str, Any]:
    """The template as JSON, read once (each to_json() is a round trip through jsii)."""
    key = (workspace.target.workspace, component)
    if key not in _TEMPLATES:
        _TEMPLATES[key] = workspace.templates[component].to_json()
    return _TEMPLATES[key]


def properties(workspace, resource: Resource) -> dict[str, Any]:
    return template_json(workspace, resource.component)["Resources"][resource.logical_id]["Properties"]


def resource_type(workspace, resource: Resource) -> str:
    return template_json(workspace, resource.component)["Resources"][resource.logical_id]["Type"]


def all_reads(workspace) -> list[Read]:
    return alarm_reads(workspace) + [
        read
        for (component, _), props in dashboards(workspace).items()
        for reads in widget_reads(workspace, component, props).values()
        for read in reads
    ]


def metric_filter_outputs(workspace) -> set[tuple[str, str, tuple]]:
    """What the templates' metric filters emit: (namespace, name, dimensions)."""
    return {
        (t["MetricNamespace"], t["MetricName"], tuple(sorted((d["Key"], d["Value"]) for d in t.get("Dimensions", []))))
        for template in workspace.templates.values()
        for f in template.find_resources("AWS::Logs::MetricFilter").values()
        for t in f["Properties"]["MetricTransformations"]
    }


# --- the Lambdas ---------------------------------------------------------------------------------------------


def training_job_outputs(workspace, registry: str) -> set[tuple[str, str, tuple]]:
    """What a training job of the workspace's state machine reports: its arguments, from the template, parsed by
    training/train.py's own parser and given to the function that reports, whose call is recorded."""
    from training.train import argument_parser, report_champion_age

    template = template_json(workspace, Component.ML) if Component.ML in workspace.templates else {"Resources": {}}
    machines = [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    if not machines:
        return set()
    states = definition(template)["States"]
    args = argument_parser().parse_args(states["Train"]["Parameters"]["AlgorithmSpecification"]["ContainerArguments"])
    calls: list[dict] = []

    class Recorder:
        def put_metric_data(self, **call) -> None:
            calls.append(call)

    report_champion_age(
        args.metrics_namespace,
        args.metric_dimensions,
        model_name=args.model_name,
        data_now=args.data,
        tracking_uri=registry,  # no champion: the figure is 0, its name and dimensions real
        cloudwatch=Recorder(),
    )
    return {
        (call["Namespace"], datum["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in datum["Dimensions"])))
        for call in calls
        for datum in call["MetricData"]
    }


def test_the_lambdas_trace_actively_and_may_write_traces(workspace) -> None:
    template = workspace.templates[Component.ETL]
    functions = lambda_functions(workspace)
    assert set(functions) == set(PIPELINE_FUNCTIONS) | extract_function(workspace)
    for name, props in functions.items():
        assert props["TracingConfig"] == {"Mode": "Active"}, name
        role = props["Role"]["Fn::GetAtt"][0]
        policies = {**template.find_resources("AWS::IAM::Policy"), **template.find_resources("AWS::IAM::ManagedPolicy")}
        actions = {
            a
            for policy in policies.values()  # inline in feature stages, managed in int and prd
            if {"Ref": role} in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            for a in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
        }
        assert {"xray:PutTraceSegments", "xray:PutTelemetryRecords"} <= actions, name


def test_powertools_is_configured_by_the_environment_with_the_workspace_dimension(workspace) -> None:
    for name, props in lambda_functions(workspace).items():
        environment = powertools_environment(props)
        assert environment["POWERTOOLS_SERVICE_NAME"] == name
        assert environment["POWERTOOLS_METRICS_NAMESPACE"] == METRICS_NAMESPACE
        assert json.loads(environment[DEFAULT_DIMENSIONS_ENV]) == {"workspace": workspace.target.workspace}
        assert environment["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
        assert "METRICS_NAMESPACE" not in environment, "the handlers read Powertools' own variables only"


def test_the_handlers_emit_what_their_environment_says(
    workspaces, combinations, emitted_in_feature, names_by_function
) -> None:
    """Run with the feature workspaces' synthesised environments: every metric carries the workspace."""
    with_source = combinations[MINIMAL_REF]
    functions = {
        **{name: (props, with_source) for name, props in lambda_functions(with_source).items()},
        **{
            name: (props, workspaces[Stage.FEATURE])
            for name, props in lambda_functions(workspaces[Stage.FEATURE]).items()
        },
    }
    assert set(emitted_in_feature) == set(functions)
    assert set().union(*names_by_function.values()) == set(Metric), "every metric path ran"
    for name, emitted in emitted_in_feature.items():
        props, workspace = functions[name]
        tables = {HARNESS_SOURCE_TABLE} if name == "extract" else {HARNESS_TABLE}
        expected = predicted(powertools_environment(props), names_by_function[name], tables)
        assert emitted and set(emitted) == expected
        for metric in emitted:
            assert dict(metric.dimensions)["workspace"] == workspace.target.workspace, metric


def test_every_alarm_and_graph_on_a_custom_metric_reads_one_that_is_emitted(
    workspace, names_by_function, empty_registry
) -> None:
    """A metric nobody emits makes an alarm that never fires and a graph that stays empty. Emitted are: what
    the handlers emit with this workspace's environments (the previous test holds that prediction to a
    real run), and what the metric filters write; each must be read exactly: namespace, name, dimensions."""
    emitted = set().union(
        *(
            predicted(powertools_environment(props), names_by_function[name], tables_of(workspace, name))
            for name, props in lambda_functions(workspace).items()
        )
    )
    writable = (
        {(m.namespace, m.name, m.dimensions) for m in emitted}
        | metric_filter_outputs(workspace)
        | training_job_outputs(workspace, empty_registry)
    )
    custom = [read for read in all_reads(workspace) if not AWS_NAMESPACES.match(read.namespace)]
    assert custom, "the dashboard reads the handlers' metrics"
    unknown = [read for read in custom if read.key() not in writable]
    assert not unknown, "\n".join(f"{r.where} reads {r.key()}, which nothing emits" for r in unknown)
    assert {(m.namespace, m.name, m.dimensions) for m in emitted} <= {read.key() for read in custom}, (
        "the dashboard shows every metric the handlers emit"
    )


# --- the dashboard -----------------------------------------------------------------------------------------

PIPELINE_GRAPHS = (
    "Pipeline executions",
    "Files",
    "Quality gate",
    "Lambda errors and throttles",
    "Glue job runs",
    "Raw-file queue and promotions",
    "Waits",
    "Rows per table (gate)",
)
SERVICE_GRAPHS = ("Requests", "Target response time (s)", "5xx", "Health")
SERVERLESS_SERVICE_GRAPHS = ("Requests", "Request latency (ms)", "4xx and 5xx", "Health")


def _serverless(workspace) -> bool:
    return workspace.stacks[Component.MODEL_SERVICE].ctx.settings.service.mode == "serverless"


@pytest.fixture
def dashboard(workspace) -> dict[str, list[Read]]:
    """The workspace's one dashboard: in the model-service stack (infra/constructs/dashboard.py says why)."""
    (((component, _), props),) = dashboards(workspace).items()
    assert component is Component.MODEL_SERVICE
    assert props["DashboardName"] == resource_name(
        workspace.stacks[Component.ETL].ctx.config.project, workspace.target.workspace, "dashboard"
    )
    graphs = widget_reads(workspace, component, props)
    sources = ("Database sources",) if extract_function(workspace) else ()
    service = SERVERLESS_SERVICE_GRAPHS if _serverless(workspace) else SERVICE_GRAPHS
    assert tuple(graphs) == PIPELINE_GRAPHS + sources + service
    return graphs


def test_the_dashboard_shows_each_database_sources_rows_and_stops(workspace, dashboard) -> None:
    """Per table read from a database: the rows its extractor wrote to raw, and its runs that stopped short."""
    tables = set(workspace.stacks[Component.ETL].extractors)
    reads = dashboard.get("Database sources", [])
    shown = {(r.name, dict(r.dimensions)[TABLE_DIMENSION]) for r in reads}
    assert shown == {(m.value, t) for m in (Metric.ROWS_EXTRACTED, Metric.EXTRACT_INCOMPLETE) for t in tables}
    assert all(dict(r.dimensions)[SERVICE_DIMENSION] == "extract" for r in reads)


def _one(reads: list[Read], name: str) -> list[Read]:
    found = [r for r in reads if r.name == name]
    assert found, f"no {name} in {[r.name for r in reads]}"
    return found


def test_the_dashboard_shows_this_workspaces_state_machine(workspace, config, dashboard) -> None:
    reads = dashboard["Pipeline executions"]
    for name in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut"):
        (read,) = _one(reads, name)
        assert read.namespace == "AWS/States" and read.stat == "Sum"
        ((dimension, machine),) = read.dimensions
        assert dimension == "StateMachineArn"
        assert resource_type(workspace, machine) == "AWS::StepFunctions::StateMachine"
        assert properties(workspace, machine)["StateMachineName"] == resource_name(
            config.project, workspace.target.workspace, "pipeline"
        )


def test_the_dashboard_shows_this_workspaces_files_and_gate(workspace, dashboard) -> None:
    files, gate = dashboard["Files"], dashboard["Quality gate"]
    assert {(r.name, dict(r.dimensions)[SERVICE_DIMENSION]) for r in files} == {
        ("FilesIngested", "ingest"),
        ("FilesValid", "validate"),
        ("FilesQuarantined", "ingest"),
        ("FilesQuarantined", "validate"),
    }
    assert {r.name for r in gate} == {"GatePassed", "GateFailed"}
    for read in files + gate:
        assert read.namespace == METRICS_NAMESPACE and read.stat == "Sum"
        assert dict(read.dimensions)["workspace"] == workspace.target.workspace


def test_the_dashboard_shows_this_workspaces_lambda_errors(workspace, dashboard) -> None:
    errors = _one(dashboard["Lambda errors and throttles"], "Errors")
    shown = set()
    for read in errors:
        ((dimension, function),) = read.dimensions
        assert read.namespace == "AWS/Lambda" and dimension == "FunctionName"
        assert function.component is Component.ETL and resource_type(workspace, function) == "AWS::Lambda::Function"
        shown.add(properties(workspace, function)["Handler"])
    assert shown == {f"lambdas.{name}.handler.handler" for name in {*PIPELINE_FUNCTIONS, *extract_function(workspace)}}


def test_the_dashboard_shows_this_workspaces_raw_file_queue(workspace, dashboard) -> None:
    """Files waiting and the oldest one's wait, of the raw-file queue; executions dispatch started or found;
    passed batches waiting for a curated build, the longest wait, and the builds promote started."""
    queue_reads = [*dashboard["Raw-file queue and promotions"], *dashboard["Waits"]]
    for name in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"):
        (read,) = _one(queue_reads, name)
        ((dimension, queue),) = read.dimensions
        assert read.namespace == "AWS/SQS" and dimension == "QueueName" and read.stat == "Maximum"
        assert resource_type(workspace, queue) == "AWS::SQS::Queue" and queue.logical_id.startswith("RawFileQueue")
    for name, service in (("FileWaitSeconds", "dispatch"), ("PromotionWaitSeconds", "promote")):
        (wait,) = _one(dashboard["Waits"], name)
        assert wait.namespace == METRICS_NAMESPACE and wait.stat == "Maximum"
        assert dict(wait.dimensions)[SERVICE_DIMENSION] == service
    dispatched = [r for r in dashboard["Raw-file queue and promotions"] if r.namespace == METRICS_NAMESPACE]
    assert {(r.name, dict(r.dimensions)[SERVICE_DIMENSION]) for r in dispatched} == {
        ("ExecutionsStarted", "dispatch"),
        ("DuplicateEvents", "dispatch"),
        ("BatchesWaiting", "promote"),
        ("PromotionsStarted", "promote"),
    }


def test_the_dashboard_counts_this_workspaces_glue_runs_and_failures(workspace, config, dashboard) -> None:
    """Glue's job state changes, counted by EventBridge rules on this workspace's job names."""
    seen = set()
    for read in _one(dashboard["Glue job runs"], "TriggeredRules"):
        ((dimension, rule),) = read.dimensions
        assert read.namespace == "AWS/Events" and dimension == "RuleName"
        pattern = properties(workspace, rule)["EventPattern"]
        assert pattern["source"] == ["aws.glue"]
        ((job_ref,),) = [pattern["detail"]["jobName"]]
        job = resolve(workspace, rule.component, job_ref)
        assert resource_type(workspace, job) == "AWS::Glue::Job"
        seen |= {(properties(workspace, job)["Name"], state) for state in pattern["detail"]["state"]}
    for script in ("raw-to-staging", "staging-to-curated"):
        names = [resource_name(config.project, workspace.target.workspace, script)] + [
            table_job_name(config.project, workspace.target.workspace, script, table)
            for table in config.stage(workspace.target.stage).etl.dedicated_jobs  # prd: a table's own jobs
        ]
        for job_name in names:
            assert {(job_name, "SUCCEEDED"), (job_name, "FAILED"), (job_name, "TIMEOUT")} <= seen, job_name


def test_the_dashboard_shows_this_workspaces_service_function(workspace, dashboard) -> None:
    """Serverless (feature stages): the function URL's requests, latency, 4xx and 5xx, and the function's
    errors and throttles, each read by this workspace's function name; the model-load failures beside."""
    if not _serverless(workspace):
        pytest.skip("a service on Fargate: test_the_dashboard_shows_this_workspaces_load_balancer")
    template = workspace.templates[Component.MODEL_SERVICE]
    (function,) = [
        lid for lid, r in template.find_resources("AWS::Lambda::Function").items() if "ImageConfig" in r["Properties"]
    ]
    reads = [r for title in SERVERLESS_SERVICE_GRAPHS for r in dashboard[title] if r.namespace == "AWS/Lambda"]
    assert {r.name for r in reads} == {
        "UrlRequestCount",
        "UrlRequestLatency",
        "Url4xxCount",
        "Url5xxCount",
        "Errors",
        "Throttles",
    }
    for read in reads:
        assert dict(read.dimensions) == {"FunctionName": Resource(Component.MODEL_SERVICE, function)}, read
    assert sorted(r.stat for r in dashboard["Request latency (ms)"]) == ["p50", "p90", "p99"]
    assert {r.name for r in dashboard["Health"]} == {"Errors", "Throttles", "ModelLoadFailures"}


def test_the_dashboard_shows_this_workspaces_load_balancer(workspace, dashboard) -> None:
    """Load-balancer metrics name it by its full name: directly, or (target-group metrics) cut out of the ARN
    of its listener; target-group metrics also name the service's target group."""
    if _serverless(workspace):
        pytest.skip("a serverless service: test_the_dashboard_shows_this_workspaces_service_function")
    template = workspace.templates[Component.MODEL_SERVICE]
    (balancer,) = template.find_resources("AWS::ElasticLoadBalancingV2::LoadBalancer")
    (group,) = template.find_resources("AWS::ElasticLoadBalancingV2::TargetGroup")
    listeners = {
        Resource(Component.MODEL_SERVICE, lid)
        for lid, r in template.find_resources("AWS::ElasticLoadBalancingV2::Listener").items()
        if r["Properties"]["LoadBalancerArn"] == {"Ref": balancer}
    }

    def names_this_balancer(value: Any) -> bool:
        return value == Resource(Component.MODEL_SERVICE, balancer, "LoadBalancerFullName") or (
            isinstance(value, Derived) and bool(value.references) and value.references <= listeners
        )

    (requests,) = _one(dashboard["Requests"], "RequestCount")
    latency = _one(dashboard["Target response time (s)"], "TargetResponseTime")
    errors = dashboard["5xx"]
    assert {r.name for r in errors} == {"HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count"}
    assert sorted(r.stat for r in latency) == ["p50", "p90"]
    health = _one(dashboard["Health"], "UnHealthyHostCount")
    for read in [requests, *latency, *errors, *health]:
        assert read.namespace == "AWS/ApplicationELB"
        assert names_this_balancer(dict(read.dimensions)["LoadBalancer"]), read
    for read in [*latency, *health]:
        assert dict(read.dimensions)["TargetGroup"] == Resource(Component.MODEL_SERVICE, group, "TargetGroupFullName")
    assert {r.name for r in dashboard["Health"]} == {"UnHealthyHostCount", "ModelLoadFailures"}


def test_the_dashboard_shows_each_tables_rows_as_the_gate_counts_them(workspace, dashboard) -> None:
    reads = dashboard["Rows per table (gate)"]
    shown = {(r.name, dict(r.dimensions)[TABLE_DIMENSION]) for r in reads}
    rows = [m for m in GATE_TABLE_METRICS if m is not Metric.BATCHES_FAILED]  # an alarm per table shows that one
    assert shown == {(m.value, table) for m in rows for table in load_contracts()}
    for read in reads:
        assert read.namespace == METRICS_NAMESPACE and read.stat == "Sum"
        assert dict(read.dimensions)[SERVICE_DIMENSION] == "gate"
        assert dict(read.dimensions)["workspace"] == workspace.target.workspace


def test_each_table_alarms_when_a_batch_of_it_fails_its_gate(workspace) -> None:
    """One alarm per contract, on the gate's per-table verdict of that table alone: a new contract file gets
    its own (tests/quality/test_add_a_dataset.py adds one)."""
    reads = [r for r in alarm_reads(workspace) if r.name == Metric.BATCHES_FAILED.value]
    assert sorted(dict(r.dimensions)[TABLE_DIMENSION] for r in reads) == sorted(load_contracts())
    etl = workspace.templates[Component.ETL]
    for read in reads:
        alarm = etl.to_json()["Resources"][read.where.split("/", 1)[1]]["Properties"]
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
        assert alarm["Statistic"] == "Sum" and dict(read.dimensions)[SERVICE_DIMENSION] == "gate"
        assert dict(read.dimensions)[TABLE_DIMENSION] in alarm["AlarmDescription"]
