"""Every name the platform builds from a project and a workspace, in one place.

The longest workspace name is not a guess: it is computed from this table, so adding an
explicitly named resource with a tighter AWS limit shortens workspaces everywhere at once
(and the property tests prove that every derived name still fits).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

TAG_PROJECT = "project"
TAG_STAGE = "stage"
TAG_WORKSPACE = "workspace"
TAG_BRANCH = "branch"
TAG_OWNER = "owner"
TAG_RELEASE = "release"
"""Tags on every stack and resource; the lifecycle workflows find a workspace's stacks by them. `branch` is
for people (AWS tag values allow few characters, so two names can give one value); `owner` is exact: the
SHA-256 of the full ref that deployed the workspace (infra.workspace.owner_tag_value), what guard, destroy
and the janitor compare. `release`: on prd stacks only, the X.Y.Z they were deployed from
(infra/releases.py keeps prd from going backwards)."""

PROJECT_NAME_MAX_LENGTH = 12
"""Projects are prefixes of every name; 12 characters keep room for the workspace."""


class Component(StrEnum):
    """The stacks of one workspace, in deployment order."""

    STORAGE = "storage"
    MONITORING = "monitoring"
    ETL = "etl"
    ML = "ml"
    MODEL_SERVICE = "model-service"


@dataclass(frozen=True)
class DerivedName:
    """A name built from `{project}` and `{workspace}`, and the AWS limit it must fit."""

    what: str
    template: str
    limit: int

    def render(self, project: str, workspace: str) -> str:
        return self.template.format(project=project, workspace=workspace)

    def fixed_length(self) -> int:
        return len(self.render("", ""))


def stack_name(project: str, workspace: str, component: Component) -> str:
    return f"{project}-{workspace}-{component.value}"


EXPLICIT_NAMES: dict[str, tuple[str, int]] = {
    "notebook": ("SageMaker notebook instance and its lifecycle configuration", 63),
    "mlflow": ("SageMaker MLflow app / tracking server", 256),
    "pipeline": ("Step Functions state machine", 80),
    "raw-to-staging": ("Glue job", 255),
    "staging-to-curated": ("Glue job", 255),
    "queries": ("Athena workgroup", 128),
    "dashboard": ("CloudWatch dashboard", 255),
    "service-acl": ("WAF web ACL", 128),
    "service": ("Lambda function of the serverless model service", 64),
    "training": ("Step Functions state machine of training in AWS", 80),
}
"""Every `<project>-<workspace>-<suffix>` name a stack gives a resource: suffix -> (what, AWS's limit). The
longest workspace is computed from it (DERIVED_NAMES), so a name that is not here cannot be made."""


def resource_name(project: str, workspace: str, suffix: str) -> str:
    """An explicit physical name, for the few services that need one (console-visible names); only a suffix
    of EXPLICIT_NAMES, whose limit the longest workspace is computed from."""
    if suffix not in EXPLICIT_NAMES:
        raise ValueError(
            f"no explicit name '{suffix}' in infra/naming.py EXPLICIT_NAMES: add it there with its AWS limit, "
            "so that every workspace name keeps it within the limit"
        )
    return f"{project}-{workspace}-{suffix}"


DEDICATED_TABLE_MAX_LENGTH = 64
"""The longest `<dataset>/<table>` that may have Glue jobs of its own (config etl.dedicated_jobs): the table is
part of their names (table_job_name)."""
TABLE_JOBS = ("raw-to-staging", "staging-to-curated")
"""The explicit names of the pipeline's generic Glue jobs, which a table may have its own copies of."""


def table_job_name(project: str, workspace: str, job: str, table: str) -> str:
    """A table's own copy of generic Glue job `job` (config etl.dedicated_jobs): the generic job's name, a dot
    and the table's (`clinic/appointments` -> `...-raw-to-staging-clinic.appointments`). Dataset and table names
    hold no dot, so two tables never share a name."""
    if job not in TABLE_JOBS:
        raise ValueError(f"no generic Glue job '{job}' a table may have its own copy of: one of {TABLE_JOBS}")
    if len(table) > DEDICATED_TABLE_MAX_LENGTH:
        raise ValueError(f"table {table!r} is longer than {DEDICATED_TABLE_MAX_LENGTH} characters for jobs of its own")
    return f"{resource_name(project, workspace, job)}-{table.replace('/', '.')}"


def tracking_uri_parameter(project: str, workspace: str) -> str:
    """The SSM parameter holding the workspace's MLflow tracking URI (its ARN), for notebooks and training."""
    return f"/{project}/{workspace}/mlflow/tracking-uri"


def deploy_role_name(project: str, stage: str) -> str:
    """The role GitHub Actions assumes (OIDC) to deploy a stage; created by oidc_app.py, one per account."""
    return f"{project}-github-deploy-{stage}"


def pr_role_name(project: str) -> str:
    """The read-only role of pull requests (diff, cleanup check), in the feature stage's account."""
    return f"{project}-github-pr"


def destroy_role_name(project: str) -> str:
    """The role of the destroy workflow and the janitor: deletes feature workspaces only."""
    return f"{project}-github-destroy"


def glue_database_name(project: str, workspace: str) -> str:
    """Glue/Athena identifiers take underscores, not hyphens."""
    return f"{project}_{workspace}".replace("-", "_")


def athena_workgroup_name(project: str, workspace: str) -> str:
    """The workspace's Athena workgroup: its queries' results go to its own bucket, encrypted (storage stack)."""
    return resource_name(project, workspace, "queries")


_LONGEST_COMPONENT = max((c.value for c in Component), key=len)

_TEMPLATE = ("{project}", "{workspace}")
DERIVED_NAMES: tuple[DerivedName, ...] = (
    DerivedName("CloudFormation stack", stack_name(*_TEMPLATE, Component(_LONGEST_COMPONENT)), 128),
    *(DerivedName(what, resource_name(*_TEMPLATE, suffix), limit) for suffix, (what, limit) in EXPLICIT_NAMES.items()),
    *(
        DerivedName("Glue job of a table's own", table_job_name(*_TEMPLATE, job, "t" * DEDICATED_TABLE_MAX_LENGTH), 255)
        for job in TABLE_JOBS
    ),
    DerivedName("Glue database", glue_database_name(*_TEMPLATE), 255),
    DerivedName("SSM parameter", tracking_uri_parameter(*_TEMPLATE), 1011),
)


def max_workspace_length() -> int:
    """The longest workspace for which every derived name fits, with the longest project name."""
    return min(n.limit - n.fixed_length() - PROJECT_NAME_MAX_LENGTH for n in DERIVED_NAMES)


MAX_WORKSPACE_LENGTH = max_workspace_length()
"""41 today: bound by the SageMaker notebook instance name (63 = 12 + 1 + 41 + len('-notebook'))."""


def names_over_limit(project: str, workspace: str) -> list[str]:
    """Derived names that would not fit; empty when the pair is usable."""
    return [
        f"{n.what} '{n.render(project, workspace)}' is {len(n.render(project, workspace))} > {n.limit}"
        for n in DERIVED_NAMES
        if len(n.render(project, workspace)) > n.limit
    ]


def table_id_part(table: str) -> str:
    """`<dataset>/<table>` as the part of a construct id that names a table's own construct
    (`clinic/appointments` -> `ClinicAppointments`): its jobs, its catalog table, its extractor, its raw prefix's
    policy."""
    return "".join(part.title() for part in re.split("[/_]", table))


TRAINING_JOB_NAME_LIMIT = 63
RUN_ID_LENGTH = 36
"""A training job is named `<training_job_prefix>-<UUID>`: the state machine's States.UUID(), 36 characters."""


def training_job_prefix(project: str, workspace: str) -> str:
    """What a workspace's SageMaker training jobs' names start with: the project and a hash of the workspace,
    short enough for a run's UUID after it (63 characters in all, whatever the workspace's length), and distinct
    per workspace, so that a workspace's state machine may describe and stop its own jobs only."""
    prefix = f"{project}-t{hashlib.sha256(workspace.encode()).hexdigest()[:8]}"
    if len(prefix) + 1 + RUN_ID_LENGTH > TRAINING_JOB_NAME_LIMIT:  # PROJECT_NAME_MAX_LENGTH keeps it within
        raise ValueError(f"project {project!r} leaves no room for a training job's name: shorten it")
    return prefix
