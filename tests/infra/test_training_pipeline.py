"""Training in AWS (config ml.training; infra/constructs/training_pipeline.py), read off the synthesised templates:
where it exists, what its state machine decides when runs overlap, what the job runs and with which arguments
(parsed by training/train.py's own parser), who may do what, what starts it and what alarms.

What AWS enforces and moto would not: the job's entry point is the training image's, its arguments parse, the
state machine may pass only the job's role and touch only its own jobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.config import TrainingSettings
from infra.constructs.pipeline_function import METRICS_NAMESPACE
from infra.constructs.training_pipeline import run_cap_seconds
from infra.naming import Component, training_job_prefix
from infra.workspace import Stage
from pipeline.layout import current_build_key
from pipeline.registry import trained_model
from scripts.service_image import read_dockerfile
from tests.infra.state_machine import definition, reachable
from training.promotion import CHAMPION_AGE_METRIC
from training.train import argument_parser

ROOT = Path(__file__).resolve().parents[2]
MODEL = trained_model()


def ml_template(workspace) -> dict[str, Any]:
    return workspace.templates[Component.ML].to_json()


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == kind}


def machine(workspace) -> tuple[str, dict[str, Any]]:
    ((logical_id, resource),) = of_type(ml_template(workspace), "AWS::StepFunctions::StateMachine").items()
    return logical_id, resource


def settings(config, workspace) -> TrainingSettings:
    return config.stage(workspace.target.stage).ml.training


@pytest.fixture(params=[Stage.INT, Stage.PRD], ids=lambda s: s.value)
def training(request, workspaces):
    return workspaces[request.param]


def test_training_runs_in_aws_where_config_sets_a_trigger_only(workspaces, config) -> None:
    for stage, workspace in workspaces.items():
        machines = of_type(ml_template(workspace), "AWS::StepFunctions::StateMachine")
        assert bool(machines) == config.stage(stage).ml.training.enabled, stage
    assert not config.stage(Stage.FEATURE).ml.training.enabled, "feature stages train by hand unless they ask"
    assert config.stage(Stage.INT).ml.training.enabled and config.stage(Stage.PRD).ml.training.enabled


def test_the_state_machine_is_named_for_its_workspace(training, config) -> None:
    _, resource = machine(training)
    assert resource["Properties"]["StateMachineName"] == f"{config.project}-{training.target.workspace}-training"


# --- one run at a time ----------------------------------------------------------------------------------------


def path_value(document: dict[str, Any], path: str) -> tuple[bool, Any]:
    """A JSONPath of the simple kind the definition uses ($.a.b[0].c), evaluated: (present, value)."""
    value: Any = document
    for part in path.removeprefix("$.").replace("[", ".[").split("."):
        if part.startswith("["):
            index = int(part.strip("[]"))
            if not isinstance(value, list) or len(value) <= index:
                return False, None
            value = value[index]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return False, None
    return True, value


def after_listing(states: dict[str, Any], running: list[str], me: str) -> str:
    """The state a run enters after listing the running executions (`running`, newest first, as ListExecutions
    returns them), by the definition's own selector and choice rules."""
    listing = states["RunningNow"]
    assert listing["Parameters"]["StatusFilter"] == "RUNNING"
    selector = listing["ResultSelector"]["oldest.$"]
    assert selector == "$.Executions[-1:]", "the last of a newest-first list: the oldest"
    executions = [{"ExecutionArn": arn} for arn in running]
    document = {listing["ResultPath"].removeprefix("$."): {"oldest": executions[-1:]}}
    choice = states[listing["Next"]]
    for rule in choice["Choices"]:
        present, value = path_value(document, rule["Variable"])
        if "IsPresent" in rule and present == rule["IsPresent"]:
            return str(rule["Next"])
        if "StringEqualsPath" in rule:
            assert rule["StringEqualsPath"] == "$$.Execution.Id", "this run's own ARN"
            if present and value == me:
                return str(rule["Next"])
    return str(choice["Default"])


def test_only_the_oldest_running_execution_trains(training) -> None:
    states = definition(ml_template(training))["States"]
    me, older, newer = "arn:execution:me", "arn:execution:older", "arn:execution:newer"
    assert after_listing(states, [me], me) == "Train", "alone"
    assert after_listing(states, [newer, me], me) == "Train", "a later run waits for none: it ends"
    assert after_listing(states, [me, older], me) == "AnotherRunIsTraining"
    assert after_listing(states, [newer, me, older], me) == "AnotherRunIsTraining"
    assert after_listing(states, [], me) == "Train", "not listed yet: nothing older is either"
    assert states["AnotherRunIsTraining"]["Type"] == "Succeed", "an overlapping trigger is no failure"
    assert reachable(states, definition(ml_template(training))["StartAt"]) == {
        "RunningNow",
        "OldestRun?",
        "Train",
        "AnotherRunIsTraining",
    }


def test_the_listing_is_of_this_state_machine_and_allowed_on_it_only(training, config) -> None:
    states = definition(ml_template(training))["States"]
    name = f"{config.project}-{training.target.workspace}-training"
    listed = states["RunningNow"]["Parameters"]["StateMachineArn"]
    assert listed.endswith(f":stateMachine:{name}")
    assert states["RunningNow"]["Resource"].endswith(":states:::aws-sdk:sfn:listExecutions")
    statements = role_statements(ml_template(training), machine_role(training))
    (listing,) = [s for s in statements if "states:ListExecutions" in actions(s)]
    assert listing["Resource"] == listed


# --- what the job runs ----------------------------------------------------------------------------------------


def train_state(workspace) -> dict[str, Any]:
    state = definition(ml_template(workspace))["States"]["Train"]
    assert state["Resource"].endswith(":states:::sagemaker:createTrainingJob.sync"), "waits for the job's end"
    return state


def test_the_job_runs_the_training_images_entry_point(training) -> None:
    """SageMaker runs ContainerEntrypoint in the image: the Dockerfile's own, the command `make train` runs."""
    spec = read_dockerfile(ROOT / "training" / "Dockerfile")
    algorithm = train_state(training)["Parameters"]["AlgorithmSpecification"]
    assert algorithm["ContainerEntrypoint"] == list(spec.entrypoint) == ["python", "-m", "training.train"]
    assert spec.python_version == "3.11" and spec.installs == ((spec.workdir / "requirements.txt"),)
    assert spec.context_path(spec.installs[0]) == ROOT / "training" / "requirements.txt"
    copied = {str(target) for _, target in spec.copies}
    assert {f"{spec.workdir}/{package}" for package in ("pipeline", "contracts", "training")} <= copied


def test_the_job_image_is_the_training_dockerfile_built_for_the_service_platform(training, cdk_out) -> None:
    manifest = json.loads((cdk_out / f"{training.stacks[Component.ML].stack_name}.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["dockerFile"] == "training/Dockerfile" and image["source"]["platform"] == "linux/amd64"
    assert Path(image["source"]["directory"]).name.startswith("asset.")
    uri = train_state(training)["Parameters"]["AlgorithmSpecification"]["TrainingImage"]
    (destination,) = image["destinations"].values()
    assert destination["imageTag"] in json.dumps(machine(training)[1]["Properties"]["DefinitionString"]), uri


def test_the_jobs_arguments_parse_and_say_what_config_says(training, config, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the job's environment sets it, not its arguments
    wanted = settings(config, training)
    arguments = train_state(training)["Parameters"]["AlgorithmSpecification"]["ContainerArguments"]
    args = argument_parser().parse_args(arguments)
    assert args.data.startswith("s3://") and args.data.endswith(f"/{MODEL.dataset}/{MODEL.table}")
    assert args.build is None, "the table's current build: the one just promoted"
    assert args.min_new_rows == wanted.min_new_rows and args.min_improvement == wanted.min_improvement
    assert args.require_approval is wanted.require_approval
    assert args.require_approval is (training.target.stage is Stage.PRD), "a person approves what serves prd"
    assert args.metrics_namespace == METRICS_NAMESPACE
    assert args.metric_dimensions == {"workspace": training.target.workspace}
    assert args.tracking_uri is None, "from the environment: MLFLOW_TRACKING_URI"


def test_the_job_logs_to_this_workspaces_mlflow_and_reads_its_curated_bucket(training) -> None:
    template = json.dumps(machine(training)[1]["Properties"]["DefinitionString"])
    parameters = train_state(training)["Parameters"]
    assert parameters["Environment"]["MLFLOW_TRACKING_URI"].startswith("REF:"), "a token: the MLflow's ARN"
    mlflow_id = "MlflowServer" if training.target.stage is Stage.PRD else "Mlflow"
    assert f'{{"Fn::GetAtt": ["{mlflow_id}", ' in template
    assert "PublishOutputRefCurated" in template and "PublishOutputRefArtifacts" in template


def test_the_jobs_size_runtime_and_spot_follow_config(training, config) -> None:
    wanted = settings(config, training)
    parameters = train_state(training)["Parameters"]
    assert parameters["ResourceConfig"] == {
        "InstanceType": wanted.instance_type,
        "InstanceCount": 1,
        "VolumeSizeInGB": wanted.volume_gb,
    }
    stop = parameters["StoppingCondition"]
    assert stop["MaxRuntimeInSeconds"] == wanted.max_runtime_minutes * 60
    assert parameters["EnableManagedSpotTraining"] is wanted.spot
    assert ("MaxWaitTimeInSeconds" in stop) is wanted.spot
    if wanted.spot:
        assert stop["MaxWaitTimeInSeconds"] >= stop["MaxRuntimeInSeconds"], "SageMaker refuses less"
    _, resource = machine(training)
    timeout = definition(ml_template(training)).get("TimeoutSeconds")
    assert timeout is not None and timeout > run_cap_seconds(wanted), "the execution outlives its job's cap"
    assert resource["Properties"]["TracingConfiguration"] == {"Enabled": True}


def test_spot_waits_as_long_again_and_on_demand_not_at_all() -> None:
    assert run_cap_seconds(TrainingSettings(after_promotion=True, max_runtime_minutes=10)) == 600
    assert run_cap_seconds(TrainingSettings(after_promotion=True, max_runtime_minutes=10, spot=True)) == 1200


def test_the_job_names_start_with_the_workspaces_prefix(training, config) -> None:
    name = train_state(training)["Parameters"]["TrainingJobName.$"]
    prefix = training_job_prefix(config.project, training.target.workspace)
    assert name == f"States.Format('{prefix}-{{}}', States.UUID())"


# --- who may do what ------------------------------------------------------------------------------------------


def actions(statement: dict[str, Any]) -> list[str]:
    found = statement["Action"]
    return [found] if isinstance(found, str) else list(found)


def machine_role(workspace) -> str:
    return str(machine(workspace)[1]["Properties"]["RoleArn"]["Fn::GetAtt"][0])


def job_role(workspace) -> str:
    ((logical_id, _),) = [
        (lid, r)
        for lid, r in of_type(ml_template(workspace), "AWS::IAM::Role").items()
        if lid.startswith("TrainingJobRole")
    ]
    return logical_id


def role_statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """The statements of the role's own (default) policy, however CDK attached it."""
    statements = []
    for resource in template["Resources"].values():
        if resource["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        props = resource["Properties"]
        if {"Ref": role} in props.get("Roles", []):
            statements += props["PolicyDocument"]["Statement"]
    return statements


def definition_parts(workspace) -> list[str]:
    """The definition's text parts, each cut at its end to the last JSON key it opens (to find what follows)."""
    parts = machine(workspace)[1]["Properties"]["DefinitionString"]["Fn::Join"][1]
    return [part[part.rfind(',"') + 1 :] if isinstance(part, str) else "" for part in parts]


def test_the_state_machine_passes_only_the_jobs_role_to_sagemaker_and_runs_only_its_own_jobs(training, config) -> None:
    template = ml_template(training)
    statements = role_statements(template, machine_role(training))
    (passing,) = [s for s in statements if "iam:PassRole" in actions(s)]
    assert passing["Resource"] == {"Fn::GetAtt": [job_role(training), "Arn"]}
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    jobs = [s for s in statements if any(a.startswith("sagemaker:") for a in actions(s))]
    own = [s for s in jobs if s["Resource"] != "*"]
    assert sorted(a for s in own for a in actions(s)) == [
        "sagemaker:AddTags",  # Step Functions tags the jobs it starts: without it, CreateTrainingJob is refused
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:StopTrainingJob",
    ]
    (anywhere,) = [[a for a in actions(s) if a.startswith("sagemaker:")] for s in jobs if s["Resource"] == "*"]
    assert anywhere == ["sagemaker:ListTags"], "as AWS's .sync policy: reading tags back, no more"
    prefix = training_job_prefix(config.project, training.target.workspace)
    assert {json.dumps(s["Resource"]) for s in own} == {json.dumps(own[0]["Resource"])}
    assert str(own[0]["Resource"]).endswith(f":training-job/{prefix}-*")
    role_arn = machine(training)[1]["Properties"]["DefinitionString"]["Fn::Join"][1][
        1 + definition_parts(training).index('"RoleArn":"')
    ]
    assert role_arn == {"Fn::GetAtt": [job_role(training), "Arn"]}, "the job runs as the role passed"
    assert "*" not in {json.dumps(s["Resource"]) for s in statements if "iam:PassRole" in actions(s)}


def test_the_jobs_role_is_sagemakers_and_reaches_its_mlflow_and_one_metric_namespace(training) -> None:
    template = ml_template(training)
    role = template["Resources"][job_role(training)]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    policies = json.dumps(role["ManagedPolicyArns"])
    assert f"CuratedReadUnder{MODEL.dataset.title()}{MODEL.table.title()}" in policies
    assert "ArtifactsReadWritePolicy" in policies
    assert "CuratedRead" not in policies.replace("CuratedReadUnder", ""), "its model's table, not all of curated"
    statements = role_statements(template, job_role(training))
    mlflow_id = "MlflowServer" if training.target.stage is Stage.PRD else "Mlflow"
    mlflow = [s for s in statements if any(a.startswith("sagemaker") for a in actions(s))]
    assert mlflow and all(mlflow_id in json.dumps(s["Resource"]) for s in mlflow), "its own MLflow only"
    (metrics,) = [s for s in statements if "cloudwatch:PutMetricData" in actions(s)]
    assert metrics["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": [METRICS_NAMESPACE, "/aws/sagemaker/TrainingJobs"]}
    }, "the champion's age and SageMaker's own job metrics, no other namespace"


# --- what starts it, what alarms -------------------------------------------------------------------------------


def test_a_new_curated_build_of_the_models_table_starts_a_run(training, workspaces, config) -> None:
    template = ml_template(training)
    machine_id, _ = machine(training)
    rules = of_type(template, "AWS::Events::Rule")
    (after,) = [r["Properties"] for lid, r in rules.items() if lid.startswith("TrainingAfterPromotion")]
    pattern = after["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"]["key"] == [current_build_key(MODEL.dataset, MODEL.table)]
    (bucket,) = pattern["detail"]["bucket"]["name"]
    assert "PublishOutputRefCurated" in json.dumps(bucket)
    (target,) = after["Targets"]
    assert target["Arn"] == {"Ref": machine_id}
    assert not [lid for lid in rules if lid.startswith("TrainingSchedule")], "config sets no schedule"
    assert event_bridge_buckets(training) >= {"Raw", "Curated"}
    assert "Curated" not in event_bridge_buckets(workspaces[Stage.FEATURE]), "no training in feature: no events"


def event_bridge_buckets(workspace) -> set[str]:
    """The buckets that send their events to EventBridge (CDK turns it on through its notifications resource)."""
    storage = workspace.templates[Component.STORAGE].to_json()["Resources"]
    return {
        r["Properties"]["BucketName"]["Ref"].rstrip("0123456789ABCDEF")
        for r in storage.values()
        if r["Type"] == "Custom::S3BucketNotifications"
        and "EventBridgeConfiguration" in r["Properties"]["NotificationConfiguration"]
    }


def alarms(workspace) -> dict[str, dict[str, Any]]:
    return {lid: r["Properties"] for lid, r in of_type(ml_template(workspace), "AWS::CloudWatch::Alarm").items()}


def test_a_failed_or_timed_out_run_alarms_to_the_workspace_topic(training) -> None:
    machine_id, _ = machine(training)
    ((_, alarm),) = [(lid, a) for lid, a in alarms(training).items() if lid.startswith("TrainingRunFailed")]
    read = {m["MetricStat"]["Metric"]["MetricName"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert set(read) == {"ExecutionsFailed", "ExecutionsTimedOut"}
    for stat in read.values():
        assert stat["Metric"]["Namespace"] == "AWS/States" and stat["Stat"] == "Sum"
        (dimension,) = stat["Metric"]["Dimensions"]
        assert dimension == {"Name": "StateMachineArn", "Value": {"Ref": machine_id}}
    (expression,) = [m for m in alarm["Metrics"] if "Expression" in m]
    assert expression["Expression"] == "FILL(failed, 0) + FILL(timedOut, 0)" and expression["ReturnData"] is True
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    topic_stack = training.stacks[Component.MONITORING].stack_name
    assert alarm["AlarmActions"][0]["Fn::GetStackOutput"]["StackName"] == topic_stack
    assert alarm["OKActions"] == alarm["AlarmActions"]


def test_a_stale_champion_alarms_at_configs_age(training, config) -> None:
    wanted = settings(config, training)
    ((_, alarm),) = [(lid, a) for lid, a in alarms(training).items() if lid.startswith("TrainingStaleChampion")]
    assert alarm["MetricName"] == CHAMPION_AGE_METRIC and alarm["Namespace"] == METRICS_NAMESPACE
    assert alarm["Threshold"] == wanted.champion_max_age_days and alarm["Statistic"] == "Maximum"
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
        "workspace": training.target.workspace,
        "model": MODEL.model,
    }
    assert alarm["TreatMissingData"] == "ignore", "reported by runs only: between runs the last state holds"
    assert (
        alarm["AlarmActions"][0]["Fn::GetStackOutput"]["StackName"] == training.stacks[Component.MONITORING].stack_name
    )


def test_the_jobs_role_reads_its_models_table_and_no_other(training) -> None:
    """The managed policy beside the curated bucket (DataBucket.read_under_policy): objects under the table's
    prefix, the listing of that prefix, the bucket's key through S3 where it has one; no write, no other table."""
    storage = training.templates[Component.STORAGE].to_json()["Resources"]
    ((logical_id, policy),) = [
        (lid, r["Properties"]) for lid, r in storage.items() if lid.startswith("CuratedReadUnderDiabetesPatients")
    ]
    statements = policy["PolicyDocument"]["Statement"]
    (objects,) = [s for s in statements if actions(s) == ["s3:GetObject"]]
    joined = objects["Resource"]["Fn::Join"][1]
    assert joined[0]["Fn::GetAtt"][0].startswith("Curated") and joined[1] == f"/{MODEL.dataset}/{MODEL.table}/*"
    (listing,) = [s for s in statements if actions(s) == ["s3:ListBucket"]]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"{MODEL.dataset}/{MODEL.table}/*"]}}
    keys = [s for s in statements if all(a.startswith("kms:") for a in actions(s))]
    assert [actions(s) for s in keys] == [["kms:Decrypt"]], "int and prd: read with the data key, through S3 only"
    assert keys[0]["Condition"]["StringEquals"]["kms:ViaService"].startswith("s3.")
    assert {a for s in statements for a in actions(s)} == {"s3:GetObject", "s3:ListBucket", "kms:Decrypt"}
    assert logical_id.removesuffix(logical_id[-8:]) in json.dumps(ml_template(training)), "the job role holds it"
