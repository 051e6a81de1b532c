"""config/project.yaml: the shipped file loads; every kind of bad value fails with where, what and why."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from infra.config import DEFAULT_CONFIG_PATH, ConfigError, ProjectConfig, load_config
from infra.workspace import Stage

RAW: dict[str, Any] = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())


def load_modified(tmp_path: Path, change) -> ProjectConfig:
    raw = copy.deepcopy(RAW)
    change(raw)
    path = tmp_path / "project.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def error_of(tmp_path: Path, change) -> str:
    with pytest.raises(ConfigError) as caught:
        load_modified(tmp_path, change)
    message = str(caught.value)
    assert str(tmp_path / "project.yaml") in message, "the error names the file"
    return message


def test_the_shipped_config_loads(config: ProjectConfig) -> None:
    assert config.project == "dataplat"
    assert config.naming_rules.abbreviation("WEDATAIN") == "we"
    assert config.stage(Stage.FEATURE).account == "111111111111"
    # defaults are merged under each stage, and a stage's own value wins
    assert config.stage(Stage.INT).region == config.stage(Stage.PRD).region == "eu-west-1"
    assert config.stage(Stage.FEATURE).storage.noncurrent_version_expiration_days == 30
    assert config.stage(Stage.PRD).storage.noncurrent_version_expiration_days == 365
    assert config.stage(Stage.PRD).service.desired_count == 2


def test_config_is_frozen(config: ProjectConfig) -> None:
    with pytest.raises(ValidationError):
        config.project = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.stage(Stage.PRD).storage.noncurrent_version_expiration_days = 1  # type: ignore[misc]


def test_missing_key(tmp_path: Path) -> None:
    message = error_of(tmp_path, lambda raw: raw["stages"]["prd"].pop("account"))
    assert "stages.prd.account: missing" in message
    assert "12-digit AWS account ID" in message


def test_wrong_type_account_written_as_a_number(tmp_path: Path) -> None:
    message = error_of(tmp_path, lambda raw: raw["stages"]["int"].update(account=222222222222))
    assert "stages.int.account: got 222222222222 (int)" in message
    assert '"123456789012"' in message, "says how to write it"


def test_wrong_type_string_for_a_number(tmp_path: Path) -> None:
    message = error_of(tmp_path, lambda raw: raw["defaults"]["service"].update(desired_count="2"))
    assert "stages.feature.service.desired_count (inherited from defaults.service.desired_count)" in message
    assert "got '2' (str)" in message and "valid integer" in message


def test_out_of_range_value(tmp_path: Path) -> None:
    message = error_of(
        tmp_path, lambda raw: raw["stages"]["prd"]["storage"].update(noncurrent_version_expiration_days=0)
    )
    assert "stages.prd.storage.noncurrent_version_expiration_days: got 0 (int)" in message
    assert "greater than or equal to 1" in message


def test_value_not_in_an_allowed_set(tmp_path: Path) -> None:
    message = error_of(tmp_path, lambda raw: raw["stages"]["int"]["monitoring"].update(log_retention_days=42))
    assert "stages.int.monitoring.log_retention_days: got 42 (int)" in message
    assert "must be one of 1, 3, 5" in message


def test_unknown_key_lists_the_allowed_ones(tmp_path: Path) -> None:
    message = error_of(tmp_path, lambda raw: raw["stages"]["feature"].update(acount="111111111111"))
    assert "stages.feature.acount: unknown key" in message
    assert "allowed keys here: account, region, availability_zones, storage" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = error_of(tmp_path, lambda raw: raw.update(projet="x"))
    assert "projet: unknown key" in message and "project" in message


@pytest.mark.parametrize("name", ["Data", "data-platform", "a", "thirteenchars", "9lives"])
def test_bad_project_names(tmp_path: Path, name: str) -> None:
    message = error_of(tmp_path, lambda raw: raw.update(project=name))
    assert f"project: got {name!r}" in message
    assert "2-12 lowercase letters/digits" in message


def test_cross_field_rules(tmp_path: Path) -> None:
    message = error_of(tmp_path, lambda raw: raw["stages"]["prd"]["service"].update(memory_mib=700))
    assert "memory_mib 700 is not a Fargate size for cpu 1024" in message
    message = error_of(tmp_path, lambda raw: raw["stages"]["int"].update(ml={"mlflow": "shared"}))
    assert "set shared_mlflow_arn exactly when mlflow is 'shared'" in message
    arn = "arn:aws:sagemaker:eu-west-1:111111111111:mlflow-app/app-shared"
    message = error_of(
        tmp_path, lambda raw: raw["stages"]["int"].update(ml={"mlflow": "shared", "shared_mlflow_arn": arn})
    )
    assert "set shared_mlflow_artifact_store (the shared MLflow's s3:// artifact store" in message
    message = error_of(
        tmp_path,
        lambda raw: raw["stages"]["int"].update(
            ml={"mlflow": "shared", "shared_mlflow_arn": arn, "shared_mlflow_artifact_store": "team-bucket"}
        ),
    )
    assert "shared_mlflow_artifact_store" in message and "team-bucket" in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    def break_two(raw: dict[str, Any]) -> None:
        raw["stages"]["prd"]["region"] = "mars-1"
        raw["ticket_keys"]["lower"] = "x"

    message = error_of(tmp_path, break_two)
    assert "2 invalid setting(s)" in message
    assert "stages.prd.region: got 'mars-1'" in message and "ticket_keys.lower" in message


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("project: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(bad)


@pytest.mark.parametrize("stage", ["int", "prd"])
def test_the_int_and_prd_alarm_topic_keeps_its_key(tmp_path: Path, config: ProjectConfig, stage: str) -> None:
    message = error_of(
        tmp_path, lambda raw: raw["stages"][stage].setdefault("monitoring", {}).update(alarm_topic_key=False)
    )
    assert f"stages.{stage}.monitoring.alarm_topic_key must be true" in message
    assert config.stage(Stage(stage)).monitoring.alarm_topic_key is True
    assert config.stage(Stage.FEATURE).monitoring.alarm_topic_key is False, "feature's is off (cost)"


@pytest.mark.parametrize("stage", ["int", "prd"])
def test_the_int_and_prd_notebook_cannot_have_direct_internet_access(
    tmp_path: Path, config: ProjectConfig, stage: str
) -> None:
    def open_notebook(raw: dict) -> None:
        ml = raw["stages"][stage]["ml"]
        ml.update(notebook_direct_internet_access=True)
        ml.pop("notebook_subnet_id"), ml.pop("notebook_security_group_id")

    message = error_of(tmp_path, open_notebook)
    assert f"stages.{stage}.ml.notebook_direct_internet_access must be false" in message
    assert "notebook_subnet_id and notebook_security_group_id" in message
    ml = config.stage(Stage(stage)).ml
    assert ml.notebook_direct_internet_access is False and ml.notebook_subnet_id, "the shipped config complies"


@pytest.mark.parametrize("stage", ["int", "prd"])
def test_int_and_prd_tasks_run_in_private_subnets(tmp_path: Path, stage: str) -> None:
    message = error_of(tmp_path, lambda raw: raw["stages"][stage]["service"].update(nat_gateways=0))
    assert f"stages.{stage}.service.nat_gateways must be at least 1" in message and "no public address" in message


@pytest.mark.parametrize("stage", ["int", "prd"])
@pytest.mark.parametrize("missing", ["certificate_arn", "domain_name"])
def test_int_and_prd_serve_https_only(tmp_path: Path, stage: str, missing: str) -> None:
    message = error_of(tmp_path, lambda raw: raw["stages"][stage]["service"].pop(missing))
    assert f"stages.{stage}.service needs certificate_arn and domain_name" in message and "HTTPS only" in message


def test_the_feature_stage_keeps_its_cheaper_choices(config) -> None:
    feature = config.stage(Stage.FEATURE)
    assert feature.ml.notebook_direct_internet_access and feature.service.nat_gateways == 0
    assert feature.service.certificate_arn is None


def test_replication_names_each_bucket_once(tmp_path: Path) -> None:
    rule = {"bucket": "curated", "destination_bucket_arn": "arn:aws:s3:::replica-bucket"}
    message = error_of(tmp_path, lambda raw: raw["stages"]["prd"]["storage"].update(replication=[rule, rule]))
    assert "replication names a bucket more than once" in message
    message = error_of(
        tmp_path, lambda raw: raw["stages"]["prd"]["storage"].update(replication=[rule | {"bucket": "accesslogs"}])
    )
    assert "stages.prd.storage.replication.0.bucket" in message


@pytest.mark.parametrize("stage", ["int", "prd"])
def test_int_and_prd_cannot_serve_open(tmp_path: Path, stage: str) -> None:
    message = error_of(tmp_path, lambda raw: raw["stages"][stage].setdefault("service", {}).update(endpoint="open"))
    assert f"stages.{stage}.service.endpoint must not be 'open'" in message
    assert "'internal'" in message
    assert "set certificate_arn, domain_name, jwt_issuer, jwt_jwks_endpoint and jwt_claims" in message


def test_the_shipped_endpoints_internal_for_int_and_prd_serverless_and_signed_for_the_feature_stage(config) -> None:
    assert config.stage(Stage.INT).service.endpoint == config.stage(Stage.PRD).service.endpoint == "internal"
    assert config.stage(Stage.INT).service.mode == config.stage(Stage.PRD).service.mode == "fargate"
    feature = config.stage(Stage.FEATURE).service
    assert (feature.mode, feature.endpoint) == ("serverless", "iam")
    assert RAW["stages"]["feature"]["service"]["mode"] == "serverless", "an explicit choice of that stage"
    assert (RAW["defaults"]["service"]["endpoint"], RAW["defaults"]["service"]["mode"]) == ("internal", "fargate")


@pytest.mark.parametrize(
    ("service", "problem"),
    [
        ({"mode": "serverless", "endpoint": "open"}, "endpoint 'open' with mode 'serverless'"),
        ({"mode": "fargate", "endpoint": "iam"}, "endpoint 'iam' with mode 'fargate'"),
        ({"max_body_bytes": 4_500_001}, "max_body_bytes 4500001 is over what Lambda takes"),
        ({"nat_gateways": 1}, "nat_gateways are for the tasks' VPC"),
        ({"certificate_arn": "arn:aws:acm:eu-west-1:111111111111:certificate/abc"}, "are the load balancer's"),
        ({"lambda_memory_mib": 512}, "greater than or equal to 1024"),
    ],
)
def test_a_serverless_service_is_refused_what_lambda_cannot_do(tmp_path: Path, service: dict, problem: str) -> None:
    message = error_of(tmp_path, lambda raw: raw["stages"]["feature"]["service"].update(service))
    assert "stages.feature.service" in message and problem in message, message


@pytest.mark.parametrize("stage", ["int", "prd"])
def test_int_and_prd_run_the_service_on_fargate(tmp_path: Path, stage: str) -> None:
    def serverless(raw: dict) -> None:
        service = raw["stages"][stage]["service"]
        service.update(mode="serverless", endpoint="iam")
        service.pop("certificate_arn"), service.pop("domain_name")  # the load balancer's, refused on their own
        service["nat_gateways"] = 0  # the tasks' VPC's, too

    message = error_of(tmp_path, serverless)
    assert f"stages.{stage}.service.mode must be 'fargate'" in message, message


PUBLIC = {
    "endpoint": "public",
    "certificate_arn": "arn:aws:acm:eu-west-1:333333333333:certificate/abc",
    "domain_name": "models.example.com",
    "jwt_issuer": "https://login.example.com/t",
    "jwt_jwks_endpoint": "https://login.example.com/t/keys",
    "jwt_claims": [{"name": "aud", "values": ["api://model-service"]}],
}


@pytest.mark.parametrize("missing", ["certificate_arn", "domain_name", "jwt_issuer", "jwt_jwks_endpoint", "jwt_claims"])
def test_a_public_endpoint_needs_a_certificate_and_a_jwt_issuer(tmp_path: Path, missing: str) -> None:
    settings = {k: v for k, v in PUBLIC.items() if k != missing}
    message = error_of(tmp_path, lambda raw: raw["stages"]["feature"]["service"].update(settings))
    assert f"endpoint 'public' needs {missing}" in message and "stages.feature.service" in message


def test_a_public_endpoint_with_everything_loads_and_jwt_keys_need_it(tmp_path: Path) -> None:
    loaded = load_modified(tmp_path, lambda raw: raw["stages"]["prd"]["service"].update(PUBLIC))
    assert loaded.stage(Stage.PRD).service.endpoint == "public"
    message = error_of(
        tmp_path,
        lambda raw: raw["stages"]["int"].setdefault("service", {}).update(jwt_issuer="https://login.example.com/t"),
    )
    assert "jwt_issuer, jwt_jwks_endpoint and jwt_claims apply only to endpoint 'public', not 'internal'" in message
    bad_url = error_of(tmp_path, lambda raw: raw["stages"]["prd"]["service"].update(PUBLIC, jwt_issuer="http://x"))
    assert "jwt_issuer" in bad_url
    reserved = error_of(
        tmp_path,
        lambda raw: raw["stages"]["prd"]["service"].update(PUBLIC, jwt_claims=[{"name": "iss", "values": ["x"]}]),
    )
    assert "jwt_claims: iss is validated by the load balancer already" in reserved
    cidrs = error_of(
        tmp_path, lambda raw: raw["stages"]["prd"]["service"].update(PUBLIC, allowed_cidrs=["10.9.0.0/16"])
    )
    assert "allowed_cidrs apply only to endpoint 'internal', not 'public'" in cidrs


def test_raw_retention_must_outlast_its_transitions(tmp_path: Path) -> None:
    message = error_of(tmp_path, lambda raw: raw["stages"]["prd"]["storage"].update(retention_days={"raw": 60}))
    assert "retention_days.raw (60) must be longer than the raw transitions" in message
    message = error_of(tmp_path, lambda raw: raw["stages"]["prd"]["storage"].update(retention_days={"raws": 60}))
    assert "retention_days" in message and "raws" in message


@pytest.mark.parametrize(
    ("key", "value", "bound"),
    [
        ("max_running_files", 0, "greater than or equal to 1"),
        ("max_running_files", 101, "less than or equal to 100"),
        ("max_queue_wait_minutes", 4, "greater than or equal to 5"),
        ("promotion_schedule", "every 15 minutes", "should match pattern"),
        ("ingest_schedule", "rate(1 week)", "should match pattern"),
    ],
)
def test_the_pipelines_concurrency_queue_wait_and_schedules_are_bounded(
    tmp_path: Path, key: str, value: int | str, bound: str
) -> None:
    message = error_of(tmp_path, lambda raw: raw["defaults"]["etl"].update({key: value}))
    assert (
        f"stages.feature.etl.{key} (inherited from defaults.etl.{key}): got {value!r} ({type(value).__name__})"
        in message
    )
    assert bound in message


@pytest.mark.parametrize(
    ("dedicated", "problem"),
    [
        ({"clinic/appointments": {"glue_worker_type": "G.025X"}}, "G.025X"),  # Glue runs it for streaming only
        ({"clinic/appointments": {"glue_number_of_workers": 1}}, "greater than or equal to 2"),
        ({"clinic/appointments": {"workers": 4}}, "workers"),
        ({"clinic": {}}, "should match pattern"),
        ({"clinic/appoint.ments": {}}, "should match pattern"),  # a dot: a table's job names use one
        ({"d/" + "t" * 63: {}}, "at most 64 characters"),
        ({f"d/t{i}": {} for i in range(11)}, "at most 10 items"),
    ],
)
def test_a_tables_own_jobs_are_sized_as_glue_takes_them(tmp_path: Path, dedicated: dict, problem: str) -> None:
    message = error_of(tmp_path, lambda raw: raw["stages"]["prd"]["etl"].update({"dedicated_jobs": dedicated}))
    assert "stages.prd.etl.dedicated_jobs" in message and problem in message, message


def test_a_tables_own_jobs_take_the_stages_size_where_unset(config: ProjectConfig) -> None:
    from infra.config import DedicatedJobs
    from infra.stacks.etl import job_size

    prd = config.stage("prd").etl
    assert list(prd.dedicated_jobs) == ["clinic/appointments"], "the shipped example"
    assert config.stage("feature").etl.dedicated_jobs == {} == config.stage("int").etl.dedicated_jobs
    assert (prd.glue_worker_type, prd.glue_number_of_workers) == ("G.1X", 10)
    own = job_size(prd, "clinic/appointments", 1)
    assert (own.worker_type, own.workers, own.concurrent_runs) == ("G.2X", 10, 1)
    shared = job_size(prd, None, 3)
    assert (shared.worker_type, shared.workers, shared.concurrent_runs) == ("G.1X", 10, 3)
    assert job_size(prd, "diabetes/patients", 1).workers == 10, "a table without its own jobs: the stage's size"
    for given, expected in (
        (DedicatedJobs(glue_number_of_workers=7), ("G.1X", 7)),
        (DedicatedJobs(glue_worker_type="G.4X"), ("G.4X", 10)),
        (DedicatedJobs(), ("G.1X", 10)),
    ):
        etl = prd.model_copy(update={"dedicated_jobs": {"a/b": given}})
        size = job_size(etl, "a/b", 1)
        assert (size.worker_type, size.workers) == expected
        assert (size.timeout_minutes, size.max_retries) == (prd.glue_timeout_minutes, prd.glue_max_retries)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("notebook_security_group_id", "sg-0a1b2c3d4e5f6071"),  # 16 hex digits: CloudFormation refuses it
        ("notebook_subnet_id", "subnet-0a1b2c3d4e"),
        ("notebook_subnet_id", "subnet-0A1B2C3D4E5F60718"),
    ],
)
def test_a_notebook_network_id_is_one_aws_would_take(tmp_path: Path, field: str, value: str) -> None:
    def misnamed(raw: dict) -> None:
        raw["stages"]["prd"]["ml"][field] = value

    assert f"stages.prd.ml.{field}" in error_of(tmp_path, misnamed)


# ---- components per stage ---------------------------------------------------------------------------------

MODEL_URI = "s3://team-models/diabetes/model"


def _components(**switches: bool):
    def change(raw: dict[str, Any]) -> None:
        raw["stages"]["feature"]["components"] = switches

    return change


@pytest.mark.parametrize(
    ("switches", "stacks"),
    [
        ({}, ("storage", "monitoring", "etl", "ml", "model-service")),
        (
            {"notebook": False, "mlflow": False, "model_service": False},
            ("storage", "monitoring", "etl"),
        ),
        ({"etl": False}, ("storage", "monitoring", "ml", "model-service")),
        ({"notebook": False}, ("storage", "monitoring", "etl", "ml", "model-service")),
        ({"notebook": False, "model_service": False}, ("storage", "monitoring", "etl", "ml")),
        (
            {"etl": False, "notebook": False, "mlflow": False, "model_service": False},
            ("storage", "monitoring"),
        ),
    ],
)
def test_a_stage_deploys_the_stacks_of_its_components(tmp_path: Path, switches, stacks) -> None:
    config = load_modified(tmp_path, _components(**switches))
    assert tuple(c.value for c in config.stage(Stage.FEATURE).components.stacks) == stacks
    assert config.stack_names(Stage.FEATURE, "x") == [f"dataplat-x-{c}" for c in stacks]
    assert len(config.stage(Stage.INT).components.stacks) == 5, "a stage lists only what differs"


def test_the_notebook_needs_mlflow(tmp_path: Path) -> None:
    message = error_of(tmp_path, _components(mlflow=False, model_service=False))
    assert "stages.feature: components.notebook needs components.mlflow" in message
    assert "switch mlflow on, or the notebook off" in message


def test_a_service_without_mlflow_needs_a_model_uri(tmp_path: Path) -> None:
    message = error_of(tmp_path, _components(mlflow=False, notebook=False))
    assert "components.model_service needs a model to serve" in message and "service.model_uri" in message

    def fixed_model(raw: dict[str, Any]) -> None:
        _components(mlflow=False, notebook=False)(raw)
        raw["stages"]["feature"]["service"]["model_uri"] = MODEL_URI

    config = load_modified(tmp_path, fixed_model)
    assert config.stage(Stage.FEATURE).service.model_uri == MODEL_URI
    assert [c.value for c in config.stage(Stage.FEATURE).components.stacks] == [
        "storage",
        "monitoring",
        "etl",
        "model-service",
    ]


@pytest.mark.parametrize(
    "switches",
    [{"model_service": False}, {}, {"notebook": False}],
    ids=["without-a-service", "with-mlflow", "with-mlflow-no-notebook"],
)
def test_a_model_uri_is_only_for_a_service_without_mlflow(tmp_path: Path, switches) -> None:
    """With MLflow the service follows the champion: a fixed model inherited from defaults would silently
    stop int and prd from following it."""

    def change(raw: dict[str, Any]) -> None:
        _components(**switches)(raw)
        raw["stages"]["feature"]["service"]["model_uri"] = MODEL_URI

    message = error_of(tmp_path, change)
    assert "service.model_uri applies only to a model service without MLflow" in message
    assert "set it to null there" in message


def test_a_model_key_needs_a_model_uri(tmp_path: Path) -> None:
    key = "arn:aws:kms:eu-west-1:111111111111:key/0a1b2c3d-0000-4000-8000-00000000000a"
    message = error_of(tmp_path, lambda raw: raw["stages"]["feature"]["service"].update(model_kms_key_arn=key))
    assert "service.model_kms_key_arn is the key of service.model_uri's bucket: set model_uri too" in message


@pytest.mark.parametrize(
    "uri",
    [
        "s3://team-models",
        "s3://Team/x",
        "https://x/model",
        "s3://team-models/a*b",
        "s3://team-models//",
        "s3://team-models/${aws:username}/model",
    ],
)
def test_a_model_uri_is_an_s3_directory(tmp_path: Path, uri: str) -> None:
    message = error_of(tmp_path, lambda raw: raw["stages"]["feature"]["service"].update(model_uri=uri))
    assert "stages.feature.service.model_uri: got" in message and "MLmodel file" in message


def test_a_misspelt_component_names_the_allowed_ones(tmp_path: Path) -> None:
    message = error_of(tmp_path, _components(notebooks=False))
    assert "stages.feature.components.notebooks: unknown key" in message
    assert "allowed keys here: etl, mlflow, notebook, model_service" in message


def test_int_and_prd_harden_only_what_they_deploy(tmp_path: Path) -> None:
    """A hardening rule of a switched-off component asks nothing: no certificate for a service that is not
    there; the notebook's network rule only where there is a notebook."""

    def change(raw: dict[str, Any]) -> None:
        prd = raw["stages"]["prd"]
        prd["components"] = {"notebook": False, "model_service": False}
        prd["ml"]["notebook_direct_internet_access"] = True
        for key in ("notebook_subnet_id", "notebook_security_group_id"):
            prd["ml"].pop(key)
        for key in ("certificate_arn", "domain_name"):
            prd["service"].pop(key)
        prd["service"]["endpoint"] = "open"

    assert [c.value for c in load_modified(tmp_path, change).stage(Stage.PRD).components.stacks] == [
        "storage",
        "monitoring",
        "etl",
        "ml",
    ]

    def service_back_on(raw: dict[str, Any]) -> None:
        change(raw)
        raw["stages"]["prd"]["components"]["model_service"] = True

    assert "stages.prd.service.endpoint must not be 'open'" in error_of(tmp_path, service_back_on)

    def notebook_back_on(raw: dict[str, Any]) -> None:
        change(raw)
        raw["stages"]["prd"]["components"]["notebook"] = True

    assert "stages.prd.ml.notebook_direct_internet_access must be false" in error_of(tmp_path, notebook_back_on)


def _source(raw: dict, stage: str, **settings) -> None:
    raw["stages"][stage].setdefault("etl", {})["database_sources"] = {"clinic/appointments": settings}


def test_a_database_source_in_int_or_prd_must_name_its_network(tmp_path: Path) -> None:
    message = error_of(tmp_path, lambda raw: _source(raw, "prd", schedule="rate(15 minutes)"))
    assert (
        "stages.prd.etl.database_sources.clinic/appointments needs subnet_ids and security_group_ids: the prd "
        "extractor reaches its database inside your network, never over the internet"
    ) in message
    feature = load_modified(tmp_path, lambda raw: _source(raw, "feature"))
    source = feature.stage(Stage.FEATURE).etl.database_sources["clinic/appointments"]
    assert source.schedule is None and source.secret_arn is None and source.subnet_ids == [], "off, created, public"
    assert source.timeout_minutes == 15 and source.memory_mib == 1024


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"subnet_ids": ["subnet-0a1b2c3d4e5f60718"]}, "subnet_ids and security_group_ids go together"),
        ({"security_group_ids": ["sg-0a1b2c3d4e5f60718"]}, "subnet_ids and security_group_ids go together"),
        (
            {"secret_key_arn": "arn:aws:kms:eu-west-1:111111111111:key/00000000-0000-4000-8000-000000000009"},
            "secret_key_arn applies to an existing secret (secret_arn) only",
        ),
        ({"timeout_minutes": 16}, "timeout_minutes"),
        ({"timeout_minutes": 2}, "timeout_minutes"),  # a run keeps a minute in reserve
        (
            {"schedule": "rate(10 minutes)"},
            "schedule rate(10 minutes) starts a run every 10 minutes, and a run may last timeout_minutes (15): "
            "schedule them at least that far apart, or lower timeout_minutes",
        ),
        (
            {"secret_arn": "arn:aws:secretsmanager:eu-west-1:111111111111:secret:db/clinic"},
            "secret_arn",
        ),  # a partial ARN: IAM would grant a name that is not the secret's
        ({"memory_mib": 128}, "memory_mib"),
        ({"secret_arn": "arn:aws:s3:::not-a-secret"}, "secret_arn"),
        ({"subnet_ids": ["vpc-1"], "security_group_ids": ["sg-0a1b2c3d4e5f60718"]}, "subnet_ids"),
        ({"schedul": "rate(1 hour)"}, "schedul"),
    ],
)
def test_a_database_sources_settings_are_checked_by_name(tmp_path: Path, settings: dict, problem: str) -> None:
    message = error_of(tmp_path, lambda raw: _source(raw, "feature", **settings))
    assert problem in message and "database_sources" in message, message


def test_a_database_source_must_be_a_dataset_and_table(tmp_path: Path) -> None:
    message = error_of(
        tmp_path, lambda raw: raw["stages"]["feature"].setdefault("etl", {}).update(database_sources={"Clinic": {}})
    )
    assert "database_sources" in message and "Clinic" in message, message


def test_a_schedule_as_far_apart_as_a_run_may_last_is_taken(tmp_path: Path) -> None:
    from infra.config import rate_minutes

    assert [rate_minutes(e) for e in ("rate(1 minute)", "rate(10 minutes)", "rate(2 hours)", "rate(1 day)")] == [
        1,
        10,
        120,
        1440,
    ]
    assert rate_minutes("cron(0 * * * ? *)") is None
    taken = load_modified(tmp_path, lambda raw: _source(raw, "feature", schedule="rate(1 hour)", timeout_minutes=15))
    assert taken.stage(Stage.FEATURE).etl.database_sources["clinic/appointments"].schedule == "rate(1 hour)"
    fast = load_modified(tmp_path, lambda raw: _source(raw, "feature", schedule="rate(5 minutes)", timeout_minutes=5))
    assert fast.stage(Stage.FEATURE).etl.database_sources["clinic/appointments"].timeout_minutes == 5


def _training(raw: dict, stage: str, **settings) -> None:
    raw["stages"][stage].setdefault("ml", {})["training"] = settings


def test_training_in_aws_is_off_unless_a_stage_sets_a_trigger(tmp_path: Path) -> None:
    shipped = load_modified(tmp_path, lambda raw: None)
    feature = shipped.stage(Stage.FEATURE).ml.training
    assert not feature.enabled and not feature.after_promotion and feature.schedule is None
    assert (feature.instance_type, feature.max_runtime_minutes, feature.spot) == ("ml.m5.large", 60, False)
    scheduled = load_modified(tmp_path, lambda raw: _training(raw, "feature", schedule="rate(1 day)"))
    assert scheduled.stage(Stage.FEATURE).ml.training.enabled
    prd = shipped.stage(Stage.PRD).ml.training
    assert prd.enabled and prd.require_approval, "a person approves what serves prd"
    assert shipped.stage(Stage.INT).ml.training.enabled and not shipped.stage(Stage.INT).ml.training.require_approval


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"champion_max_age_days": 7}, "champion_max_age_days is checked by the training runs: set after_promotion"),
        ({"after_promotion": True, "max_runtime_minutes": 4}, "max_runtime_minutes"),
        ({"after_promotion": True, "max_runtime_minutes": 1441}, "max_runtime_minutes"),
        ({"after_promotion": True, "instance_type": "m5.large"}, "instance_type"),
        ({"after_promotion": True, "min_new_rows": -1}, "min_new_rows"),
        ({"after_promotion": True, "min_improvement": -0.5}, "min_improvement"),
        ({"schedule": "every day"}, "schedule"),
        ({"after_promotion": "yes"}, "after_promotion"),
        ({"afterpromotion": True}, "afterpromotion"),
    ],
)
def test_training_settings_are_checked_by_name(tmp_path: Path, settings: dict, problem: str) -> None:
    message = error_of(tmp_path, lambda raw: _training(raw, "feature", **settings))
    assert problem in message and "training" in message, message


def test_training_needs_mlflow(tmp_path: Path) -> None:
    def mlflow_off(raw: dict[str, Any]) -> None:
        raw["stages"]["feature"]["components"] = {"notebook": False, "mlflow": False, "model_service": False}
        _training(raw, "feature", after_promotion=True)

    assert "ml.training needs components.mlflow" in error_of(tmp_path, mlflow_off)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [({"drift_window_records": 5}, "drift_window_records"), ({"drift_max_distance": 0}, "drift_max_distance")],
)
def test_drift_settings_are_checked_by_name(tmp_path: Path, settings: dict, problem: str) -> None:
    message = error_of(tmp_path, lambda raw: raw["stages"]["feature"].setdefault("service", {}).update(settings))
    assert problem in message and "service" in message, message
