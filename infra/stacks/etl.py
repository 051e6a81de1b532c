"""Ingest, validation and transformation from raw to curated.

    landing --(ingest, scheduled)--> raw --(object created, EventBridge)--> queue --(dispatch)--> state machine:
      validate --> raw_to_staging (Glue) --> gate
    promote (scheduled) --> staging_to_curated (Glue), per table with passed batches waiting
    rejects --> quarantine; failures --> the workspace topic

Orchestration is a Step Functions state machine rather than a Glue workflow: it runs one execution per
file with the file as input, mixes Lambda and Glue steps, retries and catches per step, publishes
failures to the topic, and its history shows where a given file stopped. Raw-file events wait in a queue
and the dispatch function starts at most `etl.max_running_files` executions at once, each named after its
object, so that a burst waits instead of failing against Glue's concurrent-run limit, and a repeated event
starts nothing (lambdas/dispatch). Promotion is per table, not per file: on a schedule, the promote function
starts staging_to_curated for each table with batches that passed since its current curated build, and that
run merges them all into one new build (glue/lib/etl_spark/jobs.py: promote).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypedDict, Unpack

from aws_cdk import ArnFormat, CfnOutput, CfnResource, Duration, Stack, Tags
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.config import EtlSettings
from infra.construct_tree import cfn_resource, default_policy
from infra.constructs.alarms import alarm_above, queue_not_empty_alarm
from infra.constructs.bundling import REPO_ROOT, local_bundle
from infra.constructs.dashboard import DashboardSection, graph
from infra.constructs.data_bucket import Access
from infra.constructs.etl_job import GLUE_FAILURE_STATES, EtlJob, JobShared, JobSize
from infra.constructs.extractor import Extractor
from infra.constructs.log_group import owned_log_group
from infra.constructs.pipeline_function import PipelineFunction
from infra.nag import acknowledge
from infra.naming import Component, resource_name, table_id_part, table_job_name
from infra.stack_outputs import (
    CHECK_PASSED_STATE,
    INGEST_FUNCTION_OUTPUT,
    INVOKED_BY_SMOKE_CHECK_TAG,
    PROMOTION_JOB_OUTPUT,
    PROMOTION_STATE,
    RAW_FILE_QUEUE_OUTPUT,
    STATE_MACHINE_OUTPUT,
    TABLE_PROMOTION_JOBS_OUTPUT,
)
from infra.stacks.base import WorkspaceContext, WorkspaceStack
from infra.stacks.storage import StorageStack
from lambdas.promote.logic import TABLE_PROMOTION_JOBS_ENV
from lambdas.telemetry import GATE_TABLE_METRICS, Metric
from pipeline.catalog import CATALOG_SYNC_ACTIONS, catalogued, table_input
from pipeline.contract import Contract, contracts_to_json, load_contracts
from pipeline.job_arguments import UNKNOWN, Argument
from pipeline.ledger import FILE_KEY, LEDGER_TABLE_ENV, RANK, STATE, STATE_RANK, Step, step_attribute
from pipeline.sources import parse_source, source_files
from pipeline.steps import PER_FILE, PipelineStep

VALIDATE_MINUTES = 15
VALIDATE_MEMORY_MIB = 1024
GLUE_START_ATTEMPTS = 12
QUEUE_RECEIVES = 1000
"""Tries of a raw-file event before it goes to the dead-letter queue: about ten days at dispatch's growing
retry (lambdas/dispatch/logic.retry_seconds); the wait alarm fires long before, at etl.max_queue_wait_minutes."""
VALIDATION = "$.validation"
"""Where the validate step's result goes in the execution's state."""
VALIDATED_KEY = f"{VALIDATION}.key"
"""The raw key every step after validate reads: the object's own key, which validate resolved from the event's
(S3 and EventBridge may URL-encode it: lambdas/keys.py). `$.key` is the event's key as it came."""
VALIDATED_READ_WHOLE = f"{VALIDATION}.read_whole"
"""Whether validate found that the file must be read whole (lambdas/payloads.Validated)."""


class _Sizing(TypedDict, total=False):
    """PipelineFunction's parameters that differ between the stack's functions (their defaults otherwise)."""

    timeout: Duration
    memory_mib: int
    dead_letter_queue: sqs.IQueue
    failures_return_to: str


def job_size(etl: EtlSettings, table: str | None, concurrent_runs: int) -> JobSize:
    """A shared job's size (`table` None), or `table`'s own: what etl.dedicated_jobs sets, the stage's else."""
    own = etl.dedicated_jobs.get(table) if table is not None else None
    return JobSize(
        worker_type=(own.glue_worker_type if own else None) or etl.glue_worker_type,
        workers=(own.glue_number_of_workers if own else None) or etl.glue_number_of_workers,
        timeout_minutes=etl.glue_timeout_minutes,
        max_retries=etl.glue_max_retries,
        concurrent_runs=concurrent_runs,
    )


def _dedicated_tables(dedicated_jobs: Mapping[str, object], contracts: Mapping[str, Contract]) -> list[str]:
    """The tables of config etl.dedicated_jobs, each a contract's that is promoted (a check-only dataset's
    files are the deploy check's: they never need a job of their own)."""
    for table in dedicated_jobs:
        if table not in contracts:
            raise ValueError(
                f"config etl.dedicated_jobs names {table}, which has no contract (contracts/{table}.yaml): "
                f"use one of {sorted(contracts)}, or remove it"
            )
        if contracts[table].check_only:
            raise ValueError(f"config etl.dedicated_jobs names {table}, a check-only dataset: remove it")
    return sorted(dedicated_jobs)


def source_of(table: str, files: Mapping[str, tuple[Any, str]]) -> tuple[Any, str]:
    """The source file (parsed, and its path) of a table config etl.database_sources names; one it lacks is
    refused with the fix."""
    if table not in files:
        raise ValueError(
            f"config etl.database_sources names {table}, which has no source file: add "
            f"sources/{table}.yaml (what to read: pipeline/sources.py), or remove it"
        )
    return files[table]


class EtlStack(WorkspaceStack):
    component = Component.ETL

    def __init__(
        self, scope: Construct, ctx: WorkspaceContext, *, storage: StorageStack, alarm_topic: sns.ITopic
    ) -> None:
        super().__init__(scope, ctx)
        etl = ctx.settings.etl
        retention = ctx.settings.monitoring.log_retention_days
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),  # the SQS maximum: time to look before it is gone
        )
        queue_not_empty_alarm(self, "DeadLetterQueueNotEmpty", self.dead_letters, alarm_topic)

        def function(
            construct_id: str, name: str, description: str, environment: dict[str, str], **kwargs: Unpack[_Sizing]
        ) -> PipelineFunction:
            recording = PipelineFunction(
                self,
                construct_id,
                name=name,
                workspace=ctx.target.workspace,
                description=description,
                environment={**environment, LEDGER_TABLE_ENV: storage.ledger.table_name},
                alarm_topic=alarm_topic,
                log_retention_days=retention,
                log_key=storage.data_key,
                **kwargs,
            )
            recording.role.add_managed_policy(storage.ledger_write)  # every function records what it did
            return recording

        self.ingest = function(
            "Ingest",
            "ingest",
            "Moves landed files to raw",
            {
                "LANDING_BUCKET": storage.landing.bucket_name,
                "RAW_BUCKET": storage.raw.bucket_name,
                "QUARANTINE_BUCKET": storage.quarantine.bucket_name,
            },
            timeout=Duration.minutes(5),
            dead_letter_queue=self.dead_letters,
        )
        # validate reads every byte of the file (the decoding check): Lambda's longest run, and the memory
        # that buys network and CPU to stream a few GB in it (lambdas/validate/logic.py)
        self.validate = function(
            "Validate",
            "validate",
            "Checks a raw file against its contract",
            {"QUARANTINE_BUCKET": storage.quarantine.bucket_name},
            timeout=Duration.minutes(VALIDATE_MINUTES),
            memory_mib=VALIDATE_MEMORY_MIB,
        )
        self.gate = function(
            "Gate",
            "gate",
            "Data-quality gate between staging and curated",
            {"STAGING_BUCKET": storage.staging.bucket_name},
        )
        for role, grants in (
            (
                self.ingest.role,
                (
                    # ReadWrite as before, plus deleting versions in a policy of its own: the storage stack
                    # deploys first, and a policy it dropped while this role still holds it cannot be deleted
                    # (CloudFormation's clean-up fails and leaves it behind), so an upgrade only adds one
                    (storage.landing, Access.READ_WRITE),
                    (storage.landing, Access.DELETE_VERSIONS),  # the landed version it copied, no other
                    (storage.raw, Access.APPEND),
                    (storage.quarantine, Access.APPEND),
                ),
            ),
            (self.validate.role, ((storage.raw, Access.READ), (storage.quarantine, Access.APPEND))),
            (self.gate.role, ((storage.staging, Access.READ_WRITE),)),
        ):
            for bucket, access in grants:
                role.add_managed_policy(bucket.access_policy(access))

        self._on_schedule("IngestSchedule", self.ingest, etl.ingest_schedule, "Moves landed files to raw")

        contracts = load_contracts()  # every dataset: a job run picks its contract from the raw key
        self.extractors = self._extractors(ctx, storage, alarm_topic, contracts)
        """Each table of config etl.database_sources: its extractor (infra/constructs/extractor.py)."""
        self.contract_names = sorted(contracts)
        dedicated = _dedicated_tables(etl.dedicated_jobs, contracts)
        glue_lib = s3_assets.Asset(
            self,
            "GlueLibrary",
            path=str(REPO_ROOT / "glue" / "lib"),
            **local_bundle([("glue/lib", "."), ("pipeline", "pipeline")]),
        )
        shared = JobShared(
            library=glue.Code.from_bucket(glue_lib.bucket, glue_lib.s3_object_key),
            logs=owned_log_group(self, "GlueLogs", retention, storage.data_key),
        )
        promotable = [name for name, contract in contracts.items() if not contract.check_only]

        def name(script: str, table: str | None) -> str:
            job = script.replace("_", "-")
            project, workspace = ctx.config.project, ctx.target.workspace
            return (
                resource_name(project, workspace, job)
                if table is None
                else table_job_name(project, workspace, job, table)
            )

        def runs_contracts(table: str | None) -> str:
            """What a job's runs may be asked to run: every contract (a shared job), or the table's own."""
            return contracts_to_json(contracts if table is None else {table: contracts[table]})

        def raw_to_staging(table: str | None) -> EtlJob:
            """The generic job (every contract: a run picks its own from the raw key), or `table`'s own."""
            return EtlJob(
                self,
                "RawToStaging" if table is None else f"RawToStaging{table_id_part(table)}",
                name=name("raw_to_staging", table),
                script="raw_to_staging",
                description="A raw file -> staging (Parquet) + quarantine, checked against its contract"
                + ("" if table is None else f" (only {table}'s files: config etl.dedicated_jobs)"),
                arguments={
                    Argument.CONTRACTS.flag: runs_contracts(table),
                    Argument.RAW_BUCKET.flag: storage.raw.bucket_name,
                    Argument.STAGING_BUCKET.flag: storage.staging.bucket_name,
                    Argument.QUARANTINE_BUCKET.flag: storage.quarantine.bucket_name,
                    # what a run the state machine of an earlier deploy started has: the job scans the file
                    Argument.READ_WHOLE.flag: UNKNOWN,
                },
                grants=(
                    (storage.raw, Access.READ),
                    (storage.staging, Access.READ_WRITE),
                    (storage.quarantine, Access.READ_WRITE),
                ),
                # twice what dispatch lets run: its two pollers may each count the same free places, and
                # ListExecutions is eventually consistent; an idle allowance costs nothing
                size=job_size(etl, table, 2 * etl.max_running_files),
                shared=shared,
            )

        def staging_to_curated(table: str | None) -> EtlJob:
            """The generic promotion (a run builds its `--table`), or `table`'s own; one run per table at most
            (the promote function starts none for a table whose run is active)."""
            tables = [t for t in promotable if t not in dedicated] if table is None else [table]
            job = EtlJob(
                self,
                "StagingToCurated" if table is None else f"StagingToCurated{table_id_part(table)}",
                name=name("staging_to_curated", table),
                script="staging_to_curated",
                description="Passed batches of one table (--table) -> a new curated build (never of a check-only "
                "table)" + ("" if table is None else f"; only {table}: config etl.dedicated_jobs"),
                arguments={
                    Argument.CONTRACTS.flag: runs_contracts(table),
                    Argument.STAGING_BUCKET.flag: storage.staging.bucket_name,
                    Argument.CURATED_BUCKET.flag: storage.curated.bucket_name,
                    Argument.LEDGER_TABLE.flag: storage.ledger.table_name,
                    Argument.LEDGER_REGION.flag: self.region,
                    Argument.CATALOG_DATABASE.flag: storage.database.database_name,
                    Argument.FROM_SCRATCH.flag: "false",  # a backfill passes true
                },
                grants=((storage.staging, Access.READ), (storage.curated, Access.READ_WRITE)),
                size=job_size(etl, table, max(len(tables), 1)),
                shared=shared,
            )
            job.role.add_managed_policy(storage.ledger_write)  # records each file it promoted
            return job

        self.raw_to_staging = raw_to_staging(None)
        self.staging_to_curated = staging_to_curated(None)
        self.table_jobs = {table: (raw_to_staging(table), staging_to_curated(table)) for table in dedicated}
        """Each table with jobs of its own (config etl.dedicated_jobs): its raw_to_staging and its promotion."""
        self.jobs = [
            self.raw_to_staging,
            self.staging_to_curated,
            *(j for pair in self.table_jobs.values() for j in pair),
        ]
        """Every Glue job of the stack: the failure rule and the dashboard list them."""
        self.catalog_tables = self._catalog(storage, contracts)

        self.state_machine = self._pipeline(
            ctx, alarm_topic, (retention, storage.data_key), list(contracts.values()), storage.ledger
        )
        self._start_on_raw_object_created(ctx, storage, function, alarm_topic)
        self._promote_on_schedule(ctx, storage, function, alarm_topic)
        self._alarms(alarm_topic)
        self.dashboard_section = self._dashboard_section()
        CfnOutput(self, INGEST_FUNCTION_OUTPUT, value=self.ingest.function.function_name)
        Tags.of(self.ingest.function).add(*INVOKED_BY_SMOKE_CHECK_TAG)
        CfnOutput(self, STATE_MACHINE_OUTPUT, value=self.state_machine.state_machine_arn)
        CfnOutput(self, PROMOTION_JOB_OUTPUT, value=self.staging_to_curated.job_name)
        if self.table_jobs:
            CfnOutput(self, TABLE_PROMOTION_JOBS_OUTPUT, value=self._table_promotion_jobs())
        CfnOutput(self, RAW_FILE_QUEUE_OUTPUT, value=self.file_queue.queue_url)

    def _extractors(
        self, ctx: WorkspaceContext, storage: StorageStack, topic: sns.ITopic, contracts: dict[str, Contract]
    ) -> dict[str, Extractor]:
        """An extractor per table the stage reads from a database; a table without a source file is refused."""
        configured = ctx.settings.etl.database_sources
        files = source_files(contracts) if configured else {}
        extractors = {}
        for table, settings in sorted(configured.items()):
            data, where = source_of(table, files)
            parse_source(data, contracts[table], where)  # a bad file fails the synth, not the first run
            extractors[table] = Extractor(
                self,
                f"Extractor{table_id_part(table)}",
                table=table,
                source_file=data,
                settings=settings,
                workspace=ctx.target.workspace,
                raw=storage.raw,
                ledger=storage.ledger,
                alarm_topic=topic,
                dead_letter_queue=self.dead_letters,
                log_retention_days=ctx.settings.monitoring.log_retention_days,
                data_key=storage.data_key,
            )
        return extractors

    def _catalog(self, storage: StorageStack, contracts: dict[str, Contract]) -> dict[str, CfnResource]:
        """Each promotable contract's curated table in the workspace's catalog (pipeline/catalog.py: columns and
        types from the contract, partitions from the builds), and the promotion's right to keep its partitions
        at the current build's: on those tables alone, never their definitions."""
        found = catalogued(contracts)
        tables = {
            name: CfnResource(
                self,
                f"CatalogTable{table_id_part(contract.name)}",
                type="AWS::Glue::Table",
                properties={
                    "CatalogId": self.account,
                    "DatabaseName": storage.database.database_name,
                    "TableInput": table_input(contract, storage.curated.bucket_name),
                },
            )
            for name, contract in found.items()
        }
        self.catalogued = {contract.name: name for name, contract in found.items()}
        """Each catalogued contract's table name in the catalog."""
        database = storage.database.database_name
        scope = [  # what a sync of any table's partitions also names: the catalog and the table's database
            self.format_arn(service="glue", resource="catalog"),
            self.format_arn(service="glue", resource="database", resource_name=database),
        ]

        def table_arns(names: list[str]) -> list[str]:
            return [self.format_arn(service="glue", resource="table", resource_name=f"{database}/{n}") for n in names]

        self.catalog_arns = [*scope, *table_arns(list(tables))] if tables else []
        for job, contract_names in self._promotions_by_job():
            if contract_names:
                own = table_arns([self.catalogued[n] for n in contract_names])
                job.role.add_to_principal_policy(
                    iam.PolicyStatement(actions=list(CATALOG_SYNC_ACTIONS), resources=[*scope, *own])
                )
        return tables

    def _table_promotion_jobs(self) -> str:
        """The tables' own promotion jobs as JSON, `dataset/table` -> name (their names are known at synth)."""
        return json.dumps({table: jobs[1].name for table, jobs in self.table_jobs.items()}, sort_keys=True)

    def _promotions_by_job(self) -> list[tuple[EtlJob, list[str]]]:
        """Each promotion job and the catalogued tables it builds: a table's own job its table, the generic
        job the rest."""
        own = {table: jobs[1] for table, jobs in self.table_jobs.items()}
        shared = [t for t in self.catalogued if t not in own]
        return [(self.staging_to_curated, shared), *((job, [t]) for t, job in own.items() if t in self.catalogued)]

    def _pipeline(
        self,
        ctx: WorkspaceContext,
        topic: sns.ITopic,
        logs: tuple[int, kms.IKey | None],
        contracts: list[Contract],
        ledger: dynamodb.ITable,
    ) -> sfn.StateMachine:
        """`logs`: the retention in days and the key of its log group. The functions record their steps in
        the ledger, and the promotion's Glue run the files it took in; the state machine records the one step only
        it knows of: a failure."""

        def notify(construct_id: str, subject: str, **details: Any) -> tasks.SnsPublish:
            """A message of identifiers (workspace, execution, file) and the reason, never the execution's
            whole state: the e-mail goes to people who need not see what the data holds. Each path read
            here exists on every way into the state (a missing one fails the execution)."""
            message = {
                "workspace": ctx.target.workspace,
                "execution": sfn.JsonPath.string_at("$$.Execution.Id"),
                "bucket": sfn.JsonPath.string_at("$.bucket"),
                "event_key": sfn.JsonPath.string_at("$.key"),  # as the event named it: on every path
                **details,
            }
            return tasks.SnsPublish(
                self,
                construct_id,
                topic=topic,
                subject=subject,
                message=sfn.TaskInput.from_object(message),
                result_path=sfn.JsonPath.DISCARD,
            )

        failed_state = sfn.Fail(self, "Failed", error="PipelineFailed")
        failed = notify(
            "NotifyFailure",
            "Pipeline failed",
            error=sfn.JsonPath.string_at("$.error.Error"),
            cause=sfn.JsonPath.string_at("$.error.Cause"),
        ).next(
            sfn.Choice(self, "KnownFile?")  # validate resolved the raw key: the ledger's id of the file
            .when(
                sfn.Condition.is_present(VALIDATED_KEY),
                self._record(
                    ledger,
                    "RecordFailure",
                    Step.FAILED,
                    error=sfn.JsonPath.string_at("$.error.Error"),
                    cause=sfn.JsonPath.string_at("$.error.Cause"),
                )
                .add_catch(failed_state, result_path=sfn.JsonPath.DISCARD)  # it failed and said so: it fails
                .next(failed_state),
            )
            .otherwise(failed_state)
        )
        validate = tasks.LambdaInvoke(
            self,
            "ValidateFile",
            lambda_function=self.validate.function,
            payload_response_only=True,
            result_path=VALIDATION,
            retry_on_service_exceptions=True,
        )

        def retry_glue(run: tasks.GlueStartJobRun) -> None:
            """The queue keeps raw_to_staging's runs within its limit (twice what dispatch starts); should Glue
            still refuse a start, jittered retries for about 2 hours."""
            run.add_retry(
                errors=["Glue.ConcurrentRunsExceededException", "Glue.AWSGlueException"],
                interval=Duration.seconds(60),
                max_attempts=GLUE_START_ATTEMPTS,
                backoff_rate=2,
                max_delay=Duration.minutes(15),
                jitter_strategy=sfn.JitterType.FULL,
            )

        def raw_to_staging(construct_id: str, job: EtlJob) -> tasks.GlueStartJobRun:
            run = tasks.GlueStartJobRun(
                self,
                construct_id,
                glue_job_name=job.job_name,
                integration_pattern=sfn.IntegrationPattern.RUN_JOB,
                result_path=sfn.JsonPath.DISCARD,
                arguments=sfn.TaskInput.from_object(
                    {
                        Argument.KEY.flag: sfn.JsonPath.string_at(VALIDATED_KEY),
                        Argument.READ_WHOLE.flag: sfn.JsonPath.string_at(VALIDATED_READ_WHOLE),
                    }
                ),
            )
            retry_glue(run)
            run.add_catch(failed, result_path="$.error")
            return run

        gate = tasks.LambdaInvoke(
            self,
            "QualityGate",
            lambda_function=self.gate.function,
            payload=sfn.TaskInput.from_object({"key": sfn.JsonPath.string_at(VALIDATED_KEY)}),
            payload_response_only=True,
            result_path="$.gate",
            retry_on_service_exceptions=True,
        )
        for step in (validate, gate):
            step.add_catch(failed, result_path="$.error")

        quarantined = notify(
            "NotifyQuarantined",
            "File quarantined",
            reason=sfn.JsonPath.string_at(f"{VALIDATION}.reason"),
            quarantined=sfn.JsonPath.string_at(f"{VALIDATION}.quarantined"),
        ).next(sfn.Succeed(self, "FileQuarantined", comment="The file is in quarantine with its reason"))
        gate_failed = notify(
            "NotifyGateFailed",
            "Quality gate failed: nothing promoted",
            failures=sfn.JsonPath.list_at("$.gate.failures"),
            verdict=sfn.JsonPath.string_at("$.gate.verdict"),
        ).next(sfn.Fail(self, "GateFailed", error="QualityGateFailed", cause="The batch broke the contract's rules"))
        # each per-file step and what follows it on success, chained in pipeline/steps.py's order (the local
        # pipeline runs that order too)
        steps: dict[PipelineStep, Callable[[sfn.IChainable], sfn.IChainable]] = {
            PipelineStep.VALIDATE: lambda then: validate.next(
                sfn.Choice(self, "Readable?")
                .when(sfn.Condition.boolean_equals(f"{VALIDATION}.valid", False), quarantined)
                .otherwise(then)
            ),
            PipelineStep.RAW_TO_STAGING: lambda then: self._staging_run(raw_to_staging, then),
            PipelineStep.GATE: lambda then: gate.next(
                sfn.Choice(self, "GatePassed?")
                .when(sfn.Condition.boolean_equals("$.gate.passed", True), then)
                .otherwise(gate_failed)
            ),
        }
        chain = self._promote_unless_check_only(
            contracts,
            sfn.Succeed(
                self,
                PROMOTION_STATE,
                comment="Passed: the next scheduled promotion of its table merges it into a curated build "
                "(lambdas/promote)",
            ),
        )
        for per_file in reversed(PER_FILE):
            chain = steps[per_file](chain)
        definition = sfn.Pass(
            self,
            "Input",
            parameters={
                "bucket": sfn.JsonPath.string_at("$.detail.bucket.name"),
                "key": sfn.JsonPath.string_at("$.detail.object.key"),
            },
        ).next(chain)
        machine = sfn.StateMachine(
            self,
            "Pipeline",
            state_machine_name=resource_name(ctx.config.project, ctx.target.workspace, "pipeline"),
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=Duration.hours(6),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=owned_log_group(self, "PipelineLogs", *logs),
                level=sfn.LogLevel.ALL,
                include_execution_data=True,
            ),
        )
        # SnsPublish grants sns:Publish only; an encrypted topic also needs its key (kms:GenerateDataKey*,
        # kms:Decrypt). grant_publish adds both for a topic with a master key.
        topic.grant_publish(machine.role)
        policy = default_policy(machine.role)
        if topic.master_key is not None:  # a feature stage's topic may have none (monitoring.alarm_topic_key)
            acknowledge(
                policy,
                "IAM5",
                finding="Action::kms:GenerateDataKey*",
                reason="Publishing to the encrypted alarm topic: SNS asks for a data key of any kind "
                "(GenerateDataKey*), on the topic's one key only.",
            )
        acknowledge(
            policy,
            "IAM5",
            finding="Resource::*",
            reason="X-Ray tracing (xray:PutTraceSegments and friends) and CloudWatch Logs delivery for "
            "Step Functions accept no resource narrower than '*'.",
        )
        for fn in (self.validate, self.gate):
            function_id = self.get_logical_id(cfn_resource(fn.function))
            acknowledge(
                policy,
                "IAM5",
                finding=f"Resource::<{function_id}.Arn>:*",
                reason="Invoking this one function, any of its versions (the ':*' suffix is the version "
                "qualifier CDK adds for LambdaInvoke).",
            )
        return machine

    def _staging_run(self, run: Callable[[str, EtlJob], tasks.GlueStartJobRun], then: sfn.IChainable) -> sfn.IChainable:
        """raw_to_staging's run of the validated file, then `then`: in the generic job, or in its table's own
        (config etl.dedicated_jobs), chosen on the raw key's `dataset/table`, known at synth."""
        generic = run("RawToStagingRun", self.raw_to_staging).next(then)
        if not self.table_jobs:
            return generic
        route = sfn.Choice(self, "OwnJob?")
        for table, (job, _) in self.table_jobs.items():
            route.when(
                sfn.Condition.string_matches(VALIDATED_KEY, f"{table}/*"),
                run(f"RawToStagingRun{table_id_part(table)}", job).next(then),
            )
        return route.otherwise(generic)

    def _record(self, ledger: dynamodb.ITable, construct_id: str, step: Step, **fields: str) -> tasks.DynamoUpdateItem:
        """What `pipeline.ledger.DynamoLedger.record` writes for `step`, as a state: the step's attributes
        (`<step>_<name>`, `<step>_at`) and the file's state. A promotion is the furthest a file goes but for
        quarantine, which a promoted file never reaches, and a failure is always the state: neither needs
        the rank condition of the functions' records."""
        names = {"#state": STATE} | {f"#f{i}": step_attribute(step, name) for i, name in enumerate(["at", *fields])}
        values = {
            ":state": tasks.DynamoAttributeValue.from_string(step.value),
            ":f0": tasks.DynamoAttributeValue.from_string(sfn.JsonPath.string_at("$$.State.EnteredTime")),
            **{f":f{i}": tasks.DynamoAttributeValue.from_string(v) for i, v in enumerate(fields.values(), start=1)},
        }
        assignments = ["#state = :state", *(f"#f{i} = :f{i}" for i in range(len(fields) + 1))]
        if step is not Step.FAILED:
            names["#rank"], values[":rank"] = STATE_RANK, tasks.DynamoAttributeValue.from_number(RANK[step])
            assignments.append("#rank = :rank")
        record = tasks.DynamoUpdateItem(
            self,
            construct_id,
            table=ledger,
            key={FILE_KEY: tasks.DynamoAttributeValue.from_string(sfn.JsonPath.string_at(VALIDATED_KEY))},
            update_expression="SET " + ", ".join(assignments),
            expression_attribute_names=names,
            expression_attribute_values=values,
            result_path=sfn.JsonPath.DISCARD,
        )
        # throttling and DynamoDB's own errors pass; what does not is the caller's catch
        record.add_retry(errors=[sfn.Errors.ALL], interval=Duration.seconds(2), max_attempts=4, backoff_rate=2)
        return record

    def _promote_unless_check_only(self, contracts: list[Contract], promote: sfn.IChainable) -> sfn.IChainable:
        """Check-only datasets (the deploy smoke check) end in CheckPassed after their gate: their data
        never reach curated. Decided on the validated raw key's dataset/table, known at synth from the
        contracts, so no step's output can route check data to the promotion by mistake."""
        check_only = [f"{c.dataset}/{c.table}/*" for c in contracts if c.check_only]
        if not check_only:
            return promote
        conditions = [sfn.Condition.string_matches(VALIDATED_KEY, pattern) for pattern in check_only]
        return (
            sfn.Choice(self, "CheckOnly?")
            .when(
                conditions[0] if len(conditions) == 1 else sfn.Condition.or_(*conditions),
                sfn.Succeed(
                    self, CHECK_PASSED_STATE, comment="A check-only dataset passed its gate; nothing is promoted"
                ),
            )
            .otherwise(promote)
        )

    def _start_on_raw_object_created(
        self,
        ctx: WorkspaceContext,
        storage: StorageStack,
        function: Callable[..., PipelineFunction],
        topic: sns.ITopic,
    ) -> None:
        """Raw-file events -> the queue -> dispatch -> one execution per object (module docstring)."""
        etl = ctx.settings.etl
        self.file_queue = sqs.Queue(
            self,
            "RawFileQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            visibility_timeout=Duration.minutes(6),  # six times dispatch's timeout, as Lambda asks of a source
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=QUEUE_RECEIVES, queue=self.dead_letters),
        )
        events.Rule(
            self,
            "RawObjectCreated",
            description="Queues each new raw file for the pipeline",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [storage.raw.bucket_name]}},
            ),
            targets=[targets.SqsQueue(self.file_queue, dead_letter_queue=self.dead_letters, retry_attempts=3)],
        )
        self.dispatch = function(
            "Dispatch",
            "dispatch",
            "Starts one pipeline execution per raw file, so many at once",
            {
                "QUEUE_URL": self.file_queue.queue_url,
                "STATE_MACHINE_ARN": self.state_machine.state_machine_arn,
                "MAX_RUNNING_FILES": str(etl.max_running_files),
            },
            failures_return_to=(
                "Invoked by its queue's event source: a failed message returns to the queue and is tried "
                f"again, and after {QUEUE_RECEIVES} tries the queue's redrive policy moves it to the "
                "dead-letter queue, which alarms."
            ),
            timeout=Duration.minutes(1),
        )
        self.dispatch.function.add_event_source(
            event_sources.SqsEventSource(
                self.file_queue, batch_size=10, report_batch_item_failures=True, max_concurrency=2
            )
        )
        self.state_machine.grant_start_execution(self.dispatch.role)
        self.state_machine.grant(self.dispatch.role, "states:ListExecutions")
        self._may_describe_executions(self.dispatch.role, ctx)
        # dispatch's own measure: SQS's ApproximateAgeOfOldestMessage leaves out a message received three
        # times or more, which every waiting file soon is; dispatch sees each one at least every 15 minutes
        self._wait_alarm(
            "RawFileQueueAgeAlarm",
            "A raw file has waited over {} minutes to start its pipeline",
            ctx,
            topic,
            self.dispatch.metric(Metric.FILE_WAIT_SECONDS, statistic=cloudwatch.Stats.MAXIMUM),
        )

    def _on_schedule(self, construct_id: str, function: PipelineFunction, expression: str, description: str) -> None:
        """`function` on an EventBridge schedule; a failed invocation is tried twice more, then goes to the
        dead-letter queue (alarm)."""
        events.Rule(
            self,
            construct_id,
            description=description,
            schedule=events.Schedule.expression(expression),
            targets=[targets.LambdaFunction(function.function, dead_letter_queue=self.dead_letters, retry_attempts=2)],
        )

    def _wait_alarm(
        self, construct_id: str, description: str, ctx: WorkspaceContext, topic: sns.ITopic, metric: cloudwatch.Metric
    ) -> None:
        """An alarm on a wait its function measures (seconds, the longest), past `etl.max_queue_wait_minutes`
        (`description` takes the minutes)."""
        minutes = ctx.settings.etl.max_queue_wait_minutes
        alarm_above(
            self,
            construct_id,
            description=description.format(minutes),
            metric=metric.with_(period=Duration.minutes(15)),
            threshold=minutes * 60,
            topic=topic,
        )

    def _promote_on_schedule(
        self,
        ctx: WorkspaceContext,
        storage: StorageStack,
        function: Callable[..., PipelineFunction],
        topic: sns.ITopic,
    ) -> None:
        """The promote function on `etl.promotion_schedule`: a staging_to_curated run per table with passed
        batches waiting (lambdas/promote), and an alarm when one has waited over `etl.max_queue_wait_minutes`."""
        etl = ctx.settings.etl
        self.promote = function(
            "Promote",
            "promote",
            "Starts a curated build of each table with passed batches waiting",
            {
                "STAGING_BUCKET": storage.staging.bucket_name,
                "CURATED_BUCKET": storage.curated.bucket_name,  # each table's current build (_CURRENT.json)
                "PROMOTION_JOB": self.staging_to_curated.job_name,
                **({TABLE_PROMOTION_JOBS_ENV: self._table_promotion_jobs()} if self.table_jobs else {}),
                "CATALOG_DATABASE": storage.database.database_name,  # keeps the tables' partitions current
            },
            timeout=Duration.minutes(2),
            dead_letter_queue=self.dead_letters,
        )
        self.promote.role.add_managed_policy(storage.staging.access_policy(Access.READ))
        self.promote.role.add_managed_policy(storage.curated.access_policy(Access.READ))
        if self.catalog_arns:  # the tables no promotion is building (lambdas/promote)
            self.promote.role.add_to_principal_policy(
                iam.PolicyStatement(actions=list(CATALOG_SYNC_ACTIONS), resources=self.catalog_arns)
            )
        job_arns = [
            Stack.of(self).format_arn(service="glue", resource="job", resource_name=job.job_name)
            for job, _ in self._promotions_by_job()
        ]
        self.promote.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["glue:StartJobRun", "glue:GetJobRuns"], resources=job_arns)
        )
        self._on_schedule(
            "PromotionSchedule",
            self.promote,
            etl.promotion_schedule,
            "Starts a curated build of each table with passed batches waiting",
        )
        self._wait_alarm(
            "PromotionWaitAlarm",
            "A passed batch has waited over {} minutes for a curated build",
            ctx,
            topic,
            self.promote.metric(Metric.PROMOTION_WAIT_SECONDS, statistic=cloudwatch.Stats.MAXIMUM),
        )

    def _may_describe_executions(self, role: iam.IRole, ctx: WorkspaceContext) -> None:
        """Any execution of the pipeline, by the state machine's name (dispatch asks whether an object's
        execution exists before it starts one)."""
        executions = Stack.of(self).format_arn(
            service="states",
            resource="execution",
            resource_name=f"{resource_name(ctx.config.project, ctx.target.workspace, 'pipeline')}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        role.add_to_principal_policy(iam.PolicyStatement(actions=["states:DescribeExecution"], resources=[executions]))
        acknowledge(
            default_policy(role),
            "IAM5",
            finding=f"Resource::{Stack.of(self).resolve(executions)}",
            reason="Describing executions of this workspace's one state machine: an execution's name is "
            "known only at run time (one per raw object), so its ARN ends in a wildcard.",
        )

    def _alarms(self, topic: sns.ITopic) -> None:
        events.Rule(
            self,
            "GlueJobFailed",
            description="A pipeline Glue job failed, timed out or was stopped",
            event_pattern=events.EventPattern(
                source=["aws.glue"],
                detail_type=["Glue Job State Change"],
                detail={
                    "jobName": [job.job_name for job in self.jobs],
                    "state": list(GLUE_FAILURE_STATES),
                },
            ),
            targets=[targets.SnsTopic(topic, dead_letter_queue=self.dead_letters)],
        )
        for table in self.contract_names:  # each table's state at a glance; the notification names the file
            alarm_above(
                self,
                f"GateFailed{table_id_part(table)}Alarm",
                description=f"A batch of {table} failed its quality gate: nothing of it is promoted",
                metric=self.gate.metric(Metric.BATCHES_FAILED, table=table),
                threshold=0,
                topic=topic,
            )
        for metric, what in (
            (self.state_machine.metric_failed, "failed"),
            (self.state_machine.metric_timed_out, "timed out"),
            (self.state_machine.metric_aborted, "aborted"),
        ):
            alarm_above(
                self,
                f"Pipeline{what.title().replace(' ', '')}Alarm",
                description=f"A pipeline execution {what}",
                metric=metric(period=Duration.minutes(5), statistic=cloudwatch.Stats.SUM),
                threshold=0,
                topic=topic,
            )

    def _dashboard_section(self) -> DashboardSection:
        """The pipeline on the workspace dashboard (owned by the model-service stack: infra/constructs/dashboard.py):
        executions, files in and quarantined, gate results, Lambda errors, Glue job runs. Rows rejected by the
        contract inside a file have no metric yet (raw_to_staging writes them to quarantine only)."""
        five_minutes = Duration.minutes(5)
        machine = self.state_machine
        executions = [
            metric(statistic=cloudwatch.Stats.SUM, period=five_minutes, label=label)
            for metric, label in (
                (machine.metric_started, "started"),
                (machine.metric_succeeded, "succeeded"),
                (machine.metric_failed, "failed"),
                (machine.metric_timed_out, "timed out"),
                (machine.metric_aborted, "aborted"),
            )
        ]
        files = [
            self.ingest.metric(Metric.FILES_INGESTED, label="ingested (landing to raw)"),
            self.validate.metric(Metric.FILES_VALID, label="valid (validate)"),
            self.ingest.metric(Metric.FILES_QUARANTINED, label="quarantined: landed file unroutable (ingest)"),
            self.validate.metric(Metric.FILES_QUARANTINED, label="quarantined: raw file unreadable (validate)"),
        ]
        gate = [
            self.gate.metric(Metric.GATE_PASSED, label="passed"),
            self.gate.metric(Metric.GATE_FAILED, label="failed: nothing promoted"),
        ]
        queue = [
            self.file_queue.metric_approximate_number_of_messages_visible(
                period=five_minutes, statistic=cloudwatch.Stats.MAXIMUM, label="files waiting"
            ),
            self.dispatch.metric(Metric.EXECUTIONS_STARTED, label="executions started"),
            self.dispatch.metric(Metric.DUPLICATE_EVENTS, label="duplicate events (nothing started)"),
            self.promote.metric(Metric.BATCHES_WAITING, label="passed batches waiting for a build"),
            self.promote.metric(Metric.PROMOTIONS_STARTED, label="curated builds started"),
        ]
        oldest = [
            self.dispatch.metric(
                Metric.FILE_WAIT_SECONDS, statistic=cloudwatch.Stats.MAXIMUM, label="longest wait of a file (s)"
            ),
            self.promote.metric(
                Metric.PROMOTION_WAIT_SECONDS,
                statistic=cloudwatch.Stats.MAXIMUM,
                label="longest wait of a passed batch for a build (s)",
            ),
            self.file_queue.metric_approximate_age_of_oldest_message(
                period=five_minutes, statistic=cloudwatch.Stats.MAXIMUM, label="SQS: oldest message received < 3x (s)"
            ),
        ]
        rows = [
            self.gate.metric(metric, label=f"{contract} {metric.value.removeprefix('Rows').lower()}", table=contract)
            for contract in self.contract_names
            for metric in GATE_TABLE_METRICS
            if metric is not Metric.BATCHES_FAILED  # an alarm of each table's own (`_alarms`)
        ]
        extracted = [
            extractor.function.metric(metric, label=f"{table} {label}", table=table)
            for table, extractor in self.extractors.items()
            for metric, label in (
                (Metric.ROWS_EXTRACTED, "rows extracted"),
                (Metric.EXTRACT_INCOMPLETE, "runs stopped for want of time"),
            )
        ]
        functions = [self.ingest, self.dispatch, self.validate, self.gate, self.promote]
        functions += [extractor.function for extractor in self.extractors.values()]
        lambda_errors = [
            metric(statistic=cloudwatch.Stats.SUM, period=five_minutes, label=f"{fn.name} {what}")
            for fn in functions
            for metric, what in ((fn.function.metric_errors, "errors"), (fn.function.metric_throttles, "throttles"))
        ]
        generic = (self.raw_to_staging, self.staging_to_curated)
        glue_runs = [
            metric(statistic=cloudwatch.Stats.SUM, period=five_minutes, label=f"{label} {what}")
            for job, label in ((job, job.script if job in generic else job.name) for job in self.jobs)
            for metric, what in (
                (job.job.metric_success, "succeeded"),
                (job.job.metric_failure, "failed"),
                (job.job.metric_timeout, "timed out"),
            )
        ]
        return DashboardSection(
            "Pipeline",
            rows=[
                [graph("Pipeline executions", executions), graph("Files", files), graph("Quality gate", gate)],
                [
                    graph("Lambda errors and throttles", lambda_errors, width=12),
                    graph("Glue job runs", glue_runs, width=12),
                ],
                [
                    graph("Raw-file queue and promotions", queue, width=8),
                    graph("Waits", oldest, width=8),
                    graph("Rows per table (gate)", rows, width=8),
                ],
                *([[graph("Database sources", extracted, width=24)]] if extracted else []),
            ],
        )
