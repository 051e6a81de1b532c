"""cdk-nag runs on every synth (the fixture fails with the findings); here: it does catch a finding."""

from __future__ import annotations

import json
import re

import pytest
from aws_cdk import App
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs

from infra.nag import COMPLIANCE_PACKS
from infra.naming import Component, table_id_part
from infra.platform import create_app
from infra.stacks.base import WorkspaceContext, WorkspaceStack
from infra.workspace import Stage, resolve
from tests.infra.conftest import combination_config


class _CarelessStack(WorkspaceStack):
    component = Component.ETL

    def __init__(self, scope: App, ctx: WorkspaceContext) -> None:
        super().__init__(scope, ctx)
        sqs.Queue(self, "PlainQueue")  # no TLS-only policy, no dead-letter queue


class _UnencryptedStack(WorkspaceStack):
    component = Component.STORAGE

    def __init__(self, scope: App, ctx: WorkspaceContext) -> None:
        super().__init__(scope, ctx)
        logs.LogGroup(self, "PlainLogs")  # no customer-managed key


@pytest.mark.parametrize(("ref", "checked"), [("main", True), ("refs/tags/v1.2.3", True), ("feature/x", False)])
def test_the_hipaa_and_nist_packs_check_int_and_prd_only(config, tmp_path, ref: str, checked: bool) -> None:
    app = create_app(outdir=str(tmp_path))
    _UnencryptedStack(app, WorkspaceContext(config, resolve(ref, config.naming_rules)))
    if not checked:
        app.synth()  # a feature workspace keeps its cheaper choices
        return
    with pytest.raises(RuntimeError) as caught:
        app.synth()
    for pack in COMPLIANCE_PACKS:
        assert f"{pack}-CloudWatchLogGroupEncrypted" in str(caught.value), pack


def test_an_unacknowledged_finding_fails_synth_and_is_named(config, tmp_path) -> None:
    app = create_app(outdir=str(tmp_path))
    _CarelessStack(app, WorkspaceContext(config, resolve("feature/careless", config.naming_rules)))
    with pytest.raises(RuntimeError) as caught:
        app.synth()
    message = str(caught.value)
    assert "AwsSolutions-SQS4" in message, "TLS-only finding"
    assert "AwsSolutions-SQS3" in message, "dead-letter queue finding"
    assert "PlainQueue" in message
    assert (tmp_path / "validation-report.json").is_file()


def _glue_jobs(jobs: tuple[str, ...]) -> set[tuple[str, str]]:
    """Each EtlJob's acknowledgements (infra/constructs/etl_job.py): its continuous logs and bookmarks, and its
    role's reads of the script and library assets."""
    return {
        *((f"etl/{job}/Default/Resource", f"AwsSolutions-{rule}") for job in jobs for rule in ("GL1", "GL3")),
        *(
            (f"etl/{job}/Role/DefaultPolicy/Resource", f"AwsSolutions-IAM5[{finding}]")
            for job in jobs
            for finding in _ASSET_READS
        ),
    }


# Every acknowledged finding, by construct (without the stack's workspace) and rule. A new one must be
# added here on purpose, where a reviewer sees it.
# CDK's asset-bucket read grants (Glue scripts and library, the notebooks zip)
_ASSET_READS = (
    "Action::s3:GetBucket*",
    "Action::s3:GetObject*",
    "Action::s3:List*",
    "Resource::arn:aws:s3:::cdk-hnb659fds-assets-<account>-eu-west-1/*",
)
ACKNOWLEDGED = {
    *{
        (f"storage/{bucket}/{access}Policy/Resource", f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/*]")
        for bucket, access, logical_id in [
            ("Artifacts", "Read", "Artifacts82DD59A1"),
            ("Artifacts", "ReadWrite", "Artifacts82DD59A1"),
            ("Curated", "Read", "CuratedF137945A"),
            ("Curated", "ReadWrite", "CuratedF137945A"),
            ("Landing", "ReadWrite", "LandingF95672E9"),
            ("Landing", "DeleteVersions", "LandingF95672E9"),
            ("Quarantine", "Append", "Quarantine23FF09FE"),
            ("Quarantine", "ReadWrite", "Quarantine23FF09FE"),
            ("Raw", "Append", "Raw72517081"),
            ("Raw", "Read", "Raw72517081"),
            ("Staging", "Read", "Staging12D1754E"),
            ("Staging", "ReadWrite", "Staging12D1754E"),
        ]
    },
    (
        "storage/BucketNotificationsHandler050a0587b7544547bf325f094a3db834/Role/Resource",
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
    ),
    ("etl/Pipeline/Role/DefaultPolicy/Resource", "AwsSolutions-IAM5[Resource::*]"),
    # dispatch asks whether an object's execution exists: its name is known at run time only
    (
        "etl/Dispatch/Role/DefaultPolicy/Resource",
        "AwsSolutions-IAM5[Resource::arn:aws:states:eu-west-1:<account>:execution:<pipeline>:*]",
    ),
    # publishing to the encrypted alarm topic (tests/infra/test_key_usage.py)
    ("etl/Pipeline/Role/DefaultPolicy/Resource", "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]"),
    ("etl/Pipeline/Role/DefaultPolicy/Resource", "AwsSolutions-IAM5[Resource::<GateFunction115324B9.Arn>:*]"),
    ("etl/Pipeline/Role/DefaultPolicy/Resource", "AwsSolutions-IAM5[Resource::<ValidateFunction2E581753.Arn>:*]"),
    *_glue_jobs(("RawToStaging", "StagingToCurated")),
    # the Lambdas run the Python the tests run, not the newest (infra/runtimes.py)
    *{
        (f"etl/{function}/Function/Resource", "AwsSolutions-L1")
        for function in ("Ingest", "Dispatch", "Validate", "Gate", "Promote")
    },
    # active tracing: CDK's X-Ray write grant (xray:PutTraceSegments, xray:PutTelemetryRecords) takes no resource
    *{
        (f"etl/{function}/Role/DefaultPolicy/Resource", "AwsSolutions-IAM5[Resource::*]")
        for function in ("Ingest", "Dispatch", "Validate", "Gate", "Promote")
    },
    ("model-service/Service/TaskDef/Resource", "AwsSolutions-ECS2"),
    ("model-service/Service/TaskDef/ExecutionRole/DefaultPolicy/Resource", "AwsSolutions-IAM5[Resource::*]"),
    ("ml/NotebookRole/DefaultPolicy/Resource", "AwsSolutions-IAM5[Action::sagemaker-mlflow:*]"),
    *{("ml/NotebookRole/DefaultPolicy/Resource", f"AwsSolutions-IAM5[{finding}]") for finding in _ASSET_READS},
}


OPEN_NOTEBOOK = {("ml/Notebook", "AwsSolutions-SM1"), ("ml/Notebook", "AwsSolutions-SM3")}
"""Where a stage's notebook has direct internet access (config; feature and int here, never prd): no VPC."""


INTERNET_BALANCER = {("model-service/Service/LB/SecurityGroup/Resource", "AwsSolutions-EC23")}
"""Where a stage's service is on the internet (config service.endpoint public or open): its load balancer
admits the listener from anywhere. An internal one admits the VPC's range only, and nag finds nothing."""


ARTIFACTS_BUCKET = {
    (f"storage/Artifacts/{access}Policy/Resource", "AwsSolutions-IAM5[Resource::<Artifacts82DD59A1.Arn>/*]")
    for access in ("Read", "ReadWrite")
}
"""The workspace's own MLflow store's grants: with a shared MLflow (config ml.mlflow: shared), nothing asks
for them, and the reach is to the shared store instead (`shared_store`)."""


def shared_store(store: str) -> set[tuple[str, str]]:
    """The service's and the notebook's reach to a shared MLflow's artifact store (`s3://bucket/prefix`)."""
    bucket, _, prefix = store.removeprefix("s3://").partition("/")
    finding = f"AwsSolutions-IAM5[Resource::arn:aws:s3:::{bucket}/{prefix.strip('/') + '/' if prefix else ''}*]"
    roles = ("model-service/Service/TaskDef/TaskRole/DefaultPolicy/Resource", "ml/NotebookRole/DefaultPolicy/Resource")
    return {(path, finding) for path in roles}


def expected_acknowledgements(stage_settings) -> set[tuple[str, str]]:
    """What a stage's settings make nag find and the code acknowledge: its components' share of ACKNOWLEDGED,
    with what its MLflow, notebook and endpoint choices add or take away."""
    on = stage_settings.components
    present = {c.value for c in on.stacks}
    known = {
        (path, rule)
        for path, rule in _full_set_for(stage_settings)
        if path.split("/")[0] in present
        and (on.notebook or not path.startswith("ml/Notebook"))
        and _storage_policy_used(path, stage_settings)
    }
    if on.etl:  # a table's own jobs (config etl.dedicated_jobs): the same as the shared ones
        known |= _glue_jobs(
            tuple(
                f"{job}{table_id_part(t)}"
                for t in stage_settings.etl.dedicated_jobs
                for job in ("RawToStaging", "StagingToCurated")
            )
        )
    if on.etl:
        known |= extractor_acknowledgements(stage_settings)
    if on.mlflow and stage_settings.ml.training.enabled:
        known |= TRAINING_ACKNOWLEDGED
    if not stage_settings.monitoring.alarm_topic_key:  # no key to grant (nag has no rule on the topic's encryption)
        known -= {("etl/Pipeline/Role/DefaultPolicy/Resource", "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]")}
    serverless = stage_settings.service.mode == "serverless"
    if serverless:  # no task, cluster, load balancer or VPC (infra/constructs/serverless_service.py)
        known = {(path, rule) for path, rule in known if not path.startswith(FARGATE_ONLY)}
        known = {(SERVICE_ROLE_POLICY[True] if path == SERVICE_ROLE_POLICY[False] else path, r) for path, r in known}
    elif on.model_service and not stage_settings.service.container_insights:  # off by config (feature: cost)
        known.add(("model-service/Cluster/Resource", "AwsSolutions-ECS4"))
    if stage_settings.service.model_uri is not None:
        bucket, _, path = stage_settings.service.model_uri.removeprefix("s3://").partition("/")
        known.add(
            (
                SERVICE_ROLE_POLICY[serverless],
                f"AwsSolutions-IAM5[Resource::arn:aws:s3:::{bucket}/{path.strip('/')}/*]",
            )
        )
    return known


TRAINING_ACKNOWLEDGED = {
    ("ml/Training/JobRole/DefaultPolicy/Resource", "AwsSolutions-IAM5[Action::sagemaker-mlflow:*]"),
    ("ml/Training/JobRole/DefaultPolicy/Resource", "AwsSolutions-IAM5[Resource::*]"),
    (
        "ml/Training/JobRole/DefaultPolicy/Resource",
        "AwsSolutions-IAM5[Resource::arn:aws:logs:<region>:<account>:log-group:/aws/sagemaker/TrainingJobs:*]",
    ),
    (
        "ml/Training/StateMachine/Role/DefaultPolicy/Resource",
        "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:<region>:<account>:training-job/<prefix>-*]",
    ),
    ("ml/Training/StateMachine/Role/DefaultPolicy/Resource", "AwsSolutions-IAM5[Resource::*]"),
    (
        "storage/Curated/ReadUnderDiabetesPatients/Resource",
        "AwsSolutions-IAM5[Resource::<CuratedF137945A.Arn>/diabetes/patients/*]",
    ),
}
"""Training in AWS (config ml.training): MLflow's API and the job's logs, its image's pull token and metric, its
jobs named at run time, and the state machine's tracing and logs."""


def extractor_acknowledgements(stage_settings) -> set[tuple[str, str]]:
    """Each database source's extractor (config etl.database_sources): its runtime and tracing as every
    function's, its writes under its table's prefix of raw, and a created secret's rotation (the database's)."""
    known = set()
    for table, source in stage_settings.etl.database_sources.items():
        at = f"etl/Extractor{table_id_part(table)}"
        known |= {
            (f"{at}/Extract/Function/Resource", "AwsSolutions-L1"),
            (f"{at}/Extract/Role/DefaultPolicy/Resource", "AwsSolutions-IAM5[Resource::*]"),
            (
                f"storage/Raw/AppendUnder{table_id_part(table)}/Resource",
                f"AwsSolutions-IAM5[Resource::<Raw72517081.Arn>/{table}/*]",
            ),
        }
        if source.secret_arn is None:
            known.add((f"{at}/Secret/Resource", "AwsSolutions-SMG4"))
    return known


def extractor_compliance(stage_settings) -> set[tuple[str, str]]:
    """HIPAA and NIST: an extractor's function in its VPC (set on the resource, which the rule does not read),
    its concurrency bound by its schedule, and a created secret's rotation."""
    known = set()
    for table, source in stage_settings.etl.database_sources.items():
        at = f"etl/Extractor{table_id_part(table)}"
        known |= {(f"{at}/Extract/Function/Resource", rule) for rule in ("LambdaConcurrency", "LambdaInsideVPC")}
        if source.secret_arn is None:
            known.add((f"{at}/Secret/Resource", "SecretsManagerRotationEnabled"))
    return known


SERVICE_ROLE_POLICY = {
    False: "model-service/Service/TaskDef/TaskRole/DefaultPolicy/Resource",
    True: "model-service/Service/Role/DefaultPolicy/Resource",
}
"""The policy of the role the service runs as: its Fargate task's, or its Lambda function's (serverless)."""
FARGATE_ONLY = (
    "model-service/Service/TaskDef",
    "model-service/Service/LB",
    "model-service/Cluster",
    "model-service/Vpc",
)


STORAGE_POLICY_USERS = {
    "Artifacts/Read": lambda on, settings: on.model_service and settings.service.model_uri is None,
    "Artifacts/ReadWrite": lambda on, settings: on.mlflow,  # MLflow's role (or a shared store's notebook)
    "Curated/Read": lambda on, settings: on.etl or on.notebook,
}
"""A storage access policy exists where a component asks for it: these by their users; the rest are etl's."""


def _storage_policy_used(path: str, stage_settings) -> bool:
    if not path.startswith("storage/") or not path.endswith("Policy/Resource"):
        return True
    bucket, access = path.split("/")[1], path.split("/")[2].removesuffix("Policy")
    used = STORAGE_POLICY_USERS.get(f"{bucket}/{access}", lambda on, settings: on.etl)
    return bool(used(stage_settings.components, stage_settings))


def _full_set_for(stage_settings) -> set[tuple[str, str]]:
    ml = stage_settings.ml
    mlflow = (
        ACKNOWLEDGED - ARTIFACTS_BUCKET | shared_store(ml.shared_mlflow_artifact_store)
        if ml.mlflow == "shared"
        else ACKNOWLEDGED
    )
    return (
        mlflow
        | (OPEN_NOTEBOOK if ml.notebook_direct_internet_access else set())
        | (INTERNET_BALANCER if stage_settings.service.endpoint != "internal" else set())
    )


def test_every_stage_passes_nag_with_only_known_reasoned_acknowledgements(
    cdk_out, workspaces, config, public_service, combinations
) -> None:
    report = json.loads((cdk_out / "validation-report.json").read_text())
    (nag,) = [r for r in report["pluginReports"] if r["pluginName"] == "AwsSolutions"]
    assert nag["conclusion"] == "success" and nag["violations"] == []
    public_config, public = public_service
    settings = {stage: config.stage(stage) for stage in workspaces} | {"public": public_config.stage(Stage.FEATURE)}
    prefixes = {f"{config.project}-{w.target.workspace}-": stage for stage, w in workspaces.items()}
    prefixes[f"{config.project}-{public.target.workspace}-"] = "public"
    for ref, combined in combinations.items():  # the component combinations (tests/infra/conftest.py)
        settings[ref] = combination_config(config, ref).stage(Stage.FEATURE)
        prefixes[f"{config.project}-{combined.target.workspace}-"] = ref
    seen: dict = {stage: set() for stage in settings}
    for suppressed in nag["suppressedViolations"]:
        (construct,) = suppressed["violatingConstructs"]
        assert suppressed["acknowledgedAt"] == construct["constructPath"], "acknowledged on the construct itself"
        assert len(suppressed["reason"]) >= 60, suppressed["reason"]
        prefix = next(p for p in prefixes if construct["constructPath"].startswith(p))
        rule = re.sub(r"assets-\d{12}-", "assets-<account>-", suppressed["ruleName"])
        rule = re.sub(r":\d{12}:execution:[a-z0-9-]+-pipeline:", ":<account>:execution:<pipeline>:", rule)
        rule = re.sub(r":[a-z0-9-]+:\d{12}:(log-group|training-job)", r":<region>:<account>:\1", rule)
        rule = re.sub(r"training-job/[a-z0-9]+-t[0-9a-f]{8}-", "training-job/<prefix>-", rule)
        seen[prefixes[prefix]].add((construct["constructPath"].removeprefix(prefix), rule))
    for stage, stage_settings in settings.items():
        assert seen[stage] == expected_acknowledgements(stage_settings), stage
    assert not OPEN_NOTEBOOK & seen[Stage.PRD], "prd's notebook is in its VPC, with no direct internet access"
    assert not INTERNET_BALANCER & (seen[Stage.INT] | seen[Stage.PRD]), "int and prd serve inside their VPC"
    assert len(nag["suppressedViolations"]) == sum(len(expected_acknowledgements(s)) for s in settings.values())


_FUNCTIONS = ("Ingest", "Dispatch", "Validate", "Gate", "Promote")
COMPLIANCE_ACKNOWLEDGED = {
    # the run ledger: point-in-time recovery is its backup
    ("storage/Ledger/Resource", "DynamoDBInBackupPlan"),
    # the access-log bucket: S3 and ELB deliver logs only to SSE-S3 buckets
    ("storage/AccessLogs/Resource", "S3DefaultEncryptionKMS"),
    # no cross-region copy unless config storage.replication names the bucket
    *{
        (f"storage/{bucket}/Resource", "S3BucketReplicationEnabled")
        for bucket in ("AccessLogs", "Landing", "Raw", "Quarantine", "Staging", "Curated", "Artifacts", "QueryResults")
    },
    *{
        (f"etl/{function}/Function/Resource", rule)
        for function in _FUNCTIONS
        for rule in ("LambdaConcurrency", "LambdaInsideVPC")
    },
    # synchronous (the state machine's), or from a queue whose redrive policy ends in the dead-letter queue
    *{(f"etl/{function}/Function/Resource", "LambdaDLQ") for function in ("Dispatch", "Validate", "Gate")},
    ("model-service/Service/LB/PublicRedirectListener/Resource", "ELBv2ACMCertificateRequired"),  # redirects only
    ("model-service/Vpc/Resource", "VPCDefaultSecurityGroupClosed"),  # used by nothing
    *{(f"model-service/Vpc/publicSubnet{n}/DefaultRoute", "VPCNoUnrestrictedRouteToIGW") for n in (1, 2)},  # NAT
}
"""Every HIPAA Security and NIST 800-53 R5 acknowledgement in int and prd, by construct and rule (both packs)."""
NIST_ONLY = {("model-service/Service/LB/Resource", "ALBWAFEnabled")}  # internal: the WAF is for public endpoints


def test_int_and_prd_pass_hipaa_and_nist_with_only_known_reasoned_acknowledgements(cdk_out, workspaces, config) -> None:
    report = json.loads((cdk_out / "validation-report.json").read_text())
    prefixes = {f"{config.project}-{w.target.workspace}-": stage for stage, w in workspaces.items()}
    for pack in COMPLIANCE_PACKS:
        (found,) = [r for r in report["pluginReports"] if r["pluginName"] == pack]
        assert found["conclusion"] == "success" and found["violations"] == [], pack
        seen: dict = {stage: set() for stage in workspaces}
        for suppressed in found["suppressedViolations"]:
            assert len(suppressed["reason"]) >= 60, suppressed["reason"]
            for construct in suppressed["violatingConstructs"]:
                assert suppressed["acknowledgedAt"] == construct["constructPath"], "on the construct itself"
                prefix = next(p for p in prefixes if construct["constructPath"].startswith(p))
                rule = suppressed["ruleName"].removeprefix(f"{pack}-")
                seen[prefixes[prefix]].add((construct["constructPath"].removeprefix(prefix), rule))
        assert seen[Stage.FEATURE] == set(), "a feature workspace is not held to the compliance packs"
        for stage in (Stage.INT, Stage.PRD):
            internal = config.stage(stage).service.endpoint == "internal"
            expected = COMPLIANCE_ACKNOWLEDGED | (NIST_ONLY if pack == "NIST.800.53.R5" and internal else set())
            expected |= extractor_compliance(config.stage(stage))
            assert seen[stage] == expected, (pack, stage)
