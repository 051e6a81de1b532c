"""prd takes releases in order, except an explicit rollback (infra/releases.py), on recorded payloads and
against moto's CloudFormation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from infra import releases
from infra.lifecycle.stacks import DeployedStack
from infra.workspace import resolve

EVENTS = Path(__file__).resolve().parents[1] / "events" / "github"


@pytest.mark.parametrize(
    ("release", "running", "rollback", "goes"),
    [
        ("1.4.0", None, False, True),  # the first release
        ("1.4.0", "1.4.0", False, True),  # the tag after its release branch (or a fix on that branch)
        ("1.10.0", "1.9.3", False, True),  # numbers, not strings
        ("1.3.9", "1.4.0", False, False),  # a fix pushed to an old release branch
        ("1.9.3", "1.10.0", False, False),
        ("1.3.9", "1.4.0", True, True),  # a rollback, by hand
    ],
)
def test_prd_never_goes_back_unless_asked(release, running, rollback, goes) -> None:
    problem = releases.order_problem(release, running, rollback=rollback)
    assert (problem is None) is goes
    if problem:
        assert f"rollback_to={release}" in problem, "the message says how to go back on purpose"


@pytest.mark.parametrize(
    ("ref", "release"),
    [
        ("refs/heads/release/1.4.0", "1.4.0"),
        ("refs/tags/v1.4.0", "1.4.0"),
        ("refs/tags/2.0.1", "2.0.1"),
        ("refs/heads/main", None),
        ("refs/heads/feature/x", None),
    ],
)
def test_the_release_of_a_ref(ref, release) -> None:
    assert releases.release_of(resolve(ref)) == release


def test_the_running_release_is_the_newest_prd_stacks_tag() -> None:
    def stack(stage, release=None, project="dataplat"):
        tags = {"project": project, "stage": stage, **({"release": release} if release else {})}
        return DeployedStack(f"{project}-{stage}-x", "UPDATE_COMPLETE", datetime.now(UTC), tags)

    stacks = [stack("prd", "1.9.0"), stack("prd", "1.10.0"), stack("int"), stack("prd", "9.9.9", "other"), stack("prd")]
    assert releases.running_release(stacks, "dataplat") == "1.10.0"
    assert releases.running_release([stack("int")], "dataplat") is None


def test_a_rollback_names_a_release_tag_and_a_push_deploys_its_own_ref(tmp_path) -> None:
    push = json.loads((EVENTS / "push_tag.json").read_text())
    assert releases.deploy_ref("push", push, push["ref"]) == ("refs/tags/v1.4.0", False)
    assert releases.deploy_ref("workflow_dispatch", {"inputs": {"rollback_to": "v1.3.9"}}, "refs/heads/main") == (
        "refs/tags/v1.3.9",
        True,
    )
    for bad in ("main", "release/1.3.9", "v1.3", "1.3.9\nref=refs/heads/evil"):
        with pytest.raises(ValueError, match="rollback_to"):
            releases.deploy_ref("workflow_dispatch", {"inputs": {"rollback_to": bad}}, "refs/heads/main")


@pytest.fixture
def prd_runs_1_4_0(aws):
    """The lifecycle tests' moto account (their `aws` fixture), with prd's stacks at release 1.4.0."""
    aws["cloudformation"].create_stack(
        StackName="dataplat-prd-storage",
        TemplateBody=json.dumps({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}),
        Tags=[
            {"Key": "project", "Value": "dataplat"},
            {"Key": "stage", "Value": "prd"},
            {"Key": "release", "Value": "1.4.0"},
        ],
    )


@pytest.mark.parametrize(
    ("args", "deploys"),
    [
        (["refs/tags/v1.4.1"], True),
        (["refs/heads/release/1.4.0"], True),
        (["refs/heads/release/1.3.9"], False),
        (["refs/tags/1.3.9", "--rollback"], True),
        (["refs/heads/main"], True),
    ],
)
def test_the_check_reads_what_prd_runs(prd_runs_1_4_0, capsys, args, deploys) -> None:
    assert releases.main(["check", *args]) == 0
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["deploy"] == str(deploys).lower(), lines["reason"]
