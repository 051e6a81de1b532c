"""What each workflow role may do is what its workflows call, found in the code: every boto3 call that a
workflow's Python steps can reach (whatever module it lives in) is mapped to its IAM action and must be
allowed to the role the job assumes; and no role holds an action none of its jobs calls. Key resources and
conditions are checked with a small policy evaluator (moto authorises everything; this is the gate).

Clients are named after their service (`cfn`, `s3`, `ecr`, `logs`, `sns`, `sfn`, ...) or created in place
(`client("lambda").invoke(...)`): that is how a call is tied to its service here."""

from __future__ import annotations

import ast
import fnmatch
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk.assertions import Template

from infra.model_alias import MLFLOW_ACTIONS
from infra.naming import resource_name, table_job_name
from infra.oidc import build_oidc_stacks
from infra.platform import create_app
from infra.smoke import CHECK_CONTRACT
from infra.stack_outputs import INVOKED_BY_SMOKE_CHECK_TAG
from infra.workspace import MAX_WORKSPACE_LENGTH, Stage, resolve

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((ROOT / ".github" / "workflows").glob("*.yml"))}
SCANNED = [
    p
    for p in (ROOT / "infra").rglob("*.py")
    if not {"stacks", "constructs", "emulator", "assets", "invariants"} & set(p.relative_to(ROOT).parts)
]
RECEIVERS = {
    "cfn": "cloudformation",
    "cloudformation": "cloudformation",
    "s3": "s3",
    "ecr": "ecr",
    "logs": "logs",
    "sns": "sns",
    "sfn": "stepfunctions",
    "stepfunctions": "stepfunctions",
    "lam": "lambda",
    "sts": "sts",
    "elbv2": "elbv2",
    "sqs": "sqs",
    "glue": "glue",
}
PREFIX = {"stepfunctions": "states", "elbv2": "elasticloadbalancing"}
ACTION = {
    "s3:ListObjectVersions": ["s3:ListBucketVersions"],
    "s3:ListObjectsV2": ["s3:ListBucket"],
    "s3:DeleteObjects": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
    "s3:HeadObject": ["s3:GetObject"],
    "lambda:Invoke": ["lambda:InvokeFunction"],
    "ecr:DescribeImages": ["ecr:DescribeImages"],
    "sqs:SendMessageBatch": ["sqs:SendMessage"],
}
"""Operations whose IAM action has another name (or two: deleting versions needs DeleteObjectVersion)."""
SIGNED = {"lambda": {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}}
"""A request signed by hand (`SigV4Auth(credentials, "<service>", region)`), not a boto call: what AWS checks for
it. For `lambda`, a function URL's GET (infra/smoke.py signed_http_get), which asks for both actions."""
WAITERS = {"stack_delete_complete": "cloudformation:DescribeStacks"}
IMPLIED = {"sns:Publish": {"kms:GenerateDataKey*", "kms:Decrypt"}}
"""Actions AWS checks on the caller for a call's side effect: publishing to an encrypted topic uses its key."""
IMPLIED_WHERE_DATA_IS_ENCRYPTED = {"s3:PutObject": {"kms:GenerateDataKey", "kms:Decrypt"}}
"""The same in int and prd, whose buckets are encrypted with the workspace's key: S3 uses it for the caller."""
LIFECYCLE = "infra.lifecycle"
"""The command (`python -m infra.lifecycle <subcommand>`); its functions live in the package's modules:"""
STACKS, DESTROY, ASSETS = "infra.lifecycle.stacks", "infra.lifecycle.destroy", "infra.lifecycle.assets"
JANITOR, LIFECYCLE_CLI = "infra.lifecycle.janitor", "infra.lifecycle.cli"
ENTRIES = {  # (module, subcommand) -> the functions it runs
    (LIFECYCLE, "guard"): [(STACKS, "guard_deploy")],
    (LIFECYCLE, "components"): [(STACKS, "refuse_switched_off")],
    (LIFECYCLE, "find"): [(STACKS, "find_workspace"), (STACKS, "find_owned"), (STACKS, "deletion_order")],
    (LIFECYCLE, "destroy"): [(DESTROY, "destroy_workspace"), (STACKS, "find_owned"), (LIFECYCLE_CLI, "nothing_owned")],
    (LIFECYCLE, "orphans"): [
        (STACKS, "list_stacks"),
        (JANITOR, "find_orphans"),
        (JANITOR, "busy_workspaces"),
        (JANITOR, "plausible_branches"),
        (DESTROY, "destroy_workspace"),
        (ASSETS, "sweep_assets"),
    ],
    (LIFECYCLE, "janitor-summary"): [(JANITOR, "janitor_summary")],
    (LIFECYCLE, "destroy-summary"): [(DESTROY, "destroy_summary")],
    ("infra.pr_diff", "gate"): [("infra.pr_diff", "workspace_skip_reason"), ("infra.pr_diff", "read_env_file")],
    ("infra.pr_diff", "int-baselines"): [
        ("infra.pr_diff", "assembly_templates"),
        ("infra.pr_diff", "int_baselines"),
        ("infra.pr_diff", "gone_from_int"),
        ("infra.pr_diff", "write_baselines"),
    ],
    ("infra.pr_diff", "deployed-baselines"): [
        ("infra.pr_diff", "assembly_templates"),
        ("infra.pr_diff", "write_deployed_baselines"),
    ],
    ("infra.pr_diff", "diff"): [("infra.pr_diff", "diff_all")],
    ("infra.pr_diff", "comment"): [
        ("infra.pr_diff", "_report"),
        ("infra.pr_diff", "render_comment"),
        ("infra.pr_diff", "render_summary"),
    ],
    ("infra.pr_diff", "check"): [("infra.pr_diff", "destructive_changes"), ("infra.pr_diff", "verdict")],
    ("infra.github_events", None): [("infra.github_events", "main")],
    ("infra.releases", "ref"): [("infra.releases", "deploy_ref")],
    ("infra.releases", "check"): [("infra.releases", "main")],
    ("infra.smoke", None): [("infra.smoke", "main")],
    ("infra.backfill", None): [("infra.backfill", "main")],
    ("infra.model_alias", None): [("infra.model_alias", "main"), ("infra.model_alias", "tracking_arn")],
    ("infra.workspace", None): [("infra.workspace.cli", "main")],
    ("infra.cost", None): [("infra.cost_cli", "main")],
}
MLFLOW_CALLS = {
    ("infra.model_alias", None): {f"sagemaker-mlflow:{a}" for a in MLFLOW_ACTIONS} | {"sagemaker:CallMlflowAppApi"}
}
"""What a command asks MLflow (through its client, not boto3: the scan cannot see it), as a proxy recorded it
(tests/model_service/test_image.py); an App's calls go through SageMaker's CallMlflowAppApi as well."""
CLI = {"npx cdk deploy": {"sts:AssumeRole"}, "npx cdk diff --app cdk.out": set(), "make synth": set()}
"""The CDK CLI deploys through the bootstrap roles; a diff of local templates and a synth call nothing."""


@cache
def operations(service: str) -> frozenset[str]:
    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(service)
    return frozenset(xform_name(name) for name in model.operation_names)


def op_action(service: str, op: str) -> list[str]:
    name = "".join(part.title() for part in op.split("_"))
    action = f"{PREFIX.get(service, service)}:{name}"
    return ACTION.get(action, [action])


def _service_of(receiver: ast.expr) -> str | None:
    if isinstance(receiver, ast.Name):
        return RECEIVERS.get(receiver.id)
    if isinstance(receiver, ast.Attribute):
        return RECEIVERS.get(receiver.attr)
    if isinstance(receiver, ast.Call) and receiver.args and isinstance(receiver.args[0], ast.Constant):
        func = receiver.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name == "client" and isinstance(receiver.args[0].value, str):
            return receiver.args[0].value
    return None


class Function:
    """One function's AWS actions and the functions it calls, resolved to (module, name)."""

    def __init__(self, node: ast.AST, module: Module) -> None:
        self.actions: set[str] = set()
        self.calls: set[tuple[str, str]] = set()
        for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
            self._operation_by_name(call)
            func = call.func
            if isinstance(func, ast.Name):
                if func.id == "SigV4Auth" and len(call.args) > 1 and isinstance(call.args[1], ast.Constant):
                    self.actions |= SIGNED[str(call.args[1].value)]
                self.calls.add(module.resolve(func.id))
                continue
            if not isinstance(func, ast.Attribute):
                continue
            if isinstance(func.value, ast.Name) and func.value.id in module.modules:  # lifecycle.destroy(...)
                self.calls.add((module.modules[func.value.id], func.attr))
            service = _service_of(func.value)
            if service is None:
                continue
            first = call.args[0].value if call.args and isinstance(call.args[0], ast.Constant) else None
            if func.attr == "get_paginator" and isinstance(first, str):
                self.actions.update(op_action(service, first))
            elif func.attr == "get_waiter" and isinstance(first, str):
                self.actions.add(WAITERS[first])
            elif func.attr in operations(service):
                self.actions.update(op_action(service, func.attr))

    def _operation_by_name(self, call: ast.Call) -> None:
        """A helper handed a client and an operation's name (`_pages(ecr, "describe_images", ...)`)."""
        services = {_service_of(arg) for arg in call.args} - {None}
        names = {arg.value for arg in call.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)}
        for service in services:
            for name in names & operations(service):
                self.actions.update(op_action(service, name))


class Module:
    """A scanned module: its functions (nested ones and methods included) and what its names refer to."""

    def __init__(self, path: Path) -> None:
        self.name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text())
        self.imported: dict[str, tuple[str, str]] = {}
        self.modules: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("infra"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    if full in MODULE_NAMES:
                        self.modules[alias.asname or alias.name] = full
                    else:
                        self.imported[alias.asname or alias.name] = (node.module, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in MODULE_NAMES:
                        self.modules[alias.asname or alias.name] = alias.name
        self.defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        self.functions = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self.functions.setdefault(node.name, []).append(node)

    def resolve(self, name: str) -> tuple[str, str]:
        if name in self.defined:
            return self.name, name
        return self.imported.get(name, ("", name))


MODULE_NAMES = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__") for p in SCANNED}


@cache
def functions() -> dict[tuple[str, str], list[Function]]:
    found: dict[tuple[str, str], list[Function]] = {}
    for path in SCANNED:
        module = Module(path)
        for name, nodes in module.functions.items():
            found[(module.name, name)] = [Function(node, module) for node in nodes]
    return found


def reachable_actions(entries: list[tuple[str, str]]) -> set[str]:
    seen: set[tuple[str, str]] = set()
    actions: set[str] = set()
    todo = list(entries)
    while todo:
        key = todo.pop()
        if key in seen or key not in functions():
            continue
        seen.add(key)
        for function in functions()[key]:
            actions |= function.actions
            todo += function.calls
    return actions


def job_commands(job: dict) -> Iterator[tuple[str, str | None] | str]:
    for step in job.get("steps", []):
        for line in step.get("run", "").splitlines():
            match = re.search(r"python -m (infra\.\w+)(?: (\S+))?", line)
            if match:
                module, word = match[1], match[2]
                sub = word if (module, word) in ENTRIES else None
                assert (module, sub) in ENTRIES, f"{line.strip()}: add {module} {word} to ENTRIES"
                yield module, sub
            for cli in CLI:
                if cli in line:
                    yield cli


def role_of(job: dict) -> str | None:
    for step in job.get("steps", []):
        if str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials"):
            return re.search(r"outputs\.(\w+)_role", step["with"]["role-to-assume"])[1]
    return None


def jobs_by_role() -> dict[str, list[tuple[str, set[str]]]]:
    by_role: dict[str, list[tuple[str, set[str]]]] = {}
    for name, workflow in WORKFLOWS.items():
        for job_name, job in workflow["jobs"].items():
            role = role_of(job)
            if role is None:
                continue
            actions: set[str] = set()
            for command in job_commands(job):
                actions |= (
                    CLI[command]
                    if isinstance(command, str)
                    else reachable_actions(ENTRIES[command]) | MLFLOW_CALLS.get(command, set())
                )
            actions |= {implied for action in actions for implied in IMPLIED.get(action, ())}
            by_role.setdefault(role, []).append((f"{name}.{job_name}", actions))
    return by_role


@pytest.fixture(scope="module")
def role_policies(config, tmp_path_factory) -> dict[tuple[str, Stage], list[dict[str, Any]]]:
    app = create_app(outdir=str(tmp_path_factory.mktemp("oidc-roles")))
    stacks = build_oidc_stacks(app, config)
    app.synth()
    found = {}
    for stage, stack in zip(Stage, stacks, strict=True):
        for logical_id, policy in Template.from_stack(stack).find_resources("AWS::IAM::Policy").items():
            for kind, prefix in (("deploy", "DeployRole"), ("pr", "PullRequestRole"), ("destroy", "DestroyRole")):
                if logical_id.startswith(prefix):
                    found[(kind, stage)] = policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def allowed(statements: list[dict], action: str, resource: str = "*", context: dict[str, str] | None = None) -> bool:
    """IAM's answer for one request: an explicit Deny wins, else any Allow whose action, resource and
    (StringEquals/StringLike) conditions match."""
    context = context or {}

    def matches(statement: dict) -> bool:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if not any(fnmatch.fnmatchcase(action, a) for a in actions):
            return False
        if not any(isinstance(r, str) and fnmatch.fnmatchcase(resource, r) for r in resources):
            return False
        for operator, pairs in statement.get("Condition", {}).items():
            for key, value in pairs.items():
                values = value if isinstance(value, list) else [value]
                if key not in context:
                    return statement["Effect"] == "Deny" and False
                test = fnmatch.fnmatchcase if operator == "StringLike" else str.__eq__
                if not any(test(context[key], v) for v in values):
                    return False
        return True

    if any(s["Effect"] == "Deny" and matches(s) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and matches(s) for s in statements)


def actions_of(statements: list[dict]) -> set[str]:
    return {
        a
        for s in statements
        if s["Effect"] == "Allow"
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }


def test_every_workflow_job_is_mapped_to_a_role_and_its_calls() -> None:
    by_role = jobs_by_role()
    assert set(by_role) == {"deploy", "pr", "destroy"}
    calls = {job: actions for jobs in by_role.values() for job, actions in jobs}
    assert "cloudformation:DeleteStack" in calls["destroy.destroy"], "the scan reaches destroy's calls"
    assert {"s3:PutObject", "lambda:InvokeFunction", "states:ListExecutions"} <= calls["deploy-feature.deploy"]
    assert calls["pr-diff.diff"] == {"cloudformation:GetTemplate"}


@pytest.mark.parametrize("role", ["deploy", "pr", "destroy"])
def test_each_role_may_do_what_its_jobs_call_and_nothing_else(role_policies, role: str) -> None:
    jobs = jobs_by_role()[role]
    stages = list(Stage) if role == "deploy" else [Stage.FEATURE]
    for stage in stages:
        implied = IMPLIED_WHERE_DATA_IS_ENCRYPTED if stage.is_persistent else {}
        jobs_here = [(job, actions | {i for a in actions for i in implied.get(a, ())}) for job, actions in jobs]
        needed = set().union(*(actions for _, actions in jobs_here))
        statements = role_policies[(role, stage)]
        granted = actions_of(statements)
        for job, actions in jobs_here:
            missing = {a for a in actions if not any(fnmatch.fnmatchcase(a, g) for g in granted)}
            assert not missing, f"{job} calls {sorted(missing)}, which the {role} role ({stage.value}) lacks"
        unused = {g for g in granted if not any(fnmatch.fnmatchcase(a, g) for a in needed)}
        assert not unused, f"the {role} role ({stage.value}) holds {sorted(unused)}, which none of its jobs calls"


def test_resources_and_conditions_keep_each_role_to_its_own(role_policies, config) -> None:
    project, account, region = config.project, config.stage(Stage.FEATURE).account, config.stage(Stage.FEATURE).region
    destroy, pr = role_policies[("destroy", Stage.FEATURE)], role_policies[("pr", Stage.FEATURE)]
    deploy = role_policies[("deploy", Stage.FEATURE)]

    def stack(name: str) -> str:
        return f"arn:aws:cloudformation:{region}:{account}:stack/{project}-{name}/0a1b2c3d"

    feature = {"aws:ResourceTag/stage": "feature", "aws:ResourceAccount": account}
    assert allowed(destroy, "cloudformation:DeleteStack", stack("we-42-x-etl"), feature)
    assert not allowed(destroy, "cloudformation:DeleteStack", stack("we-42-x-etl"), {"aws:ResourceTag/stage": "int"})
    assert not allowed(destroy, "cloudformation:DeleteStack", stack("int-storage"), feature), "denied by name"
    assert allowed(
        destroy, "s3:DeleteObjectVersion", f"arn:aws:s3:::{project}-we-42-x-storage-rawbucket1-abc/k", feature
    )
    assert not allowed(destroy, "s3:DeleteObject", f"arn:aws:s3:::{project}-prd-storage-rawbucket1-abc/k", feature)
    assert not allowed(destroy, "s3:DeleteObject", "arn:aws:s3:::someone-elses-bucket/k", feature)
    assert allowed(
        destroy,
        "logs:DeleteLogGroup",
        f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{project}-we-42-x-etl-Ingest",
    )
    for role in (pr, deploy):
        assert not allowed(role, "cloudformation:DeleteStack", stack("we-42-x-etl"), feature)
        assert not allowed(role, "s3:DeleteObject", f"arn:aws:s3:::{project}-we-42-x-storage-raw/k", feature)
    assert allowed(
        deploy, "s3:PutObject", f"arn:aws:s3:::{project}-we-42-x-storage-landing-1/platform_check/smoke/f", feature
    )
    assert not allowed(
        deploy, "s3:PutObject", f"arn:aws:s3:::{project}-we-42-x-storage-landing-1/diabetes/p/f", feature
    ), "the smoke check lands only check data"


LONGEST_BRANCH = "feature/WEDATAIN-1234-" + "a-very-long-description" * 4
STAGE_REFS = {
    Stage.FEATURE: f"refs/heads/{LONGEST_BRANCH}",
    Stage.INT: "refs/heads/main",
    Stage.PRD: "refs/tags/v1.2.3",
}


def generated(stack: str, logical_id: str, limit: int, *, lower: bool = False) -> str:
    """A name CloudFormation generates (`<stack>-<logical id>-<random>`), cut to the service's limit from
    the middle: the start, and so the project and workspace prefix, is kept."""
    suffix = "-A1B2C3D4E5F6"
    name = f"{stack}-{logical_id}"[: limit - len(suffix)] + suffix
    return name.lower() if lower else name


def touched(stage: Stage, config) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """Each action the workflows call, with every resource one call touches (and the request context IAM
    sees), for the stage's workspace; a feature workspace as long as its name may be. The resources are
    those the lifecycle and smoke code name (stacks by tag, their buckets, functions, clusters and topic,
    the bootstrap bucket, repository and roles)."""
    settings = config.stage(stage)
    project, account, region = config.project, settings.account, settings.region
    workspace = resolve(STAGE_REFS[stage], config.naming_rules).workspace
    assert stage is not Stage.FEATURE or len(workspace) == MAX_WORKSPACE_LENGTH
    stack = {c: f"{project}-{workspace}-{c}" for c in ("storage", "etl", "ml", "model-service", "monitoring")}

    def stack_arn(name: str) -> str:
        return f"arn:aws:cloudformation:{region}:{account}:stack/{name}/0a1b2c3d-1111-2222-3333-444455556666"

    own = {"aws:ResourceAccount": account, "aws:ResourceTag/stage": stage.value}
    buckets = [
        generated(stack["storage"], f"{kind}Bucket1A2B3C4D", 63, lower=True)
        for kind in ("Landing", "Raw", "Curated", "Artifacts")
    ]
    landing, raw, curated = buckets[0], buckets[1], buckets[2]
    assets = f"cdk-hnb659fds-assets-{account}-{region}"
    images = f"arn:aws:ecr:{region}:{account}:repository/cdk-hnb659fds-container-assets-{account}-{region}"
    function = generated(stack["etl"], "IngestFunction1A2B3C4D", 64)
    cluster = generated(stack["model-service"], "Cluster1A2B3C4D", 255)
    machine = resource_name(project, workspace, "pipeline")
    # the shared promotion, and a table's own (config etl.dedicated_jobs), which a backfill of it starts
    promotion_jobs = [
        resource_name(project, workspace, "staging-to-curated"),
        table_job_name(project, workspace, "staging-to-curated", "clinic/appointments"),
    ]
    execution = f"arn:aws:states:{region}:{account}:execution:{machine}:0a1b2c3d"
    stacks = [(stack_arn(name), own) for name in stack.values()]
    objects = [(f"arn:aws:s3:::{b}/diabetes/patients/a.csv", own) for b in buckets] + [
        (f"arn:aws:s3:::{assets}/{'0' * 64}.zip", {"aws:ResourceAccount": account})
    ]
    mlflow = (  # the stage's own MLflow, as config makes it: prd a tracking server, the others an App
        f"arn:aws:sagemaker:{region}:{account}:mlflow-tracking-server/{resource_name(project, workspace, 'mlflow')}"
        if settings.ml.mlflow == "tracking-server"
        else f"arn:aws:sagemaker:{region}:{account}:mlflow-app/app-0a1b2c3d4e5f"
    )
    tag, value = INVOKED_BY_SMOKE_CHECK_TAG
    return {
        "cloudformation:DescribeStacks": [("*", {})],
        "elasticloadbalancing:DescribeTargetHealth": [("*", {})],  # a Describe* of ELB takes no resource
        "cloudformation:GetTemplate": stacks,
        "cloudformation:ListStackResources": stacks,
        "cloudformation:DescribeStackEvents": stacks,
        "cloudformation:DeleteStack": stacks,
        "s3:ListBucketVersions": [(f"arn:aws:s3:::{b}", own) for b in [*buckets, assets]],
        "s3:DeleteObject": objects,
        "s3:DeleteObjectVersion": objects,
        "ecr:DescribeImages": [(images, {})],
        "ecr:BatchDeleteImage": [(images, {})],
        "ecr:ListImages": [(f"arn:aws:ecr:{region}:{account}:repository/{stack['model-service'].lower()}-repo", {})],
        "logs:DeleteLogGroup": [
            (f"arn:aws:logs:{region}:{account}:log-group:{group}", {})
            for group in (f"/aws/lambda/{function}", f"/aws/ecs/containerinsights/{cluster}/performance")
        ],
        "sns:Publish": [
            (f"arn:aws:sns:{region}:{account}:{generated(stack['monitoring'], 'AlarmTopic1A2B3C4D', 256)}", {})
        ],
        "kms:GenerateDataKey*": [
            (f"arn:aws:kms:{region}:{account}:key/0a1b2c3d", {"kms:ViaService": f"sns.{region}.amazonaws.com"})
        ],
        "kms:Decrypt": [
            (f"arn:aws:kms:{region}:{account}:key/0a1b2c3d", {"kms:ViaService": f"sns.{region}.amazonaws.com"})
        ],
        "sts:AssumeRole": [
            (f"arn:aws:iam::{account}:role/cdk-hnb659fds-{kind}-role-{account}-{region}", {})
            for kind in ("deploy", "file-publishing", "image-publishing", "lookup")
        ],
        "s3:PutObject": [(f"arn:aws:s3:::{landing}/{CHECK_CONTRACT}/smoke-20261202T000000Z-0a1b2c3d.csv", own)],
        "s3:ListBucket": [
            (f"arn:aws:s3:::{raw}", {**own, "s3:prefix": f"{CHECK_CONTRACT}/"}),
            (f"arn:aws:s3:::{curated}", {**own, "s3:prefix": f"{CHECK_CONTRACT.split('/')[0]}/"}),
            (f"arn:aws:s3:::{raw}", {**own, "s3:prefix": "diabetes/patients/"}),  # a backfill's table
        ],
        "sqs:SendMessage": [
            (f"arn:aws:sqs:{region}:{account}:{generated(stack['etl'], 'RawFileQueue1A2B3C4D', 80)}", {})
        ],
        "glue:StartJobRun": [(f"arn:aws:glue:{region}:{account}:job/{job}", {}) for job in promotion_jobs],
        "glue:GetJobRuns": [(f"arn:aws:glue:{region}:{account}:job/{job}", {}) for job in promotion_jobs],
        "lambda:InvokeFunction": [
            (
                f"arn:aws:lambda:{region}:{account}:function:{function}",
                {"aws:ResourceTag/project": project, f"aws:ResourceTag/{tag}": value},
            ),
            (f"arn:aws:lambda:{region}:{account}:function:{resource_name(project, workspace, 'service')}", {}),
        ],
        "lambda:InvokeFunctionUrl": [
            (
                f"arn:aws:lambda:{region}:{account}:function:{resource_name(project, workspace, 'service')}",
                {"lambda:FunctionUrlAuthType": "AWS_IAM"},
            )
        ],
        "states:ListExecutions": [(f"arn:aws:states:{region}:{account}:stateMachine:{machine}", {})],
        **{action: [(mlflow, {})] for action in MLFLOW_CALLS[("infra.model_alias", None)]},
        "states:DescribeExecution": [(execution, {})],
        "states:GetExecutionHistory": [(execution, {})],
    }


@pytest.mark.parametrize("role", ["deploy", "pr", "destroy"])
def test_every_call_is_allowed_on_the_resources_it_touches(role_policies, config, role: str) -> None:
    """The role's policy allows each call of its jobs on each resource that call touches, conditions
    included, in every stage it serves and for the longest workspace name."""
    needed = set().union(*(actions for _, actions in jobs_by_role()[role]))
    for stage in list(Stage) if role == "deploy" else [Stage.FEATURE]:
        resources = touched(stage, config)
        unmapped = needed - set(resources)
        assert not unmapped, f"{sorted(unmapped)}: add the resources these calls touch to touched()"
        for action in sorted(needed):
            for resource, context in resources[action]:
                assert allowed(role_policies[(role, stage)], action, resource, context), (
                    f"the {role} role ({stage.value}) may not {action} on {resource} ({context})"
                )


def test_the_scan_finds_a_call_added_anywhere(tmp_path, monkeypatch) -> None:
    """A new call in any scanned module is seen (a check on the check)."""
    source = "def destroy_workspace(client):\n    sns = client('sns')\n    sns.publish(TopicArn='t', Message='m')\n"
    path = tmp_path / "anywhere.py"
    path.write_text(source)
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    node = ast.parse(source).body[0]
    assert Function(node, Module(path)).actions == {"sns:Publish"}
    handed = ast.parse("def f(ecr):\n    return list(pages(ecr, 'describe_images', repositoryName='r'))\n").body[0]
    assert Function(handed, Module(path)).actions == {"ecr:DescribeImages"}
    assert op_action("s3", "delete_objects") == ["s3:DeleteObject", "s3:DeleteObjectVersion"]
    assert shlex.split("a b") == ["a", "b"]
