"""infra/naming.py, value by value: every name the platform builds, the limits it is held to, and the longest
workspace they allow (fast: no synthesis; tests/infra/test_naming_limits.py synthesises hostile branches)."""

from __future__ import annotations

import re

import pytest

from infra import naming
from infra.naming import (
    DEDICATED_TABLE_MAX_LENGTH,
    DERIVED_NAMES,
    EXPLICIT_NAMES,
    MAX_WORKSPACE_LENGTH,
    PROJECT_NAME_MAX_LENGTH,
    TABLE_JOBS,
    Component,
    DerivedName,
    athena_workgroup_name,
    deploy_role_name,
    destroy_role_name,
    glue_database_name,
    max_workspace_length,
    names_over_limit,
    pr_role_name,
    resource_name,
    stack_name,
    table_job_name,
    tracking_uri_parameter,
)


def test_every_name_is_spelled_as_the_workflows_and_the_stacks_expect() -> None:
    assert [c.value for c in Component] == ["storage", "monitoring", "etl", "ml", "model-service"]
    assert stack_name("p", "we-1-x", Component.MODEL_SERVICE) == "p-we-1-x-model-service"
    assert resource_name("p", "w", "notebook") == "p-w-notebook"
    assert deploy_role_name("p", "int") == "p-github-deploy-int"
    assert pr_role_name("p") == "p-github-pr"
    assert destroy_role_name("p") == "p-github-destroy"
    assert glue_database_name("p", "we-1-x") == "p_we_1_x"
    assert athena_workgroup_name("p", "w") == "p-w-queries"
    assert tracking_uri_parameter("p", "w") == "/p/w/mlflow/tracking-uri"
    assert (naming.TAG_PROJECT, naming.TAG_STAGE, naming.TAG_WORKSPACE) == ("project", "stage", "workspace")
    assert (naming.TAG_BRANCH, naming.TAG_OWNER, naming.TAG_RELEASE) == ("branch", "owner", "release")
    assert PROJECT_NAME_MAX_LENGTH == 12


def test_an_unregistered_name_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError) as caught:
        resource_name("p", "w", "reports")
    assert str(caught.value) == (
        "no explicit name 'reports' in infra/naming.py EXPLICIT_NAMES: add it there with its AWS limit, "
        "so that every workspace name keeps it within the limit"
    )


def test_the_derived_names_and_their_limits() -> None:
    rendered = {(n.what, n.render("{project}", "{workspace}"), n.limit) for n in DERIVED_NAMES}
    assert rendered == {
        ("CloudFormation stack", "{project}-{workspace}-model-service", 128),
        ("SageMaker notebook instance and its lifecycle configuration", "{project}-{workspace}-notebook", 63),
        ("SageMaker MLflow app / tracking server", "{project}-{workspace}-mlflow", 256),
        ("Step Functions state machine", "{project}-{workspace}-pipeline", 80),
        ("Step Functions state machine of training in AWS", "{project}-{workspace}-training", 80),
        ("Glue job", "{project}-{workspace}-raw-to-staging", 255),
        ("Glue job", "{project}-{workspace}-staging-to-curated", 255),
        ("Athena workgroup", "{project}-{workspace}-queries", 128),
        ("CloudWatch dashboard", "{project}-{workspace}-dashboard", 255),
        ("WAF web ACL", "{project}-{workspace}-service-acl", 128),
        ("Lambda function of the serverless model service", "{project}-{workspace}-service", 64),
        ("Glue job of a table's own", "{project}-{workspace}-raw-to-staging-" + "t" * 64, 255),
        ("Glue job of a table's own", "{project}-{workspace}-staging-to-curated-" + "t" * 64, 255),
        ("Glue database", "{project}_{workspace}", 255),
        ("SSM parameter", "/{project}/{workspace}/mlflow/tracking-uri", 1011),
    }
    assert len(DERIVED_NAMES) == len(EXPLICIT_NAMES) + 5
    assert DerivedName("x", "{project}-{workspace}-ab", 10).fixed_length() == 4  # "--ab"


def test_the_longest_workspace_is_bound_by_the_notebook_name() -> None:
    assert MAX_WORKSPACE_LENGTH == max_workspace_length() == 41  # 63 - len("-") - 12 - len("-notebook")
    project, longest = "p" * PROJECT_NAME_MAX_LENGTH, "w" * MAX_WORKSPACE_LENGTH
    assert names_over_limit(project, longest) == []
    assert names_over_limit(project, longest + "w") == [
        f"SageMaker notebook instance and its lifecycle configuration '{project}-{longest}w-notebook' is 64 > 63"
    ]
    over = names_over_limit(project, "w" * 70)
    assert [line.split(" '")[0] for line in over] == [
        "SageMaker notebook instance and its lifecycle configuration",
        "Step Functions state machine",
        "Lambda function of the serverless model service",  # 12 + 1 + 70 + len("-service") = 91 > 64
        "Step Functions state machine of training in AWS",  # 12 + 1 + 70 + len("-training") = 92 > 80
    ]
    assert len(resource_name(project, "w" * (MAX_WORKSPACE_LENGTH + 2), "service")) == 64, "the next bound"


def test_a_tables_own_job_is_the_generic_jobs_name_and_the_table() -> None:
    assert table_job_name("dp", "we-1", "raw-to-staging", "clinic/appointments") == (
        "dp-we-1-raw-to-staging-clinic.appointments"
    )
    assert table_job_name("dp", "we-1", "staging-to-curated", "a/b") == "dp-we-1-staging-to-curated-a.b"
    assert TABLE_JOBS == ("raw-to-staging", "staging-to-curated") and DEDICATED_TABLE_MAX_LENGTH == 64
    longest = "d/" + "t" * 62
    assert table_job_name("dp", "w", "raw-to-staging", longest).endswith("-d." + "t" * 62)
    with pytest.raises(ValueError, match=r"table 'd/t{63}' is longer than 64 characters for jobs of its own"):
        table_job_name("dp", "w", "raw-to-staging", longest + "t")
    with pytest.raises(ValueError, match=r"no generic Glue job 'pipeline' a table may have its own copy of"):
        table_job_name("dp", "w", "pipeline", "a/b")


def test_a_tables_construct_id_part_is_its_dataset_and_table_in_pascal_case() -> None:
    from infra.naming import table_id_part

    assert table_id_part("clinic/appointments") == "ClinicAppointments"
    assert table_id_part("shop_eu/unit_prices") == "ShopEuUnitPrices"


def test_a_training_jobs_name_fits_its_limit_and_differs_per_workspace() -> None:
    from infra.naming import RUN_ID_LENGTH, TRAINING_JOB_NAME_LIMIT, training_job_prefix

    project = "p" * PROJECT_NAME_MAX_LENGTH
    longest = training_job_prefix(project, "w" * MAX_WORKSPACE_LENGTH)
    assert len(longest) + 1 + RUN_ID_LENGTH <= TRAINING_JOB_NAME_LIMIT == 63
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", longest), "SageMaker's job name pattern"
    assert longest.startswith(f"{project}-t")
    assert training_job_prefix("dataplat", "we-1") != training_job_prefix("dataplat", "we-2")
    assert training_job_prefix("dataplat", "we-1") == training_job_prefix("dataplat", "we-1"), "stable: IAM names it"
    import hashlib

    assert training_job_prefix("dataplat", "we-1") == "dataplat-t" + hashlib.sha256(b"we-1").hexdigest()[:8]
    assert len(training_job_prefix("p" * 16, "w")) + 1 + RUN_ID_LENGTH == 63, "the longest project that fits"
    with pytest.raises(ValueError, match="project 'ppppppppppppppppp' leaves no room for a training job's name"):
        training_job_prefix("p" * 17, "w")
