"""`python -m infra.lifecycle` (infra/lifecycle/cli.py), against moto: each subcommand's exit code, output
and stderr, the janitor's run over its orphans, the time budget, the checks of what is typed by hand."""

from __future__ import annotations

import json

import boto3
import pytest

from infra.lifecycle.cli import main
from infra.lifecycle.destroy import DestroyReport, StuckResource, StuckStack, destroy_workspace
from infra.lifecycle.stacks import list_stacks
from tests.workflows.lifecycle_helpers import BUCKET_TEMPLATE, PROJECT, deploy


def test_the_components_of_the_refs_own_stage_decide(aws, monkeypatch, capsys) -> None:
    """int's ml stack is deployed and int's config switches mlflow off: `main` is refused, while a feature ref
    (whose stage keeps everything) of a workspace with the same stacks is not."""
    import infra.config

    cfn = aws["cloudformation"]
    for workspace, stage, branch in (("int", "int", "main"), ("x", "feature", "feature/x")):
        for component in ("storage", "monitoring", "ml"):
            deploy(cfn, workspace, component, branch=branch, stage=stage)
    shipped = infra.config.load_config(infra.config.DEFAULT_CONFIG_PATH)
    raw = shipped.model_dump(mode="json")
    raw["stages"]["int"]["components"] = {"notebook": False, "mlflow": False, "model_service": False}
    raw["stages"]["int"]["ml"]["training"] = {}  # training needs MLflow (config validation)
    int_off = type(shipped).model_validate(raw)
    monkeypatch.setattr(infra.config, "load_config", lambda *path: int_off)
    assert main(["components", "feature/x"]) == 0
    capsys.readouterr()
    assert main(["components", "main"]) == 2
    assert "dataplat-int-ml (ml)" in capsys.readouterr().err


def test_cli_guard_exits_2_with_the_reason(aws, capsys) -> None:
    deploy(aws["cloudformation"], "x", "storage", branch="feature/x")
    assert main(["guard", "x", "feature/x"]) == 0
    assert main(["guard", "x", "fix/x"]) == 2
    assert "deployed from branch 'feature/x', not from 'fix/x'" in capsys.readouterr().err


def test_cli_destroy_names_what_is_stuck_on_stderr_and_exits_1(aws, monkeypatch, capsys) -> None:
    stuck = DestroyReport(
        "w",
        stacks=["dataplat-w-etl"],
        kept=["dataplat-w-monitoring"],
        stuck=[
            StuckStack(
                "dataplat-w-etl",
                "DELETE_FAILED",
                "1 failed",
                [StuckResource("Raw", "raw-1", "AWS::S3::Bucket", "BucketNotEmpty")],
            )
        ],
        alarm={"topic": "arn:aws:sns:eu-west-1:1:t", "message_id": "m"},
    )
    monkeypatch.setattr("infra.lifecycle.cli.destroy_workspace", lambda *a, **k: stuck)
    assert main(["destroy", "w"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["stuck"][0]["resources"][0]["physical_id"] == "raw-1"
    assert "dataplat-w-etl (DELETE_FAILED)" in captured.err and "AWS::S3::Bucket Raw (raw-1)" in captured.err
    assert "alarm: sent to arn:aws:sns:eu-west-1:1:t" in captured.err
    stuck.stuck.clear()
    assert main(["destroy", "w"]) == 0


def test_the_janitor_goes_on_after_a_workspace_it_cannot_destroy(aws, monkeypatch, tmp_path, capsys) -> None:
    """A refusal or throttling in one workspace is reported and fails the run; the other orphans still go."""
    from botocore.exceptions import ClientError

    cfn = aws["cloudformation"]
    deploy(cfn, "we-1-a", "etl", branch="feature/WEDATAIN-1-a")
    deploy(cfn, "we-2-b", "etl", branch="feature/WEDATAIN-2-b")
    destroy = destroy_workspace

    def refuse_the_first(client, project, workspace, **kwargs):
        if workspace == "we-1-a":
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "DeleteStack")
        return destroy(client, project, workspace, **kwargs)

    monkeypatch.setattr("infra.lifecycle.cli.destroy_workspace", refuse_the_first)
    branches = tmp_path / "branches.txt"
    branches.write_text("main\n")
    assert main(["orphans", "--branches", str(branches), "--destroy"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [r["workspace"] for r in out["destroyed"]] == ["we-2-b"]
    assert "Rate exceeded" in out["failed"]["we-1-a"]
    assert [s.workspace for s in list_stacks(cfn, PROJECT)] == ["we-1-a"]


def test_with_no_budget_left_the_janitor_defers_every_workspace_and_the_destroy_fails(aws, tmp_path, capsys) -> None:
    cfn = aws["cloudformation"]
    deploy(cfn, "we-1-a", "etl", branch="feature/WEDATAIN-1-a")
    deploy(cfn, "we-2-b", "etl", branch="feature/WEDATAIN-2-b")
    branches = tmp_path / "branches.txt"
    branches.write_text("main\n")
    assert main(["orphans", "--branches", str(branches), "--destroy", "--budget-minutes", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(out["deferred"]) == ["we-1-a", "we-2-b"] and out["destroyed"] == [] and out["assets"] == []
    assert len(list_stacks(cfn, PROJECT)) == 2, "nothing started"
    summary = tmp_path / "orphans.json"
    summary.write_text(json.dumps(out))
    main(["janitor-summary", str(summary)])
    assert (
        "| we-1-a | feature/WEDATAIN-1-a | branch 'feature/WEDATAIN-1-a' no longer exists | deferred to the "
        "next run (out of time) |"
    ) in capsys.readouterr().out

    assert main(["destroy", "we-1-a", "--budget-minutes", "0"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["deferred"] == ["dataplat-we-1-a-etl"]
    assert "out of time before dataplat-we-1-a-etl" in captured.err
    assert main(["destroy", "we-1-a", "--budget-minutes", "100"]) == 0
    with pytest.raises(SystemExit):
        main(["destroy", "we-1-a", "--budget-minutes", "-5"])
    assert "a budget is 0 to 1440 minutes" in capsys.readouterr().err


def test_deleting_fix_x_keeps_feature_xs_workspace_and_says_whose_it_is(aws, capsys) -> None:
    cfn = aws["cloudformation"]
    deploy(cfn, "x", "etl", branch="feature/x", owned=True)
    assert main(["destroy", "--owner", "refs/heads/fix/x"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reports"] == []
    assert out["notes"] == [
        "nothing deployed by refs/heads/fix/x; workspace 'x' is branch 'feature/x''s (it "
        "deployed there first) and is kept"
    ]
    assert [s.name for s in list_stacks(cfn, PROJECT)] == ["dataplat-x-etl"]
    assert main(["destroy", "--owner", "refs/heads/feature/x"]) == 0
    assert json.loads(capsys.readouterr().out)["reports"][0]["stacks"] == ["dataplat-x-etl"]
    assert list_stacks(cfn, PROJECT) == []


def test_a_ref_finds_its_workspaces_whatever_todays_naming_rules_call_them(aws, capsys) -> None:
    """Deployed under a name an older rule gave (and again under today's): both are the ref's."""
    cfn = aws["cloudformation"]
    branch = "feature/WEDATAIN-7-renamed"
    deploy(cfn, "wedatain-7-renamed", "etl", branch=branch, owned=True)  # before `ticket_keys` changed
    deploy(cfn, "we-7-renamed", "etl", branch=branch, owned=True)
    deploy(cfn, "we-8-other", "etl", branch="feature/WEDATAIN-8-other", owned=True)
    assert main(["find", "--owner", f"refs/heads/{branch}"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)) == [
        "dataplat-we-7-renamed-etl",
        "dataplat-wedatain-7-renamed-etl",
    ]
    assert main(["destroy", "--owner", f"refs/heads/{branch}"]) == 0
    assert [r["workspace"] for r in json.loads(capsys.readouterr().out)["reports"]] == [
        "we-7-renamed",
        "wedatain-7-renamed",
    ]
    assert [s.workspace for s in list_stacks(cfn, PROJECT)] == ["we-8-other"]


@pytest.mark.parametrize("workspace", ["Feature/X", "int", "prd-x", "a--b", "x" * 60, "we 1"])
def test_a_workspace_typed_by_hand_is_checked_before_use(aws, capsys, workspace: str) -> None:
    with pytest.raises(SystemExit):
        main(["destroy", workspace])
    assert f"workspace {workspace!r}: " in capsys.readouterr().err


def test_a_dry_run_makes_no_write_call(aws, tmp_path, monkeypatch, capsys) -> None:
    cfn, s3 = aws["cloudformation"], aws["s3"]
    deploy(cfn, "we-1-a", "storage", branch="feature/WEDATAIN-1-a", template=BUCKET_TEMPLATE, owned=True)
    (bucket,) = [
        r["PhysicalResourceId"]
        for r in cfn.describe_stack_resources(StackName="dataplat-we-1-a-storage")["StackResources"]
    ]
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    called: list[str] = []
    make = boto3.client

    def recording(*args, **kwargs):
        client = make(*args, **kwargs)
        client.meta.events.register("before-call", lambda model, **_: called.append(model.name))
        return client

    monkeypatch.setattr(boto3, "client", recording)
    branches = tmp_path / "branches.txt"
    branches.write_text("main\n")
    assert main(["orphans", "--branches", str(branches)]) == 0
    assert main(["destroy", "we-1-a", "--dry-run"]) == 0
    assert main(["destroy", "--owner", "refs/heads/feature/WEDATAIN-1-a", "--dry-run"]) == 0
    assert called and all(name.startswith(("Describe", "List", "Get")) for name in called), called
    assert len(list_stacks(cfn, PROJECT)) == 1 and s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 1
