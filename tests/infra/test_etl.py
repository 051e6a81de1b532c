"""The ETL stack: functions, jobs, schedule, the state machine's wiring, alarms and least privilege."""

from __future__ import annotations

import fnmatch
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from infra.naming import Component, table_id_part
from infra.runtimes import GLUE_SPARK, LAMBDA_RUNTIME
from infra.smoke import check_file
from infra.stack_outputs import CHECK_PASSED_STATE, INGEST_FUNCTION_OUTPUT, PROMOTION_STATE, STATE_MACHINE_OUTPUT
from infra.stacks.etl import GLUE_START_ATTEMPTS
from infra.workspace import Stage
from lambdas.dispatch.logic import JITTER_SECONDS, RETRY_CAP_SECONDS
from pipeline.contract import contracts_from_json, load_contracts
from pipeline.layout import raw_object_for_landing
from tests.infra.state_machine import definition, reachable

CONTRACTS = load_contracts()
CHECK = CONTRACTS["platform_check/smoke"]

EVENTS = Path(__file__).resolve().parents[1] / "events" / "s3"


def resources(workspace, kind: str) -> dict[str, dict]:
    return {lid: r["Properties"] for lid, r in workspace.templates[Component.ETL].find_resources(kind).items()}


def by_prefix(items: dict[str, dict], prefix: str) -> dict:
    (match,) = [v for k, v in items.items() if k.startswith(prefix)]
    return match


def attached_policies(workspace, role_prefix: str) -> set[str]:
    role = by_prefix(resources(workspace, "AWS::IAM::Role"), role_prefix)
    names = set()
    for ref in role.get("ManagedPolicyArns", []):
        output = ref["Fn::GetStackOutput"]
        assert output["StackName"] == workspace.stacks[Component.STORAGE].stack_name
        names.add(output["OutputName"].removeprefix("PublishOutputRef").rstrip("0123456789ABCDEF"))
    return names


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (
            "IngestRole",
            {
                "LandingReadWritePolicy",
                "LandingDeleteVersionsPolicy",
                "RawAppendPolicy",
                "QuarantineAppendPolicy",
                "LedgerWritePolicy",
            },
        ),
        ("DispatchRole", {"LedgerWritePolicy"}),
        ("ValidateRole", {"RawReadPolicy", "QuarantineAppendPolicy", "LedgerWritePolicy"}),
        ("GateRole", {"StagingReadWritePolicy", "LedgerWritePolicy"}),
        ("RawToStagingRole", {"RawReadPolicy", "StagingReadWritePolicy", "QuarantineReadWritePolicy"}),
        # the ledger: it records each file it promoted
        ("StagingToCuratedRole", {"StagingReadPolicy", "CuratedReadWritePolicy", "LedgerWritePolicy"}),
        ("PromoteRole", {"StagingReadPolicy", "CuratedReadPolicy", "LedgerWritePolicy"}),
    ],
)
def test_each_function_and_job_reaches_only_its_own_buckets(workspace, role: str, expected: set[str]) -> None:
    assert {n.split("Policy")[0] + "Policy" for n in attached_policies(workspace, role)} == expected


def test_no_role_writes_to_raw_with_delete(workspace) -> None:
    for role in ("IngestRole", "ValidateRole", "GateRole", "RawToStagingRole", "StagingToCuratedRole"):
        assert not any(p.startswith("RawReadWrite") for p in attached_policies(workspace, role)), "raw is write-once"


def test_lambdas_run_the_bundled_handlers_on_the_pinned_python(workspace) -> None:
    functions = resources(workspace, "AWS::Lambda::Function")
    mine = {k: v for k, v in functions.items() if k.startswith(("Ingest", "Validate", "Gate"))}
    assert sorted(f["Handler"] for f in mine.values()) == [
        "lambdas.gate.handler.handler",
        "lambdas.ingest.handler.handler",
        "lambdas.validate.handler.handler",
    ]
    assert {f["Runtime"] for f in mine.values()} == {LAMBDA_RUNTIME.name}
    ingest = by_prefix(mine, "IngestFunction")
    assert "TargetArn" in ingest["DeadLetterConfig"], "the scheduled (async) function has a DLQ"
    assert set(ingest["Environment"]["Variables"]) >= {"LANDING_BUCKET", "RAW_BUCKET", "QUARANTINE_BUCKET"}
    validate = by_prefix(mine, "ValidateFunction")
    assert (validate["Timeout"], validate["MemorySize"]) == (900, 1024), (
        "validate streams every byte of a file: Lambda's longest run, not the one-minute default"
    )


def test_glue_jobs_follow_config_and_get_every_contract(workspace, config) -> None:
    etl = config.stage(workspace.target.stage).etl
    jobs = resources(workspace, "AWS::Glue::Job")
    assert len(jobs) == 2 + 2 * len(etl.dedicated_jobs)
    for prefix, script in (("RawToStaging", "raw-to-staging"), ("StagingToCurated", "staging-to-curated")):
        job = jobs[GENERIC_JOB_IDS[prefix]]
        assert job["Name"] == f"{config.project}-{workspace.target.workspace}-{script}"
        assert job["GlueVersion"] in GLUE_SPARK and job["Command"]["Name"] == "glueetl"  # infra/runtimes.py
        assert job["WorkerType"] == etl.glue_worker_type and job["NumberOfWorkers"] == etl.glue_number_of_workers
        assert job["Timeout"] == etl.glue_timeout_minutes and job["MaxRetries"] == etl.glue_max_retries
        args = job["DefaultArguments"]
        assert contracts_from_json(args["--contracts"]) == CONTRACTS, "each run picks its contract by the raw key"
        assert "--contract" not in args, "no job is tied to one baked-in contract"
        assert args["--job-bookmark-option"] == "job-bookmark-disable"
        assert "--extra-py-files" in args
    assert jobs[GENERIC_JOB_IDS["RawToStaging"]]["ExecutionProperty"]["MaxConcurrentRuns"] == 2 * etl.max_running_files
    workers = {stage: config.stage(stage).etl.glue_number_of_workers for stage in Stage}
    assert workers[Stage.PRD] > workers[Stage.FEATURE], "sizes differ per stage, from config"


GENERIC_JOB_IDS = {"RawToStaging": "RawToStaging00C3AB4B", "StagingToCurated": "StagingToCuratedAA2A036D"}
"""The generic jobs' logical IDs from before they were EtlJob constructs: a job has an explicit name, so a new ID
would make CloudFormation create a second job of that name first, and the deploy fail (infra/constructs/etl_job.py)."""


def test_a_table_of_config_dedicated_jobs_runs_in_jobs_of_its_own(workspace, config) -> None:
    """prd's config gives clinic/appointments jobs of its own: its files are routed there by their raw key, its
    builds started there by the promote function (and a backfill), sized as config says, with only its contract;
    the shared jobs keep the rest; a failure of any job alarms."""
    from infra.naming import table_job_name

    etl = config.stage(workspace.target.stage).etl
    jobs = resources(workspace, "AWS::Glue::Job")
    by_name = {job["Name"]: lid for lid, job in jobs.items()}
    states = _definition(workspace)["States"]
    functions = resources(workspace, "AWS::Lambda::Function")
    (promote,) = [f for f in functions.values() if f.get("Handler") == "lambdas.promote.handler.handler"]
    variables = promote["Environment"]["Variables"]
    rule = by_prefix(resources(workspace, "AWS::Events::Rule"), "GlueJobFailed")
    assert sorted(r["Ref"] for r in rule["EventPattern"]["detail"]["jobName"]) == sorted(jobs)
    if workspace.target.stage is not Stage.PRD:
        assert not etl.dedicated_jobs and "OwnJob?" not in states and "TABLE_PROMOTION_JOBS" not in variables
        return
    assert list(etl.dedicated_jobs) == ["clinic/appointments"], "prd's example (config/project.yaml)"
    table, size = "clinic/appointments", etl.dedicated_jobs["clinic/appointments"]
    own = {
        script: jobs[by_name[table_job_name(config.project, workspace.target.workspace, script, table)]]
        for script in ("raw-to-staging", "staging-to-curated")
    }
    for job in own.values():
        assert (job["WorkerType"], job["NumberOfWorkers"]) == (size.glue_worker_type, size.glue_number_of_workers)
        assert (job["WorkerType"], job["NumberOfWorkers"]) != (etl.glue_worker_type, etl.glue_number_of_workers)
        assert list(contracts_from_json(job["DefaultArguments"]["--contracts"])) == [table]
    assert own["staging-to-curated"]["ExecutionProperty"]["MaxConcurrentRuns"] == 1
    shared_promotion = jobs[GENERIC_JOB_IDS["StagingToCurated"]]
    assert shared_promotion["ExecutionProperty"]["MaxConcurrentRuns"] == 1, "diabetes/patients alone shares it"
    assert json.loads(variables["TABLE_PROMOTION_JOBS"]) == {table: own["staging-to-curated"]["Name"]}
    outputs = workspace.templates[Component.ETL].to_json()["Outputs"]
    assert json.loads(outputs["TablePromotionJobs"]["Value"]) == {table: own["staging-to-curated"]["Name"]}
    # the route: the table's raw keys to its own run, every other to the shared one, both on to the gate
    (branch,) = states["OwnJob?"]["Choices"]
    assert branch["Variable"] == "$.validation.key" and branch["StringMatches"] == f"{table}/*"
    own_run, shared_run = states[branch["Next"]], states[states["OwnJob?"]["Default"]]
    raw_own = by_name[table_job_name(config.project, workspace.target.workspace, "raw-to-staging", table)]
    assert own_run["Parameters"]["JobName"] == f"REF:{raw_own}"
    assert shared_run["Parameters"]["JobName"] == f"REF:{GENERIC_JOB_IDS['RawToStaging']}"
    assert own_run["Next"] == shared_run["Next"] == "QualityGate"
    assert own_run["Catch"] == shared_run["Catch"] and own_run["Retry"] == shared_run["Retry"]
    assert own_run["Parameters"]["Arguments"] == shared_run["Parameters"]["Arguments"]
    appointments = raw_object_for_landing("clinic/appointments/x.csv", datetime.now(UTC)).key
    diabetes = raw_object_for_landing("diabetes/patients/x.csv", datetime.now(UTC)).key
    assert fnmatch.fnmatchcase(appointments, branch["StringMatches"])
    assert not fnmatch.fnmatchcase(diabetes, branch["StringMatches"])


def test_the_most_tables_with_jobs_of_their_own_stay_within_what_aws_takes(workspaces) -> None:
    """What each table's own jobs add, measured between prd (one table) and int (none), times config's maximum,
    stays within AWS's limits: the promote function's environment (4 KB), the state machine role's managed
    policy (6,144 characters), the failure rule's event pattern (4,096)."""
    from infra.config import MAX_DEDICATED_TABLES

    def sizes(workspace) -> tuple[int, int, int]:
        functions = resources(workspace, "AWS::Lambda::Function").values()
        (promote,) = [f for f in functions if f.get("Handler") == "lambdas.promote.handler.handler"]
        environment = sum(len(k) + len(json.dumps(v)) for k, v in promote["Environment"]["Variables"].items())
        policies = resources(workspace, "AWS::IAM::ManagedPolicy")
        (machine,) = [p for lid, p in policies.items() if lid.startswith("PipelineRoleDefaultPolicy")]
        policy = len(json.dumps(machine["PolicyDocument"], separators=(",", ":")))
        rule = by_prefix(resources(workspace, "AWS::Events::Rule"), "GlueJobFailed")
        return environment, policy, len(json.dumps(rule["EventPattern"], separators=(",", ":")))

    one, none = sizes(workspaces[Stage.PRD]), sizes(workspaces[Stage.INT])
    for limit, with_one, without in zip((4096, 6144, 4096), one, none, strict=True):
        per_table = with_one - without
        assert per_table > 0
        assert without + MAX_DEDICATED_TABLES * per_table * 1.5 < limit, (limit, without, per_table)


def test_config_dedicated_jobs_name_a_promotable_contract() -> None:
    from infra.stacks.etl import _dedicated_tables

    assert _dedicated_tables({"clinic/appointments": {}}, CONTRACTS) == ["clinic/appointments"]
    with pytest.raises(ValueError, match=r"names clinic/appointmentz, which has no contract .*clinic/appointments"):
        _dedicated_tables({"clinic/appointmentz": {}}, CONTRACTS)
    with pytest.raises(ValueError, match="platform_check/smoke, a check-only dataset"):
        _dedicated_tables({"platform_check/smoke": {}}, CONTRACTS)


def test_ingest_runs_on_the_configured_schedule(workspace, config) -> None:
    rules = resources(workspace, "AWS::Events::Rule")
    schedule = by_prefix(rules, "IngestSchedule")
    assert schedule["ScheduleExpression"] == config.stage(workspace.target.stage).etl.ingest_schedule
    (target,) = schedule["Targets"]
    assert "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] == 2


def test_raw_object_created_is_queued_and_dispatched_to_the_state_machine(workspace, config) -> None:
    """Raw-file events wait in a queue (encrypted, TLS-only, kept 14 days, ending in the dead-letter queue
    after QUEUE_RECEIVES tries); dispatch consumes it, reports failures per message, and may start and count
    the pipeline's executions; a file waiting past the configured age alarms."""
    from infra.stacks.etl import QUEUE_RECEIVES

    etl = config.stage(workspace.target.stage).etl
    rule = by_prefix(resources(workspace, "AWS::Events::Rule"), "RawObjectCreated")
    assert rule["EventPattern"]["source"] == ["aws.s3"] and rule["EventPattern"]["detail-type"] == ["Object Created"]
    assert "Raw" in json.dumps(rule["EventPattern"]["detail"]["bucket"]["name"])
    (target,) = rule["Targets"]
    queue_id = target["Arn"]["Fn::GetAtt"][0]
    assert queue_id.startswith("RawFileQueue") and "DeadLetterConfig" in target and "InputTransformer" not in target
    queue = resources(workspace, "AWS::SQS::Queue")[queue_id]
    assert queue["SqsManagedSseEnabled"] is True and queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    redrive = queue["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == QUEUE_RECEIVES
    assert redrive["deadLetterTargetArn"]["Fn::GetAtt"][0].startswith("DeadLetterQueue")
    (policy,) = [p for p in resources(workspace, "AWS::SQS::QueuePolicy").values() if {"Ref": queue_id} in p["Queues"]]
    statements = policy["PolicyDocument"]["Statement"]
    tls_only = {"Bool": {"aws:SecureTransport": "false"}}
    assert any(s["Effect"] == "Deny" and s["Condition"] == tls_only for s in statements)
    assert any(s.get("Principal") == {"Service": "events.amazonaws.com"} for s in statements), "the rule may send"

    (mapping,) = resources(workspace, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 2}
    functions = resources(workspace, "AWS::Lambda::Function")
    (dispatch_id,) = [k for k in functions if k.startswith("DispatchFunction")]
    dispatch = functions[dispatch_id]
    assert mapping["FunctionName"] == {"Ref": dispatch_id}
    assert queue["VisibilityTimeout"] >= 6 * dispatch["Timeout"], "Lambda asks six times the function's timeout"
    variables = dispatch["Environment"]["Variables"]
    assert variables["MAX_RUNNING_FILES"] == str(etl.max_running_files)
    assert variables["STATE_MACHINE_ARN"]["Ref"].startswith("Pipeline") and variables["QUEUE_URL"] == {"Ref": queue_id}

    (wait,) = [
        a for a in resources(workspace, "AWS::CloudWatch::Alarm").values() if a.get("MetricName") == "FileWaitSeconds"
    ]
    # SQS's ApproximateAgeOfOldestMessage leaves out messages received 3 times or more: dispatch measures instead,
    # seeing each waiting file at least every 15 minutes (lambdas/dispatch/logic.retry_seconds)
    assert {d["Name"]: d["Value"] for d in wait["Dimensions"]}["service"] == "dispatch"
    assert wait["Threshold"] == etl.max_queue_wait_minutes * 60 and wait["Statistic"] == "Maximum"
    assert wait["Period"] == 900 >= RETRY_CAP_SECONDS + JITTER_SECONDS


def _definition(workspace) -> dict:
    return definition(workspace.templates[Component.ETL].to_json())  # references as REF:<logical id>


def test_state_machine_runs_validate_transform_gate_promote(workspace) -> None:
    states = _definition(workspace)["States"]
    path, state = [], "Input"
    while state:
        path.append(state)
        current = states[state]
        if current["Type"] == "Choice":  # the happy path: readable, shared job, not check-only, gate passed
            defaults = ("Readable?", "OwnJob?", "CheckOnly?")
            state = current["Default"] if state in defaults else current["Choices"][0]["Next"]
        else:
            state = current.get("Next")
    assert [state for state in path if state != "OwnJob?"] == [
        "Input",
        "ValidateFile",
        "Readable?",
        "RawToStagingRun",
        "QualityGate",
        "GatePassed?",
        "CheckOnly?",
        PROMOTION_STATE,
    ]
    assert states[PROMOTION_STATE]["Type"] == "Succeed", "the scheduled promotion of its table takes it in"
    jobs = resources(workspace, "AWS::Glue::Job")
    started = [
        s["Parameters"]["JobName"].removeprefix("REF:")
        for s in states.values()
        if "glue:startJobRun" in s.get("Resource", "")
    ]
    assert started and all("-raw-to-staging" in jobs[job]["Name"] for job in started), (
        "no promotion per file: only raw_to_staging runs in an execution"
    )
    assert states["Readable?"]["Choices"][0]["Next"] == "NotifyQuarantined"
    assert states["GatePassed?"]["Choices"][0]["Next"] == "CheckOnly?"
    assert states["GatePassed?"]["Default"] == "NotifyGateFailed"
    for task in ("ValidateFile", "RawToStagingRun", "QualityGate"):
        assert states[task]["Catch"][0]["Next"] == "NotifyFailure", task
    assert states["RawToStagingRun"]["Resource"].endswith(":states:::glue:startJobRun.sync")
    (retry,) = states["RawToStagingRun"]["Retry"]
    assert "Glue.ConcurrentRunsExceededException" in retry["ErrorEquals"]
    assert retry["MaxAttempts"] == GLUE_START_ATTEMPTS and retry["JitterStrategy"] == "FULL"
    assert retry["MaxDelaySeconds"] == 15 * 60
    assert states["NotifyFailure"]["Next"] == "KnownFile?" and states["Failed"]["Type"] == "Fail"
    known = states["KnownFile?"]
    assert known["Choices"] == [{"Variable": "$.validation.key", "IsPresent": True, "Next": "RecordFailure"}]
    assert known["Default"] == "Failed" and states["RecordFailure"]["Next"] == "Failed"
    # a ledger write that keeps failing fails the execution, with the notification (never a silent stop)
    assert states["RecordFailure"]["Catch"][0]["Next"] == "Failed"
    (retry,) = states["RecordFailure"]["Retry"]
    assert retry["ErrorEquals"] == ["States.ALL"] and retry["MaxAttempts"] == 4


def _fill(value, document: dict):
    """A state's Parameters with each `<name>.$` path read from `document` (JSONPath `$.a.b` or `$$.a.b`)."""
    if isinstance(value, dict):
        filled = {}
        for name, inner in value.items():
            if name.endswith(".$"):
                node, path = (document["$$"], inner[3:]) if inner.startswith("$$.") else (document, inner[2:])
                for part in path.split("."):
                    node = node[part]
                filled[name.removesuffix(".$")] = node
            else:
                filled[name] = _fill(inner, document)
        return filled
    return value


def test_the_state_machines_ledger_record_is_the_ledgers_own(workspace, monkeypatch) -> None:
    """RecordFailure, run on moto's DynamoDB after the functions' records of the same file and the promotion's
    (pipeline.ledger.DynamoLedger): the attributes and the state are what the ledger's readers expect."""
    import boto3
    from moto import mock_aws

    from pipeline.ledger import Step, create_table

    states = _definition(workspace)["States"]
    key = "diabetes/patients/created_at=20261122T103005Z/visits.csv"
    document = {
        "validation": {"key": key},
        "error": {"Error": "States.TaskFailed", "Cause": "the Glue run failed"},
        "$$": {"State": {"EnteredTime": "2026-12-03T12:00:00Z"}},  # the context object
    }
    for name, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        ledger = create_table(client, "ledger")
        ledger.record(key, Step.INGESTED)
        ledger.record(key, Step.GATED, passed=True)
        ledger.record(key, Step.PROMOTED, build=3)  # the promotion's Glue run (pipeline.builds.promoted_entries)
        assert ledger.items()[0]["state"] == "promoted"
        assert states["RecordFailure"]["Resource"].endswith(":states:::dynamodb:updateItem")
        parameters = _fill(states["RecordFailure"]["Parameters"], document)
        parameters["TableName"] = "ledger"  # a reference to the storage stack's table
        client.update_item(**parameters)
        (record,) = ledger.items()
        assert record["state"] == "failed" and record["failed_error"] == "States.TaskFailed"
        assert record["failed_cause"] == "the Glue run failed" and record["promoted_build"] == 3
        assert record["failed_at"] == "2026-12-03T12:00:00Z" and record["gated_passed"] is True


def test_state_machine_logs_and_traces(workspace) -> None:
    machine = by_prefix(resources(workspace, "AWS::StepFunctions::StateMachine"), "Pipeline")
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert machine["LoggingConfiguration"]["Level"] == "ALL"


def test_glue_failures_go_to_the_topic(workspace) -> None:
    rule = by_prefix(resources(workspace, "AWS::Events::Rule"), "GlueJobFailed")
    assert rule["EventPattern"]["detail"]["state"] == ["FAILED", "TIMEOUT", "STOPPED"]
    assert len(rule["EventPattern"]["detail"]["jobName"]) == len(resources(workspace, "AWS::Glue::Job"))
    (target,) = rule["Targets"]
    assert target["Arn"]["Fn::GetStackOutput"]["StackName"] == workspace.stacks[Component.MONITORING].stack_name


def test_every_alarm_notifies_the_topic(workspace) -> None:
    alarms = resources(workspace, "AWS::CloudWatch::Alarm")
    topic_stack = workspace.stacks[Component.MONITORING].stack_name
    described = sorted(a["AlarmDescription"] for a in alarms.values())
    # functions (and an extractor per database source, which also alarms when it falls behind), dead letters,
    # queue age, promotion wait, executions, a failed gate per table
    extractors = len(workspace.stacks[Component.ETL].extractors)
    assert len(alarms) == (5 + extractors) * 2 + extractors + 1 + 1 + 1 + 3 + len(load_contracts()), described
    for alarm in alarms.values():
        for actions in (alarm["AlarmActions"], alarm["OKActions"]):
            (action,) = actions
            assert action["Fn::GetStackOutput"]["StackName"] == topic_stack
    metrics = {(a.get("Namespace"), a.get("MetricName")) for a in alarms.values()}
    assert {
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("DataPlatform", "FileWaitSeconds"),
        ("DataPlatform", "PromotionWaitSeconds"),
        ("AWS/States", "ExecutionsFailed"),
        ("AWS/States", "ExecutionsTimedOut"),
    } <= metrics


def test_check_only_data_end_after_the_gate_and_never_reach_the_promotion(workspace) -> None:
    """The smoke check's file: its raw key takes the check-only branch, which cannot reach AwaitingPromotion;
    a diabetes key takes the other branch."""
    states = _definition(workspace)["States"]
    (branch,) = states["CheckOnly?"]["Choices"]
    assert branch["Variable"] == "$.validation.key" and branch["StringMatches"] == f"{CHECK.dataset}/{CHECK.table}/*"
    assert branch["Next"] == CHECK_PASSED_STATE and states[CHECK_PASSED_STATE]["Type"] == "Succeed"
    assert PROMOTION_STATE not in reachable(states, branch["Next"])
    assert PROMOTION_STATE in reachable(states, states["CheckOnly?"]["Default"])
    landing_key, _ = check_file(CHECK, "20261201T000000Z-abc")
    smoke_raw_key = raw_object_for_landing(landing_key, datetime.now(UTC)).key
    assert fnmatch.fnmatchcase(smoke_raw_key, branch["StringMatches"])
    diabetes = raw_object_for_landing("diabetes/patients/x.csv", datetime.now(UTC)).key
    assert not fnmatch.fnmatchcase(diabetes, branch["StringMatches"])
    assert reachable(states, "Input") >= {"CheckOnly?", PROMOTION_STATE}


def test_raw_to_staging_gets_the_raw_key_its_contract_comes_from_and_whether_to_read_it_whole(workspace) -> None:
    states = _definition(workspace)["States"]
    assert states["RawToStagingRun"]["Parameters"]["Arguments"] == {
        "--key.$": "$.validation.key",
        "--read_whole.$": "$.validation.read_whole",  # a string, as Glue's arguments must be
    }
    jobs = [
        r["Properties"]
        for r in workspace.templates[Component.ETL].find_resources("AWS::Glue::Job").values()
        if "-raw-to-staging" in r["Properties"]["Name"]
    ]
    assert jobs and all(job["DefaultArguments"]["--read_whole"] == "unknown" for job in jobs), (
        "a run not told (started by the state machine of the deploy before) scans the file"
    )


def test_the_promotion_builds_one_table_on_a_schedule_and_alarms_on_a_batch_waiting_too_long(workspace, config) -> None:
    etl = config.stage(workspace.target.stage).etl
    functions = {lid: r for lid, r in resources(workspace, "AWS::Lambda::Function").items()}
    (promote_id,) = [lid for lid, r in functions.items() if r.get("Handler") == "lambdas.promote.handler.handler"]
    schedule = by_prefix(resources(workspace, "AWS::Events::Rule"), "PromotionSchedule")
    assert schedule["ScheduleExpression"] == etl.promotion_schedule
    (target,) = schedule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [promote_id, "Arn"]} and "DeadLetterConfig" in target
    job_id = GENERIC_JOB_IDS["StagingToCurated"]
    job = resources(workspace, "AWS::Glue::Job")[job_id]
    arguments = job["DefaultArguments"]
    assert arguments["--from_scratch"] == "false" and "--ledger_table" in arguments and "--table" not in arguments
    assert functions[promote_id]["Environment"]["Variables"]["PROMOTION_JOB"] == {"Ref": job_id}
    promotable = [c for c in load_contracts().values() if not c.check_only]
    shared = [c for c in promotable if c.name not in etl.dedicated_jobs]
    assert len(promotable) == 2 and job["ExecutionProperty"]["MaxConcurrentRuns"] == len(shared), (
        "one run per table at most"
    )
    glue_statements = [
        s
        for lid, p in {
            **resources(workspace, "AWS::IAM::Policy"),
            **resources(workspace, "AWS::IAM::ManagedPolicy"),
        }.items()
        if lid.startswith("PromoteRole")
        for s in p["PolicyDocument"]["Statement"]
        if "glue:StartJobRun" in s["Action"]
    ]
    (statement,) = glue_statements
    started = {json.dumps(r)[-80:] for r in statement["Resource"]}
    assert len(started) == 1 + len(etl.dedicated_jobs), "the shared promotion and each table's own"
    (alarm,) = [
        a
        for a in resources(workspace, "AWS::CloudWatch::Alarm").values()
        if a.get("MetricName") == "PromotionWaitSeconds"
    ]
    assert alarm["Threshold"] == etl.max_queue_wait_minutes * 60 and alarm["Statistic"] == "Maximum"
    assert {"Name": "service", "Value": "promote"} in alarm["Dimensions"]


def _paths(node) -> set[str]:
    """Every JSONPath a state reads (string values starting with `$`; `$$.` context paths included)."""
    if isinstance(node, dict | list):
        return set().union(*(_paths(v) for v in (node.values() if isinstance(node, dict) else node)))
    return {node} if isinstance(node, str) and node.startswith("$") else set()


def _reads_event_key(path: str) -> bool:
    return any(path == p or path.startswith((f"{p}.", f"{p}[")) for p in ("$.key", "$.detail"))


def test_every_step_after_validate_reads_the_key_validate_resolved_not_the_events(workspace) -> None:
    """The event's key may be URL-encoded (tests/events/s3/README.md); validate resolves it to the object's own
    key and returns it as `key` (lambdas/keys.py), which lands in $.validation.key."""
    states = _definition(workspace)["States"]
    assert states["ValidateFile"]["ResultPath"] == "$.validation"
    assert states["Readable?"]["Choices"][0]["Variable"] == "$.validation.valid"
    assert states["RawToStagingRun"]["Parameters"]["Arguments"]["--key.$"] == "$.validation.key"
    assert states["QualityGate"]["Parameters"] == {"key.$": "$.validation.key"}  # the payload (response only)
    assert {c["Variable"] for c in states["CheckOnly?"]["Choices"]} == {"$.validation.key"}
    after_validate = reachable(states, states["ValidateFile"]["Next"])
    assert {"RawToStagingRun", "QualityGate", "CheckOnly?", PROMOTION_STATE, "NotifyQuarantined"} <= after_validate
    reading_the_event = {
        name: sorted(p for p in _paths(states[name]) if _reads_event_key(p))
        for name in after_validate
        if not name.startswith("Notify")
    }
    # a notification names the file as the event did (on every path, a validate that failed included) and
    # addresses no object with it
    assert {
        p for name in after_validate if name.startswith("Notify") for p in _paths(states[name]) if _reads_event_key(p)
    } == {"$.key"}
    assert {name: paths for name, paths in reading_the_event.items() if paths} == {}


def test_the_input_state_reads_paths_the_s3_events_carry(workspace) -> None:
    """The Input state's paths exist in "Object Created" events as AWS documents them (tests/events/s3/)."""
    parameters = _definition(workspace)["States"]["Input"]["Parameters"]
    assert parameters == {"bucket.$": "$.detail.bucket.name", "key.$": "$.detail.object.key"}
    for sample in sorted(EVENTS.glob("*.json")):
        event = json.loads(sample.read_text())
        for path in parameters.values():
            value = event
            for part in path.removeprefix("$.").split("."):
                value = value[part]
            assert isinstance(value, str) and value, (sample.name, path)


def test_the_smoke_check_finds_ingest_and_the_pipeline_in_the_outputs(workspace) -> None:
    outputs = workspace.templates[Component.ETL].to_json()["Outputs"]
    assert outputs[INGEST_FUNCTION_OUTPUT]["Value"]["Ref"].startswith("IngestFunction")
    assert outputs[STATE_MACHINE_OUTPUT]["Value"]["Ref"].startswith("Pipeline")


def test_ingest_is_the_one_function_the_smoke_check_may_invoke(workspace) -> None:
    """The deploy role's invoke permission is conditioned on this tag (infra/oidc.py)."""
    from infra.stack_outputs import INVOKED_BY_SMOKE_CHECK_TAG

    key, value = INVOKED_BY_SMOKE_CHECK_TAG
    functions = workspace.templates[Component.ETL].find_resources("AWS::Lambda::Function")
    tagged = [k for k, f in functions.items() if {"Key": key, "Value": value} in f["Properties"].get("Tags", [])]
    assert len(tagged) == 1 and tagged[0].startswith("IngestFunction")


def test_notifications_carry_identifiers_and_the_reason_never_the_whole_state(workspace) -> None:
    """The e-mail goes to people who need not see the data: workspace, execution, file and why, each read
    from a path every way into the state has (a missing path fails the execution)."""
    states = _definition(workspace)["States"]
    identifiers = {
        "workspace": workspace.target.workspace,
        "execution.$": "$$.Execution.Id",
        "bucket.$": "$.bucket",
        "event_key.$": "$.key",
    }
    reasons = {
        "NotifyFailure": {"error.$": "$.error.Error", "cause.$": "$.error.Cause"},
        "NotifyQuarantined": {"reason.$": "$.validation.reason", "quarantined.$": "$.validation.quarantined"},
        "NotifyGateFailed": {"failures.$": "$.gate.failures", "verdict.$": "$.gate.verdict"},
    }
    for name, reason in reasons.items():
        parameters = states[name]["Parameters"]
        assert "Message.$" not in parameters, f"{name} sends a whole state"
        assert parameters["Message"] == identifiers | reason, name
    assert states["Input"]["Parameters"] == {"bucket.$": "$.detail.bucket.name", "key.$": "$.detail.object.key"}
    catches = [c for state in states.values() for c in state.get("Catch", []) if c["Next"] == "NotifyFailure"]
    assert catches and all(c["ResultPath"] == "$.error" for c in catches), "the failure's error is where it is read"


def _at(document: dict, path: str):
    """The value at a simple JSONPath (`$.a.b`), or KeyError."""
    value = document
    for part in path.removeprefix("$.").split("."):
        value = value[part]
    return value


def _put(document: dict, path: str, value) -> None:
    *parents, last = path.removeprefix("$.").split(".")
    for part in parents:
        document = document.setdefault(part, {})
    document[last] = value


def _chosen(state: dict, document: dict) -> str:
    """The Choice state's next state for `document`: the rules this definition uses, as Step Functions reads
    them (a rule on a missing variable is an error there; KeyError here)."""
    for rule in state["Choices"]:
        value = _at(document, rule["Variable"])
        if "BooleanEquals" in rule:
            matched = value is rule["BooleanEquals"]
        elif "StringMatches" in rule:
            matched = isinstance(value, str) and fnmatch.fnmatchcase(value, rule["StringMatches"])
        else:
            raise AssertionError(f"a Choice rule this test cannot read: {sorted(rule)}")
        if matched:
            return rule["Next"]
    return state["Default"]


def _route(states: dict, results: dict[str, dict]) -> list[str]:
    """The states an execution visits when each task returns what `results` gives it (at the task's
    ResultPath), from ValidateFile on."""
    document: dict = {"key": "from the event"}
    path, name = [], "ValidateFile"
    while name:
        path.append(name)
        state = states[name]
        if state["Type"] == "Choice":
            name = _chosen(state, document)
            continue
        if name in results:
            _put(document, state["ResultPath"], results[name])
        name = state.get("Next")
    return path


def test_the_choices_route_what_the_validate_and_gate_lambdas_return(workspace, monkeypatch) -> None:
    """The Choice rules read the Lambdas' own results (their code run on emulated S3): an unreadable file
    is quarantined, a failed gate notifies and fails, a passed batch is promoted unless it is check-only.
    Swapping a rule's value or renaming a field the rules read sends a file down the wrong branch here."""
    import boto3
    from moto import mock_aws

    from lambdas.gate.handler import gate_batch
    from lambdas.validate.handler import validate_object
    from pipeline.layout import parse_raw_key, run_prefix
    from tests.pipeline.test_gate import GOOD

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    states = _definition(workspace)["States"]
    contracts = load_contracts()
    header = ",".join(contracts["diabetes/patients"].column_names).encode() + b"\n"
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        for bucket in ("raw", "quarantine", "staging"):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})

        def validated(key: str, body: bytes) -> dict:
            s3.put_object(Bucket="raw", Key=key, Body=body)
            return validate_object(s3, "raw", key, "quarantine", contracts)

        def judged(key: str, profile: dict) -> dict:
            s3.put_object(
                Bucket="staging", Key=run_prefix(parse_raw_key(key), "jr_1") + "profile.json", Body=json.dumps(profile)
            )
            return gate_batch(s3, "staging", key, contracts)

        data = "diabetes/patients/created_at=20261201T000000Z/visits.csv"
        bad = "diabetes/patients/created_at=20261201T000000Z/bad.csv"
        check = "platform_check/smoke/created_at=20261201T000000Z/smoke-1.csv"
        smoke = contracts["platform_check/smoke"]
        smoke_profile = {
            "rows_in": 3,
            "rows_written": 3,
            "rows_rejected": 0,
            "columns": {c.name: {"nulls": 0, "min": c.min, "max": c.max, "mean": None} for c in smoke.columns},
        }
        routes = {
            "unreadable": {"ValidateFile": validated("diabetes/patients/created_at=20261201T000000Z/x.csv", b"")},
            "passed": {"ValidateFile": validated(data, header), "QualityGate": judged(data, GOOD)},
            "failed": {"ValidateFile": validated(bad, header), "QualityGate": judged(bad, dict(GOOD, rows_written=90))},
            "check": {
                "ValidateFile": validated(check, ",".join(contracts["platform_check/smoke"].column_names).encode()),
                "QualityGate": judged(check, smoke_profile),
            },
        }
    assert not routes["failed"]["QualityGate"]["passed"] and routes["check"]["ValidateFile"]["valid"]
    ends = {name: _route(states, results)[-3:] for name, results in routes.items()}
    assert ends == {
        "unreadable": ["Readable?", "NotifyQuarantined", "FileQuarantined"],
        "passed": ["GatePassed?", "CheckOnly?", PROMOTION_STATE],
        "failed": ["GatePassed?", "NotifyGateFailed", "GateFailed"],
        "check": ["GatePassed?", "CheckOnly?", CHECK_PASSED_STATE],
    }


def test_each_promotable_contract_is_a_catalog_table_the_promotion_keeps_current(workspace, config) -> None:
    """The catalog's tables are the contracts' (pipeline.catalog.table_input, as the local pipeline creates them),
    in the workspace's database, located in curated; the promotion's role may change their partitions and nothing
    else of the catalog (no table definitions, no other table)."""
    from pipeline.catalog import CATALOG_SYNC_ACTIONS, catalogued, table_input

    tables = {t["TableInput"]["Name"]: t for t in resources(workspace, "AWS::Glue::Table").values()}
    expected = catalogued(load_contracts())
    assert sorted(tables) == sorted(expected) == ["clinic_appointments", "diabetes_patients"]
    for name, contract in expected.items():
        table = tables[name]
        assert table["DatabaseName"]["Fn::GetStackOutput"]["OutputName"].startswith("PublishOutputRefCatalog")
        given = json.loads(json.dumps(table["TableInput"]))
        location = given["StorageDescriptor"].pop("Location")["Fn::Join"][1]
        assert location[0] == "s3://" and location[2] == f"/{contract.dataset}/{contract.table}/"
        assert location[1]["Fn::GetStackOutput"]["OutputName"].startswith("PublishOutputRefCurated")
        wanted = table_input(contract, "curated")
        del wanted["StorageDescriptor"]["Location"]
        assert given == wanted
        # the catalog's columns and the jobs' output schema come from one version of the contract
        for job in resources(workspace, "AWS::Glue::Job").values():
            passed = [c for c in json.loads(job["DefaultArguments"]["--contracts"]) if c["table"] == contract.table]
            for each in passed:  # a table's own jobs (etl.dedicated_jobs) carry its contract alone
                assert given["Parameters"]["contract_version"] == str(each["contract_version"])
    policies = {**resources(workspace, "AWS::IAM::Policy"), **resources(workspace, "AWS::IAM::ManagedPolicy")}
    granted = {}
    dedicated = config.stage(workspace.target.stage).etl.dedicated_jobs
    for prefix, tables in (
        ("StagingToCuratedRoleDefaultPolicy", [n for n, c in expected.items() if c.name not in dedicated]),
        *(
            (f"StagingToCurated{table_id_part(t)}RoleDefaultPolicy", [n for n, c in expected.items() if c.name == t])
            for t in dedicated
        ),
    ):
        (policy,) = [p for lid, p in policies.items() if lid.startswith(prefix)]
        catalog = [s for s in policy["PolicyDocument"]["Statement"] if any(a.startswith("glue:") for a in s["Action"])]
        (statement,) = catalog
        assert sorted(statement["Action"]) == sorted(CATALOG_SYNC_ACTIONS)
        granted_tables = sorted(r["Fn::Join"][1][-1] for r in statement["Resource"] if ":table/" in json.dumps(r))
        assert granted_tables == [f"/{name}" for name in sorted(tables)], "each promotion its own tables' alone"
        granted[prefix] = granted_tables
    assert sorted(t for ts in granted.values() for t in ts) == [f"/{name}" for name in sorted(expected)]
