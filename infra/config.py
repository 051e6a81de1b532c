"""The project's one configuration file, validated into a frozen, typed object.

Every knob the stacks read lives in `config/project.yaml`; a value that is missing, of the wrong
type, out of range or unknown fails here, before any synthesis, with the file, the key path, the
bad value and what is allowed. Nothing in this module reads environment variables: `app.py` is the
only place that looks at the outside world.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo

from infra.naming import DEDICATED_TABLE_MAX_LENGTH, PROJECT_NAME_MAX_LENGTH, Component, stack_name
from infra.workspace import NamingRules, Stage

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config" / "project.yaml"

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
FARGATE_CPU_MEMORY_MIB: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
}


class ConfigError(ValueError):
    """A config file that cannot be used; the message says where, what and what is allowed."""


def _one_of(allowed: tuple[int, ...]) -> AfterValidator:
    def check(value: int) -> int:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(map(str, allowed))}")
        return value

    return AfterValidator(check)


Email = Annotated[StrictStr, Field(pattern=r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")]
AccountId = Annotated[
    StrictStr, Field(pattern=r"^\d{12}$", description='a 12-digit AWS account ID, quoted: "123456789012"')
]
Region = Annotated[StrictStr, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$", description="e.g. eu-west-1")]
Days = Annotated[StrictInt, Field(ge=1, le=3650)]
HttpsUrl = Annotated[
    StrictStr,
    Field(pattern=r"^https://[A-Za-z0-9.-]+(:[0-9]+)?(/[^\s]*)?$", max_length=2048, description="an https:// URL"),
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Replication(_Section):
    """Copy one data bucket's new objects to a bucket in another region (or account) that you own."""

    bucket: Literal["landing", "raw", "quarantine", "staging", "curated", "artifacts"]
    """A data bucket (the construct ID, lowercase); not the access-log bucket."""
    destination_bucket_arn: Annotated[
        StrictStr, Field(pattern=r"^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    ]
    destination_kms_key_arn: (
        Annotated[StrictStr, Field(pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$")] | None
    ) = None
    """The destination's key, for a stage whose buckets are encrypted with the workspace's key (int, prd)."""


class Retention(_Section):
    """How long each bucket keeps an object after it was written, in days (None: until erased or deleted).
    The current version then becomes noncurrent and goes after noncurrent_version_expiration_days."""

    landing: Days | None = None
    raw: Days | None = None
    quarantine: Days | None = None
    staging: Days | None = None
    curated: Days | None = None
    artifacts: Days | None = None
    query_results: Days = 30
    """Athena's results: copies of what a query read, kept for a second look, never as a store of data."""


class StorageSettings(_Section):
    """Lifecycle of the data buckets."""

    noncurrent_version_expiration_days: Days
    raw_infrequent_access_after_days: Annotated[StrictInt, Field(ge=30, le=3650)]  # S3 minimum is 30
    raw_glacier_after_days: Annotated[StrictInt, Field(ge=30, le=3650)] | None = None
    abort_incomplete_multipart_upload_days: Days = 7
    access_log_expiration_days: Days = 90
    replication: Annotated[tuple[Replication, ...], Field(max_length=6)] = ()
    """Cross-region replication, per bucket (off by default: the destination is yours to create)."""
    retention_days: Retention = Retention()

    @model_validator(mode="after")
    def _raw_kept_past_its_transitions(self) -> StorageSettings:
        kept = self.retention_days.raw
        last = max(self.raw_infrequent_access_after_days, self.raw_glacier_after_days or 0)
        if kept is not None and kept <= last:
            raise ValueError(
                f"retention_days.raw ({kept}) must be longer than the raw transitions "
                f"(raw_infrequent_access_after_days, raw_glacier_after_days: {last}), or they never apply"
            )
        return self

    @model_validator(mode="after")
    def _one_replication_per_bucket(self) -> StorageSettings:
        buckets = [rule.bucket for rule in self.replication]
        if len(buckets) != len(set(buckets)):
            raise ValueError(f"replication names a bucket more than once: {sorted(buckets)}")
        return self

    @model_validator(mode="after")
    def _glacier_after_ia(self) -> StorageSettings:
        if self.raw_glacier_after_days is not None and (
            self.raw_glacier_after_days < self.raw_infrequent_access_after_days + 30
        ):
            raise ValueError(
                "raw_glacier_after_days must be at least 30 days after raw_infrequent_access_after_days "
                "(S3 keeps objects 30 days in STANDARD_IA before a further transition)"
            )
        return self


Schedule = Annotated[
    StrictStr,
    Field(pattern=r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\))$"),
]
"""An EventBridge schedule expression."""


GlueWorkerType = Literal["G.1X", "G.2X", "G.4X", "G.8X"]
"""The worker types of a Glue Spark ETL job, the one table of them (the stack passes the name as it is).
G.025X is left out: Glue runs it for streaming jobs only, and would refuse it at deploy."""
GlueWorkers = Annotated[StrictInt, Field(ge=2, le=299)]


MAX_DEDICATED_TABLES = 10
"""Each table's own jobs add to limits AWS enforces on one workspace: the promote function's environment (4 KB
in all), the state machine role's policy (6,144 characters once managed, int and prd), the failure rule's event
pattern (4,096 characters). Ten stay well within each (tests/infra/test_etl.py measures them)."""


class DedicatedJobs(_Section):
    """The size of a table's own Glue jobs (raw_to_staging and staging_to_curated); unset: the stage's."""

    glue_worker_type: GlueWorkerType | None = None
    glue_number_of_workers: GlueWorkers | None = None


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_RATE_MINUTES = {"minute": 1, "minutes": 1, "hour": 60, "hours": 60, "day": 1440, "days": 1440}


def rate_minutes(expression: str) -> int | None:
    """The minutes between runs of an EventBridge `rate(...)` expression; None for a cron expression."""
    match = _RATE.match(expression)
    return int(match[1]) * _RATE_MINUTES[match[2]] if match else None


SubnetId = Annotated[StrictStr, Field(pattern=r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")]
SecurityGroupId = Annotated[StrictStr, Field(pattern=r"^sg-([0-9a-f]{8}|[0-9a-f]{17})$")]
KmsKeyArn = Annotated[StrictStr, Field(pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$")]
MAX_DATABASE_SOURCES = 20
MAX_TABLE_NAME = 100


class DatabaseSource(_Section):
    """Where a table's database is reached from and how often it is read, per stage (what is read:
    sources/<dataset>/<table>.yaml; README: Tables from a database). The extractor is a Lambda function of its
    own, in the subnets named here."""

    schedule: Schedule | None = None
    """How often the extractor runs; unset: never on its own (invoke it by hand: README), the default, and what a
    feature stage should keep unless the branch needs fresh rows."""
    secret_arn: (
        Annotated[
            StrictStr, Field(pattern=r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+-[A-Za-z0-9]{6}$")
        ]
        | None
    ) = None
    """An existing secret in RDS's shape, its complete ARN (with the 6 characters Secrets Manager appends: IAM
    grants that ARN exactly); unset: the template creates one with a placeholder the extractor refuses until
    someone puts the database's details in it. An RDS-managed master secret (`rds!...`) holds only the user and
    password, and is the master user's: give the extractor a read-only user's secret with host and dbname."""
    secret_key_arn: KmsKeyArn | None = None
    """The customer-managed key that encrypts `secret_arn`'s secret, where it is not AWS's own (RDS-managed secrets
    use one): the extractor may decrypt with it through Secrets Manager only."""
    subnet_ids: list[SubnetId] = Field(default_factory=list, max_length=16)
    security_group_ids: list[SecurityGroupId] = Field(default_factory=list, max_length=5)
    """The extractor's network: subnets whose routes reach the database, and S3, DynamoDB and Secrets Manager
    (VPC endpoints or NAT); security groups the database admits. Neither: the extractor runs outside any VPC
    and reaches only a database with a public address (a feature branch's test database; refused in int and
    prd)."""
    timeout_minutes: Annotated[StrictInt, Field(ge=3, le=15)] = 15
    """A run stops between pages a minute before this (lambdas/extract/logic.py: STOP_MARGIN_MS), so at least 3
    (Lambda's limit is 15); the next run goes on."""
    memory_mib: Annotated[StrictInt, Field(ge=256, le=10240)] = 1024
    """Two pages of the source's chunk_rows rows fit in it (make benchmark-extract: ~48 MB at 50,000 rows)."""

    @model_validator(mode="after")
    def _runs_never_overlap(self) -> DatabaseSource:
        """A run may last timeout_minutes: a schedule that starts the next one sooner makes two read the same
        position (the second to commit stops, its pages duplicates)."""
        every = rate_minutes(self.schedule) if self.schedule else None
        if every is not None and every < self.timeout_minutes:
            raise ValueError(
                f"schedule {self.schedule} starts a run every {every} minutes, and a run may last timeout_minutes "
                f"({self.timeout_minutes}): schedule them at least that far apart, or lower timeout_minutes"
            )
        return self

    @model_validator(mode="after")
    def _network_whole(self) -> DatabaseSource:
        if bool(self.subnet_ids) != bool(self.security_group_ids):
            raise ValueError("subnet_ids and security_group_ids go together: a Lambda in a VPC needs both")
        if self.secret_key_arn and not self.secret_arn:
            raise ValueError("secret_key_arn applies to an existing secret (secret_arn) only")
        return self


class EtlSettings(_Section):
    """Glue jobs and the ingest schedule."""

    glue_worker_type: GlueWorkerType
    glue_number_of_workers: GlueWorkers
    dedicated_jobs: dict[
        Annotated[
            StrictStr,
            Field(pattern=r"^[A-Za-z0-9_-]+/[A-Za-z0-9_-]+$", max_length=DEDICATED_TABLE_MAX_LENGTH),
        ],
        DedicatedJobs,
    ] = Field(default_factory=dict, max_length=MAX_DEDICATED_TABLES)
    """Tables (`<dataset>/<table>`, as their contracts name them) whose size calls for Glue jobs of their own:
    their files and builds run there, on workers sized here, never shared with other tables' runs. Their files
    still take their turn among the pipeline's `max_running_files`. Every other table runs in the shared,
    generic jobs. infra/stacks/etl.py refuses a table that has no contract, or is check-only."""
    glue_timeout_minutes: Annotated[StrictInt, Field(ge=1, le=2880)]
    glue_max_retries: Annotated[StrictInt, Field(ge=0, le=10)] = 0
    max_running_files: Annotated[StrictInt, Field(ge=1, le=100)] = 3
    """Pipeline executions at once; the rest of a burst waits in the queue (lambdas/dispatch). Glue allows
    raw_to_staging twice this many runs at once (dispatch's two pollers may count the same free places)."""
    max_queue_wait_minutes: Annotated[StrictInt, Field(ge=5, le=10080)] = 60
    """A raw file waiting longer than this to start its pipeline alarms (dispatch's FileWaitSeconds), and a
    passed batch waiting longer than this for a curated build (promote's PromotionWaitSeconds)."""
    ingest_schedule: Schedule
    promotion_schedule: Schedule = "rate(15 minutes)"
    """How often the promote function looks for tables with passed batches and starts their builds."""
    database_sources: dict[
        Annotated[
            StrictStr, Field(pattern=r"^[a-z][a-z0-9_]*/[a-z][a-z0-9_]*$", max_length=DEDICATED_TABLE_MAX_LENGTH)
        ],
        DatabaseSource,
    ] = Field(default_factory=dict, max_length=MAX_DATABASE_SOURCES)
    """Tables read from an operational database in this stage (`<dataset>/<table>`, each with a source file,
    sources/<dataset>/<table>.yaml): an extractor each (infra/constructs/extractor.py). infra/stacks/etl.py
    refuses a table without a source file."""


class TrainingSettings(_Section):
    """Training in AWS, per stage (infra/constructs/training_pipeline.py; README: Training in AWS): a SageMaker
    training job of the training image (training/Dockerfile) runs `python -m training.train` on the model's
    curated table, started by a state machine that lets one run at a time through. Off unless a trigger is set,
    the default: a feature stage trains by hand (`make train`) unless the branch is about training."""

    after_promotion: StrictBool = False
    """Train when a new curated build of the model's table becomes current (its _CURRENT.json is written)."""
    schedule: Schedule | None = None
    """Train on a schedule as well (or instead); unset: no schedule."""
    require_approval: StrictBool = False
    """A better version becomes `challenger`, and a reviewer moves `champion` (the model-alias workflow in the
    stage's GitHub environment); prd's choice. Off: a better version becomes `champion` at once."""
    min_new_rows: Annotated[StrictInt, Field(ge=0, le=1_000_000_000)] = 0
    """A run trains only when the table grew by at least this many rows since the last training run; else it
    ends saying why, and the champion stays."""
    min_improvement: Annotated[float, Field(ge=0, le=1_000_000)] = 0.0
    """How much lower the new version's held-out RMSE must be than the champion's, both scored on the same rows."""
    instance_type: Annotated[StrictStr, Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")] = "ml.m5.large"
    volume_gb: Annotated[StrictInt, Field(ge=1, le=512)] = 10
    spot: StrictBool = False
    """Managed spot capacity: cheaper, and a run may wait for it (up to max_runtime_minutes again) or be
    interrupted; a run that ends without a result leaves the champion alone and alarms."""
    max_runtime_minutes: Annotated[StrictInt, Field(ge=5, le=1440)] = 60
    """SageMaker stops a run that takes longer (and the run fails and alarms): the cap on a run's cost."""
    champion_max_age_days: Annotated[StrictInt, Field(ge=1, le=365)] | None = None
    """Alarm when a training run finds the champion older than this while the table has newer data (its build is
    newer than the champion's); unset: no such alarm."""

    @property
    def enabled(self) -> bool:
        """A trigger is set: the stage trains in AWS."""
        return self.after_promotion or self.schedule is not None

    @model_validator(mode="after")
    def _settings_need_a_trigger(self) -> TrainingSettings:
        """Knobs without a trigger configure nothing: most likely a trigger was forgotten."""
        if not self.enabled and self.champion_max_age_days is not None:
            raise ValueError(
                "champion_max_age_days is checked by the training runs: set after_promotion or a schedule, or remove it"
            )
        return self


class MlSettings(_Section):
    """The notebook, MLflow and training in AWS."""

    notebook_instance_type: Annotated[StrictStr, Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")]
    notebook_volume_gb: Annotated[StrictInt, Field(ge=5, le=16384)]
    notebook_idle_stop_minutes: Annotated[StrictInt, Field(ge=5, le=1440)]
    notebook_direct_internet_access: StrictBool
    # AWS's IDs: 8 hex digits (older) or 17; CloudFormation refuses any other length at deploy
    notebook_subnet_id: Annotated[StrictStr, Field(pattern=r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")] | None = None
    notebook_security_group_id: Annotated[StrictStr, Field(pattern=r"^sg-([0-9a-f]{8}|[0-9a-f]{17})$")] | None = None
    mlflow: Literal["app", "tracking-server", "shared"] = "app"
    mlflow_tracking_server_size: Literal["Small", "Medium", "Large"] = "Small"
    shared_mlflow_arn: (
        Annotated[
            StrictStr, Field(pattern=r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:mlflow-(app|tracking-server)/.+$")
        ]
        | None
    ) = None
    shared_mlflow_artifact_store: (
        Annotated[StrictStr, Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^*?]*)?$")] | None
    ) = None
    """The shared MLflow's artifact store (its ArtifactStoreUri): the model files the service and the
    notebook read live there, not in this workspace's artifacts bucket."""
    training: TrainingSettings = TrainingSettings()

    @model_validator(mode="after")
    def _shared_needs_arn(self) -> MlSettings:
        if (self.mlflow == "shared") != (self.shared_mlflow_arn is not None):
            raise ValueError("set shared_mlflow_arn exactly when mlflow is 'shared'")
        if (self.mlflow == "shared") != (self.shared_mlflow_artifact_store is not None):
            raise ValueError(
                "set shared_mlflow_artifact_store (the shared MLflow's s3:// artifact store, where "
                "its model files are) exactly when mlflow is 'shared'"
            )
        network = (self.notebook_subnet_id, self.notebook_security_group_id)
        if not self.notebook_direct_internet_access and None in network:
            raise ValueError(
                "a notebook without direct internet access needs notebook_subnet_id and "
                "notebook_security_group_id (a subnet with a route to S3, SageMaker and PyPI)"
            )
        if self.notebook_direct_internet_access and network != (None, None):
            raise ValueError("notebook_subnet_id/notebook_security_group_id apply only without direct internet access")
        return self


PUBLIC_ENDPOINT_SETTINGS = ("certificate_arn", "domain_name", "jwt_issuer", "jwt_jwks_endpoint", "jwt_claims")
"""What a public endpoint needs (service.endpoint: public). The certificate and its name may serve any
endpoint; the rest mean nothing without a public one (PUBLIC_ENDPOINT_ONLY)."""
PUBLIC_ENDPOINT_ONLY = PUBLIC_ENDPOINT_SETTINGS[2:]


def _listed(names: tuple[str, ...]) -> str:
    return f"{', '.join(names[:-1])} and {names[-1]}"


class JwtClaim(_Section):
    """One claim a public endpoint's tokens must carry, with the values it accepts (any one of them)."""

    name: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_:.-]{1,64}$")]
    values: Annotated[
        tuple[Annotated[StrictStr, Field(min_length=1, max_length=256)], ...], Field(min_length=1, max_length=10)
    ]

    @model_validator(mode="after")
    def _not_a_validated_claim(self) -> JwtClaim:
        if self.name in ("exp", "iss", "nbf", "iat"):
            raise ValueError(f"jwt_claims: {self.name} is validated by the load balancer already (iss is jwt_issuer)")
        return self

    @property
    def format(self) -> str:
        """How the load balancer reads the claim: OAuth's scope (scp) is a space-separated list."""
        return "space-separated-values" if self.name in ("scope", "scp") else "single-string"


LAMBDA_MAX_BODY_BYTES = 4_500_000
"""A serverless service's largest request body: Lambda refuses a synchronous request whose event is over 6 MB
(6,291,456 bytes), before the function runs; the body sits in the event as an escaped JSON string (this
contract's records grow about 7 %), a binary one base64-encoded (a third more)."""


class ServiceSettings(_Section):
    """The model service: its image on ECS Fargate behind a load balancer, or on Lambda behind a function URL."""

    mode: Literal["fargate", "serverless"] = "fargate"
    """fargate: tasks that run all the time behind a load balancer (int and prd). serverless: the same image
    on Lambda behind a function URL, with nothing running between requests and nothing billed at rest
    (feature stages, by the shipped config); its endpoint is `iam` (README: "Serverless serving")."""
    lambda_memory_mib: Annotated[StrictInt, Field(ge=1024, le=10240)] = 2048
    """Serverless: the function's memory, which also sets its CPU share (about 1.2 vCPU at 2048 MB); the
    image's libraries and a model take about 400 MB."""

    cpu: Literal[256, 512, 1024, 2048, 4096]
    memory_mib: StrictInt
    desired_count: Annotated[StrictInt, Field(ge=0, le=100)]
    min_capacity: Annotated[StrictInt, Field(ge=0, le=100)]
    max_capacity: Annotated[StrictInt, Field(ge=1, le=100)]
    max_batch_size: Annotated[StrictInt, Field(ge=1, le=10000)]
    max_body_bytes: Annotated[StrictInt, Field(ge=1 << 10, le=16 << 20)] = 1 << 20
    """A request body over this is a 413, answered before it is parsed (the task's memory stays bounded)."""
    model_refresh_seconds: Annotated[StrictInt, Field(ge=1, le=3600)] = 60
    """How often the service checks the registry's champion alias; a move is served within this time."""
    drift_window_records: Annotated[StrictInt, Field(ge=10, le=1_000_000)] = 1000
    """Records per drift report: the service compares each such window's feature and prediction means with the
    model's training profile (pipeline/drift.py), in standard deviations of the training data."""
    drift_max_distance: Annotated[float, Field(gt=0, le=100)] = 1.0
    """The drift alarm fires when a window's largest feature shift, or its predictions' shift, exceeds this many
    training standard deviations (a whole window's mean: 1 is far)."""
    container_insights: StrictBool = True
    """CloudWatch Container Insights on the service's cluster: per-task CPU, memory and network metrics, which
    bill per metric while a task runs (about $14/month for one service: `make cost`). Off in feature stages by
    the shipped config; the service's own logs, load-balancer metrics and alarms stay."""
    nat_gateways: Annotated[StrictInt, Field(ge=0, le=3)]
    certificate_arn: (
        Annotated[StrictStr, Field(pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/.+$")] | None
    ) = None
    endpoint: Literal["internal", "public", "open", "iam"] = "internal"
    """Who reaches the service. internal: a load balancer inside the VPC, reachable from the VPC and
    allowed_cidrs only. public: the internet, over HTTPS only, behind a WAF web ACL, every request but /health
    carrying a JWT the load balancer validates (PUBLIC_ENDPOINT_SETTINGS). open: the internet over plain HTTP
    with no authentication, an explicit choice that only a feature stage may make. iam (serverless mode, and
    only it): the function URL, over HTTPS, for requests signed (SigV4) by an IAM principal allowed
    lambda:InvokeFunctionUrl and lambda:InvokeFunction on the function."""
    jwt_issuer: HttpsUrl | None = None
    """The `iss` of the tokens a public endpoint accepts (e.g. a Cognito user pool's URL, an Entra ID tenant)."""
    jwt_jwks_endpoint: HttpsUrl | None = None
    """Where the load balancer fetches the issuer's signing keys (publicly reachable; RS256, at most 10 keys)."""
    jwt_claims: Annotated[tuple[JwtClaim, ...], Field(max_length=10)] = ()
    """Claims a token must carry besides its issuer, e.g. `{name: aud, values: [api://model-service]}` (Entra
    ID) or `{name: scope, values: [model-service/predict]}` (Cognito): without one, any token of the issuer
    (another application's) would pass. A public endpoint needs at least one."""
    domain_name: (
        Annotated[StrictStr, Field(pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", max_length=253)]
        | None
    ) = None
    """The name clients call the endpoint by over HTTPS, which its certificate covers (point it at the
    `ServiceLoadBalancer` output: a CNAME or an alias record, in a private hosted zone for an internal endpoint);
    the load balancer's own name matches no certificate."""
    vpc_cidr: Annotated[StrictStr, Field(pattern=r"^10\.(\d{1,3})\.0\.0/16$")] = "10.0.0.0/16"
    """The service's VPC: give each stage and any network it is peered with a range of its own."""
    allowed_cidrs: Annotated[
        tuple[Annotated[StrictStr, Field(pattern=r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")], ...], Field(max_length=20)
    ] = ()
    """An internal endpoint admits its VPC and these ranges (peered or connected networks that call it)."""
    waf_rate_limit: Annotated[StrictInt, Field(ge=10, le=2_000_000_000)] = 1000
    """A public endpoint blocks a client address above this many requests in 5 minutes."""
    model_uri: (
        Annotated[
            StrictStr, Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^/*?$\s][^*?$\s]*$", max_length=1024)
        ]
        | None
    ) = Field(None, description="s3://<bucket>/<path>: an MLflow model's directory (the one holding its MLmodel file)")
    """A fixed model to serve instead of following the registry's champion alias: what a stage without MLflow
    serves (components.mlflow off; with MLflow the service follows the champion). The service loads it at start
    and retries a failed load with a back-off; its tasks may read that path only. A model re-uploaded to the
    same path is served from the next deploy that changes the service, not before (its version is `fixed`)."""
    model_kms_key_arn: (
        Annotated[StrictStr, Field(pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$")] | None
    ) = None
    """The customer-managed KMS key the model_uri bucket encrypts with (SSE-KMS), which the tasks may then
    decrypt through S3 only; the key's own policy must allow them too. None: SSE-S3 or the aws/s3 key."""

    @model_validator(mode="after")
    def _public_needs_tls_and_auth(self) -> ServiceSettings:
        given = {key: getattr(self, key) or None for key in PUBLIC_ENDPOINT_SETTINGS}  # () claims: none given
        if self.endpoint == "public":
            missing = [key for key, value in given.items() if value is None]
            if missing:
                raise ValueError(
                    f"endpoint 'public' needs {', '.join(missing)}: a public endpoint serves HTTPS "
                    "only, by a name its certificate covers, and validates on every request a JWT "
                    "of the issuer that carries this service's claims (or choose endpoint: internal)"
                )
        elif any(given[key] is not None for key in PUBLIC_ENDPOINT_ONLY):
            raise ValueError(f"{_listed(PUBLIC_ENDPOINT_ONLY)} apply only to endpoint 'public', not '{self.endpoint}'")
        if self.allowed_cidrs and self.endpoint != "internal":
            raise ValueError(f"allowed_cidrs apply only to endpoint 'internal', not '{self.endpoint}'")
        return self

    @model_validator(mode="after")
    def _serverless_takes_requests_signed(self) -> ServiceSettings:
        if (self.mode == "serverless") != (self.endpoint == "iam"):
            raise ValueError(
                f"endpoint '{self.endpoint}' with mode '{self.mode}': a serverless service is reached through its "
                "function URL by IAM-signed requests (endpoint: iam), and only it is (fargate: internal, public "
                "or open)"
            )
        if self.mode == "serverless" and self.max_body_bytes > LAMBDA_MAX_BODY_BYTES:
            raise ValueError(
                f"max_body_bytes {self.max_body_bytes} is over what Lambda takes in a request "
                f"({LAMBDA_MAX_BODY_BYTES}, with the event around it): lower it, or use mode: fargate"
            )
        if self.mode == "serverless" and (self.certificate_arn or self.domain_name):
            raise ValueError(
                "certificate_arn and domain_name are the load balancer's (mode: fargate): a function URL "
                "serves HTTPS under its own name"
            )
        if self.mode == "serverless" and self.nat_gateways > 0:
            raise ValueError("nat_gateways are for the tasks' VPC (mode: fargate): a serverless service has none")
        return self

    @model_validator(mode="after")
    def _fargate_combination(self) -> ServiceSettings:
        allowed = FARGATE_CPU_MEMORY_MIB[self.cpu]
        if self.memory_mib not in allowed:
            raise ValueError(
                f"memory_mib {self.memory_mib} is not a Fargate size for cpu {self.cpu}: "
                f"use one of {', '.join(map(str, allowed))}"
            )
        if not self.min_capacity <= self.desired_count <= self.max_capacity:
            raise ValueError("need min_capacity <= desired_count <= max_capacity")
        return self


class MonitoringSettings(_Section):
    alarm_emails: Annotated[tuple[Email, ...], Field(min_length=1, max_length=20)]
    log_retention_days: Annotated[StrictInt, _one_of(LOG_RETENTION_DAYS)]
    alarm_topic_key: StrictBool = True
    """The alarm topic encrypted with a customer-managed key of its own ($1/month): CloudWatch alarms and
    EventBridge cannot publish to a topic under the AWS-managed SNS key, so the alternative is no encryption at
    rest of the topic (its messages are alarm names, states and metrics, held until delivered). int and prd must
    keep it; feature stages leave it off, so that their one customer-managed key is the notebook volume's."""


class Components(_Section):
    """What a stage deploys besides its storage and alarm topic (always there). A component that is off is not
    synthesised: its stack is not in the app, so `cdk deploy` neither creates nor updates it (README: Switch
    components). All on by default."""

    etl: StrictBool = True
    """Ingest, validation, the Glue jobs, the gate and promotion to curated (the ETL stack)."""
    mlflow: StrictBool = True
    """The workspace's MLflow (or the shared one of `ml.mlflow: shared`): tracking and the model registry."""
    notebook: StrictBool = True
    """The SageMaker notebook, wired to MLflow (it needs `mlflow`)."""
    model_service: StrictBool = True
    """The model service. It follows the registry's champion alias (it needs `mlflow`), or serves the fixed
    model of `service.model_uri`."""

    @property
    def stacks(self) -> tuple[Component, ...]:
        """The workspace's stacks, in deployment order: storage and monitoring always, the rest as switched."""
        switched = {
            Component.ETL: self.etl,
            Component.ML: self.mlflow,  # the notebook lives beside MLflow, and needs it
            Component.MODEL_SERVICE: self.model_service,
        }
        return tuple(c for c in Component if switched.get(c, True))


OidcProviderChoice = Annotated[
    Literal["ensure", "import", "create"],
    Field(
        description="'ensure' (default): use the account's GitHub OIDC provider, creating it first if there is none "
        "(and never deleting it); 'import': the account has it, use it; 'create': the stack owns it (README: "
        "one-time set-up)"
    ),
]


class StageSettings(_Section):
    """Where one stage deploys and how big it is."""

    account: AccountId
    region: Region
    availability_zones: Annotated[
        tuple[Annotated[StrictStr, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$")], ...],
        Field(
            min_length=2,
            max_length=3,
            description="2-3 zones of the region, e.g. [eu-west-1a, eu-west-1b] (given here: no look-ups at synth)",
        ),
    ]
    storage: StorageSettings
    etl: EtlSettings
    ml: MlSettings
    service: ServiceSettings
    monitoring: MonitoringSettings
    components: Components = Components()
    # An account holds GitHub's provider once: creating it where it exists fails the stack ("already
    # exists"). The default ensures it: created where there is none, used where there is one, never deleted.
    github_oidc_provider: OidcProviderChoice = "ensure"

    @model_validator(mode="after")
    def _zones_in_region(self) -> StageSettings:
        strangers = [z for z in self.availability_zones if not z.startswith(self.region)]
        if strangers:
            raise ValueError(f"availability_zones {strangers} are not in region {self.region}")
        return self

    @model_validator(mode="after")
    def _components_that_work_together(self) -> StageSettings:
        on = self.components
        if on.notebook and not on.mlflow:
            raise ValueError(
                "components.notebook needs components.mlflow: the notebook is wired to MLflow (its tracking URI "
                "and model registry); switch mlflow on, or the notebook off"
            )
        if on.model_service and not on.mlflow and self.service.model_uri is None:
            raise ValueError(
                "components.model_service needs a model to serve: switch components.mlflow on (the service follows "
                "the registry's champion alias), or set service.model_uri to a fixed MLflow model "
                "(s3://<bucket>/<path to the model's directory>), or switch the model service off"
            )
        if self.service.model_uri is not None and (on.mlflow or not on.model_service):
            raise ValueError(
                "service.model_uri applies only to a model service without MLflow (components.model_service on, "
                "components.mlflow off): with MLflow the service follows the registry's champion; remove "
                "model_uri (a stage inherits it from defaults: set it to null there) or switch mlflow off"
            )
        if self.ml.training.enabled and not on.mlflow:
            raise ValueError(
                "ml.training needs components.mlflow: a training run logs to MLflow and moves its aliases; switch "
                "mlflow on, or unset ml.training.after_promotion and ml.training.schedule"
            )
        if self.service.model_kms_key_arn is not None and self.service.model_uri is None:
            raise ValueError("service.model_kms_key_arn is the key of service.model_uri's bucket: set model_uri too")
        return self


class Stages(_Section):
    feature: StageSettings
    int: StageSettings
    prd: StageSettings

    @model_validator(mode="after")
    def _persistent_stages_are_hardened(self) -> Stages:
        """int and prd hold patient data (HIPAA Security and NIST 800-53 packs run on them): the notebook
        reaches S3, SageMaker and MLflow through its VPC, never the internet directly; the service's tasks
        run in private subnets (no public address); its load balancer serves HTTPS only, and is never open."""
        for stage in Stage:
            settings: StageSettings = getattr(self, stage.value)
            if not stage.is_persistent:
                continue
            if not settings.monitoring.alarm_topic_key:
                raise ValueError(
                    f"stages.{stage.value}.monitoring.alarm_topic_key must be true: the {stage.value} alarm topic "
                    "is encrypted with its own key (the HIPAA Security and NIST 800-53 packs require it)"
                )
            if settings.components.notebook and settings.ml.notebook_direct_internet_access:
                raise ValueError(
                    f"stages.{stage.value}.ml.notebook_direct_internet_access must be false: the "
                    f"{stage.value} notebook reads curated data and gets no direct internet access; "
                    "set it to false with notebook_subnet_id and notebook_security_group_id (a private "
                    "subnet whose routes or VPC endpoints reach S3, SageMaker and MLflow)"
                )
            outside = [name for name, source in settings.etl.database_sources.items() if not source.subnet_ids]
            if settings.components.etl and outside:
                raise ValueError(
                    f"stages.{stage.value}.etl.database_sources.{outside[0]} needs subnet_ids and security_group_ids: "
                    f"the {stage.value} extractor reaches its database inside your network, never over the internet"
                )
            if not settings.components.model_service:  # no service: nothing to serve or reach
                continue
            if settings.service.mode != "fargate":
                raise ValueError(
                    f"stages.{stage.value}.service.mode must be 'fargate': the {stage.value} service runs in "
                    "private subnets behind an internal or authenticated load balancer (serverless: feature stages)"
                )
            if settings.service.endpoint == "open":  # models of patient data, never to anyone without a token
                raise ValueError(
                    f"stages.{stage.value}.service.endpoint must not be 'open' (plain HTTP, no "
                    "authentication): use 'internal' (reachable from the VPC only) or 'public' "
                    f"(HTTPS, WAF and JWT: set {_listed(PUBLIC_ENDPOINT_SETTINGS)})"
                )
            if settings.service.nat_gateways < 1:
                raise ValueError(
                    f"stages.{stage.value}.service.nat_gateways must be at least 1: the {stage.value} "
                    "service's tasks run in private subnets, with no public address, and reach ECR, "
                    "MLflow and S3 through a NAT gateway"
                )
            if settings.service.certificate_arn is None or settings.service.domain_name is None:
                raise ValueError(
                    f"stages.{stage.value}.service needs certificate_arn and domain_name: the "
                    f"{stage.value} load balancer serves HTTPS only (HTTP redirects), internal or "
                    "public, by a name the certificate covers"
                )
        return self

    @model_validator(mode="after")
    def _one_oidc_provider_per_account(self) -> Stages:
        """Two stages in one account cannot both create GitHub's provider: the second stack would fail."""
        creators: dict[str, str] = {}
        for name in ("feature", "int", "prd"):
            settings: StageSettings = getattr(self, name)
            if settings.github_oidc_provider != "create":
                continue
            if settings.account in creators:
                raise ValueError(
                    f"{creators[settings.account]} and {name} share account {settings.account} and "
                    "both set github_oidc_provider: create; an account holds the provider once, so "
                    "create it in one of them and set github_oidc_provider: import (or ensure) in the "
                    "other"
                )
            creators[settings.account] = name
        return self


TicketKey = Annotated[StrictStr, Field(pattern=r"^[A-Z][A-Z0-9]{1,19}$")]
Abbreviation = Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9]{0,7}$")]
TagValue = Annotated[StrictStr, Field(pattern=r"^[\w .:/=+\-@]*$", max_length=256)]


class ProjectConfig(_Section):
    """The whole file."""

    project: Annotated[
        StrictStr,
        Field(
            pattern=rf"^[a-z][a-z0-9]{{1,{PROJECT_NAME_MAX_LENGTH - 1}}}$",
            description=f"2-{PROJECT_NAME_MAX_LENGTH} lowercase letters/digits",
        ),
    ]
    ticket_keys: dict[TicketKey, Abbreviation] = Field(default_factory=dict)
    branch_prefixes: tuple[Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9-]*$")], ...] = ()
    github_repository: Annotated[
        StrictStr,
        Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", description="owner/name of the GitHub repository"),
    ]
    feature_workspace_ttl_days: Annotated[StrictInt, Field(ge=1, le=365)] = 14
    tags: dict[Annotated[StrictStr, Field(pattern=r"^[a-zA-Z][\w.:/=+\-@]*$", max_length=128)], TagValue] = Field(
        default_factory=dict
    )
    stages: Stages

    def stack_names(self, stage: Stage, workspace: str) -> list[str]:
        """The names of the stacks a workspace of `stage` has, in deployment order (its components)."""
        return [stack_name(self.project, workspace, c) for c in self.stage(stage).components.stacks]

    def stage(self, stage: Stage) -> StageSettings:
        match stage:
            case Stage.FEATURE:
                return self.stages.feature
            case Stage.INT:
                return self.stages.int
            case Stage.PRD:
                return self.stages.prd

    @property
    def naming_rules(self) -> NamingRules:
        return NamingRules(ticket_keys=tuple(sorted(self.ticket_keys.items())), branch_prefixes=self.branch_prefixes)


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _apply_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """`defaults:` is merged under every stage, so stages list only what differs."""
    defaults = raw.pop("defaults", None) or {}
    stages = raw.get("stages")
    if isinstance(defaults, Mapping) and isinstance(stages, Mapping):
        raw["stages"] = {
            name: _deep_merge(defaults, own) if isinstance(own, Mapping) else own for name, own in stages.items()
        }
    return raw


def _has_path(data: Any, path: tuple[Any, ...]) -> bool:
    for key in path:
        if not isinstance(data, Mapping | list):
            return False
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return False
    return True


def _walk(path: tuple[Any, ...]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The config model that `path` leads into (None past a plain field) and the field it ends on."""
    model: type[BaseModel] | None = ProjectConfig
    field = None
    for key in path:
        field = model.model_fields.get(str(key)) if model is not None else None
        if field is None:
            return None, None
        annotation = field.annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return model, field


def _allowed_keys(path: tuple[Any, ...]) -> list[str]:
    """The keys allowed where `path` leads (for an unknown-key error)."""
    model, _ = _walk(path)
    return list(model.model_fields) if model is not None else []


def _describe(error: Mapping[str, Any], raw: Mapping[str, Any]) -> str:
    path = tuple(error["loc"])
    kind = error["type"]
    where = ".".join(map(str, path)) or "(top level)"
    inherited = (
        len(path) >= 2
        and path[0] == "stages"
        and not _has_path(raw.get("stages", {}), path[1:])
        and _has_path(raw.get("defaults", {}), path[2:])
    )
    if inherited:
        where += f" (inherited from defaults.{'.'.join(map(str, path[2:]))})"
    if kind == "missing":
        help_text = _field_help(path)
        return f"{where}: missing; add this key" + (f" ({help_text})" if help_text else "")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(path[:-1])
        allowed_text = f"allowed keys here: {', '.join(allowed)}" if allowed else "remove it"
        return f"{where}: unknown key; {allowed_text}"
    value = error.get("input")
    message = str(error["msg"]).removeprefix("Value error, ")
    if isinstance(value, Mapping):  # a rule across a section's keys: the message names them, not the section
        return f"{where}: {message}"
    help_text = _field_help(path)
    return f"{where}: got {value!r} ({type(value).__name__}): {message}" + (f" ({help_text})" if help_text else "")


def _field_help(path: tuple[Any, ...]) -> str:
    _, field = _walk(path)
    if field is None:
        return ""
    if field.description:
        return field.description
    return next((meta.description for meta in field.metadata if getattr(meta, "description", None)), "")


def parse_config(raw: Any, source: str = "<config>") -> ProjectConfig:
    """Validate already-parsed YAML; `source` names the file in errors."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    original = dict(raw)
    try:
        return ProjectConfig.model_validate(_apply_defaults(dict(raw)))
    except ValidationError as exc:
        problems = "\n".join(f"  - {_describe(e, original)}" for e in exc.errors())
        raise ConfigError(f"{source}: {exc.error_count()} invalid setting(s):\n{problems}") from None


def load_config(path: Path | str = DEFAULT_CONFIG_PATH) -> ProjectConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(raw, source=str(path))
