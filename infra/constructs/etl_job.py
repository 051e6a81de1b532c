"""A Glue (PySpark) job of the pipeline: its script, arguments, grants and size in, the job and its role out,
logging to the stack's Glue log group; the stack's failure rule lists every EtlJob's name.

The job is the construct's `Default` child, which CDK leaves out of logical IDs: a job that was created
directly in the stack keeps its logical ID inside an EtlJob. It must: its name is explicit, and a new
logical ID would make CloudFormation create a second job of that name before deleting the first, which
Glue refuses, so the deploy of every existing workspace would fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Annotations, Duration
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.checkov import skip_checkov
from infra.construct_tree import cfn_resource
from infra.constructs.bundling import REPO_ROOT
from infra.constructs.data_bucket import Access, DataBucket
from infra.nag import acknowledge, acknowledge_asset_reads
from infra.runtimes import GLUE_VERSION

GLUE_FAILURE_STATES = ("FAILED", "TIMEOUT", "STOPPED")
"""The end states of a run that alarm (the stack's one rule over every EtlJob)."""


@dataclass(frozen=True)
class JobSize:
    """What a job runs on and for how long (config etl, or a table's etl.dedicated_jobs)."""

    worker_type: str
    """A Glue worker type's name (infra/config.py GlueWorkerType: the one list of them), `G.1X` for CDK's
    `WorkerType.G_1X`."""
    workers: int
    timeout_minutes: int
    max_retries: int
    concurrent_runs: int


@dataclass(frozen=True)
class JobShared:
    """What every job of the stack shares: the library zip (glue/lib and pipeline), the log group."""

    library: glue.Code
    logs: logs.ILogGroup


class EtlJob(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        script: str,
        description: str,
        arguments: Mapping[str, str],
        grants: tuple[tuple[DataBucket, Access], ...],
        size: JobSize,
        shared: JobShared,
    ) -> None:
        """`script`: the job's folder under glue/ (its entry is `job.py`); `arguments`: the job's default
        arguments by flag (pipeline/job_arguments.py), bookmarks always off."""
        super().__init__(scope, construct_id)
        self.script = script
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("glue.amazonaws.com"), description=f"Glue job {script}"
        )
        for bucket, access in grants:
            self.role.add_managed_policy(bucket.access_policy(access))
        shared.logs.grant_write(self.role)
        self.job = glue.PySparkEtlJob(
            self,
            "Default",  # the logical ID a job created directly in the stack had (module docstring)
            job_name=name,
            description=description,
            role=self.role,
            script=glue.Code.from_asset(str(REPO_ROOT / "glue" / script / "job.py")),
            extra_python_files=[shared.library],
            glue_version=GLUE_VERSION,
            worker_configuration=glue.WorkerConfiguration(
                worker_type=glue.WorkerType[size.worker_type.replace(".", "_")], number_of_workers=size.workers
            ),
            timeout=Duration.minutes(size.timeout_minutes),
            max_retries=size.max_retries,
            max_concurrent_runs=size.concurrent_runs,
            continuous_logging=glue.ContinuousLoggingProps(enabled=True, log_group=shared.logs),
            enable_metrics=True,
            default_arguments={"--job-bookmark-option": "job-bookmark-disable", **arguments},
        )
        self.job_name = self.job.job_name  # a reference: what names the job depends on it
        self.name = name
        self._acknowledge()

    def _acknowledge(self) -> None:
        reason_logs = (
            "Glue writes continuous logs to this stack's own log group, encrypted at rest by CloudWatch "
            "Logs' service key; a security configuration with a customer key would make Glue write to a "
            "log group named after that configuration, outside the stack, left behind by a destroy."
        )
        resource = cfn_resource(self.job)
        acknowledge(resource, "GL1", reason=reason_logs)
        skip_checkov(resource, CKV_AWS_195=reason_logs)
        Annotations.of(self.job).acknowledge_warning(
            "@aws-cdk/aws-glue-alpha:unencryptedContinuousLogging", reason_logs
        )
        acknowledge(
            resource,
            "GL3",
            reason="Job bookmarks are disabled (--job-bookmark-option job-bookmark-disable): each run processes "
            "what its arguments name (one file, one table), so there is no bookmark data to encrypt.",
        )
        acknowledge_asset_reads(
            self.role, "the job's script and its library zip: Glue downloads both at the start of each run"
        )
