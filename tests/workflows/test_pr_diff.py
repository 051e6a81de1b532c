"""The PR diff (infra/pr_diff.py): destructive changes found in real `cdk diff` output, the check and its label,
int's baselines by component, the deployed baselines through the PR role's one call, the comment's sections and
its size limits, and which PRs get the deployed-workspace section.

The real output comes from one session fixture: two small CDK apps synthesised in-process (the merge result
and the base commit, as the workflow synthesises them), then `cdk diff` of the CLI pinned by package.json
through the module's own commands, with no AWS credentials."""

from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from infra import pr_diff
from infra.pr_diff import (
    ALLOW_LABEL,
    COMMENT_LIMIT,
    CUT_NOTE,
    DESTRUCTIVE_SHOWN,
    MARKER,
    SUMMARY_LIMIT,
    Report,
)

PROJECT = "dataplat"  # config/project.yaml's: the CLI's int-baselines reads it from there
STORAGE, ML = f"{PROJECT}-int-storage", f"{PROJECT}-int-ml"
NO_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


def synth(outdir: Path, *, base: bool) -> Path:
    """The app as the base commit (`base`) or the PR's merge result defines it. Merging renames the `Data`
    bucket (a replacement), removes `Gone` (deleted) and `Kept` (retained: orphaned, its data stays) and
    `OldTopic`, turns on `Logs`'s versioning and changes the topic's name (updates in place), and adds the ml
    stack, which int does not have yet and which depends on storage."""
    import aws_cdk as cdk
    from aws_cdk import aws_logs as logs
    from aws_cdk import aws_s3 as s3
    from aws_cdk import aws_sns as sns

    app = cdk.App(outdir=str(outdir))
    storage = cdk.Stack(app, STORAGE)
    s3.Bucket(storage, "Data", bucket_name="data-old" if base else "data-new", removal_policy=cdk.RemovalPolicy.RETAIN)
    s3.Bucket(storage, "Logs", versioned=not base, removal_policy=cdk.RemovalPolicy.RETAIN)
    sns.Topic(storage, "Alarms", display_name="old" if base else "new")
    if base:
        s3.Bucket(storage, "Gone", removal_policy=cdk.RemovalPolicy.DESTROY)
        s3.Bucket(storage, "Kept", removal_policy=cdk.RemovalPolicy.RETAIN)
        sns.Topic(storage, "OldTopic")
    else:
        ml = cdk.Stack(app, ML)
        ml.add_stack_dependency(storage)  # as the platform's stacks depend on storage: diffed alone all the same
        logs.LogGroup(ml, "Runs", removal_policy=cdk.RemovalPolicy.RETAIN)
    app.synth()
    return outdir


@pytest.fixture(scope="session")
def real(tmp_path_factory) -> dict:
    """The workflow's int section on the two apps, once per session: the baselines and the diff file written
    by the module's CLI (the int-baselines and diff commands), with no credentials in the environment."""
    root = tmp_path_factory.mktemp("pr-diff")
    head, base = synth(root / "head", base=False), synth(root / "base", base=True)
    with pytest.MonkeyPatch.context() as env:
        for name in NO_CREDENTIALS:
            env.delenv(name, raising=False)
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        assert (
            pr_diff.main(
                [
                    "int-baselines",
                    "--app",
                    str(head),
                    "--base",
                    str(base),
                    "--base-ref",
                    "abc1234",
                    "--out",
                    str(root / "baselines"),
                ]
            )
            == 0
        )
        started = time.monotonic()
        assert (
            pr_diff.main(
                [
                    "diff",
                    "--app",
                    str(head),
                    "--baselines",
                    str(root / "baselines"),
                    "--out",
                    str(root / pr_diff.INT_DIFF_FILE),
                ]
            )
            == 0
        )
        seconds = time.monotonic() - started
    return {
        "root": root,
        "head": head,
        "base": base,
        "baselines": root / "baselines",
        "seconds": seconds,
        "diff_file": root / pr_diff.INT_DIFF_FILE,
        "diff": (root / pr_diff.INT_DIFF_FILE).read_text(),
    }


def test_real_cdk_diff_runs_offline_and_compares_each_stack_with_ints_counterpart(real) -> None:
    facts = pr_diff.read_baselines(real["baselines"])
    assert facts["int_known"] is True and facts["base"] == "abc1234" and facts["gone"] == []
    assert facts["stacks"] == {
        STORAGE: f"int ({STORAGE}) at the base commit abc1234",
        ML: f"nothing: int has no {ML} at the base commit abc1234",
    }
    base_template = json.loads((real["base"] / f"{STORAGE}.template.json").read_text())
    assert json.loads((real["baselines"] / f"{STORAGE}.json").read_text()) == base_template
    assert json.loads((real["baselines"] / f"{ML}.json").read_text()) == {"Resources": {}}
    diff = real["diff"]
    assert diff.index(f"Stack {STORAGE}") < diff.index(f"Stack {ML}")
    assert "data-old" in diff and "data-new" in diff, "the storage stack was diffed against the base's template"
    assert real["seconds"] < 60, f"cdk diff of two small stacks took {real['seconds']:.0f}s"


def test_destructive_changes_name_the_replaced_and_deleted_buckets_only(real) -> None:
    found = pr_diff.destructive_changes(real["diff"])
    assert {(d.stack, d.resource_type, d.logical_id.rstrip("0123456789ABCDEF"), d.change) for d in found} == {
        (STORAGE, "AWS::S3::Bucket", "Data", "replaced"),
        (STORAGE, "AWS::S3::Bucket", "Gone", "deleted"),
    }, real["diff"]
    listed = "\n".join(map(str, found))
    for kept in ("Logs", "Kept", "Alarms", "OldTopic", "Runs"):  # updated, orphaned, not stateful, added
        assert kept not in listed
    assert "Data (Data" in listed, "the construct path is named beside the logical ID"


def test_the_check_fails_on_a_destructive_change_unless_the_pr_has_the_label(real, capsys) -> None:
    args = ["check", "--int-diff", str(real["diff_file"]), "--int-baselines", str(real["baselines"])]
    assert pr_diff.main([*args, "--allow-destructive", "false"]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("::error") and f"add the label `{ALLOW_LABEL}`" in out
    assert "AWS::S3::Bucket Data (Data" in err and "AWS::S3::Bucket Gone" in err and "Kept" not in err
    assert pr_diff.main([*args, "--allow-destructive", "true"]) == 0
    assert f"allowed by the label `{ALLOW_LABEL}`" in capsys.readouterr().out


def test_the_check_passes_without_destructive_changes_and_fails_when_int_is_unknown() -> None:
    assert not pr_diff.verdict([], allowed=False, int_known=True).failed
    unknown = pr_diff.verdict([], allowed=False, int_known=False)
    assert unknown.failed and "could not be synthesised" in unknown.message and ALLOW_LABEL in unknown.message
    assert not pr_diff.verdict([], allowed=True, int_known=False).failed


def test_int_baselines_map_each_stack_to_ints_stack_of_its_component(tmp_path) -> None:
    stacks = [f"{PROJECT}-we-1-a-{c}" for c in ("storage", "etl", "ml")]
    templates = {
        f"{PROJECT}-int-storage": tmp_path / "s.json",
        f"{PROJECT}-int-etl": tmp_path / "e.json",
        f"{PROJECT}-int-old": tmp_path / "o.json",
    }
    found = pr_diff.int_baselines(stacks, PROJECT, "we-1-a", templates, "abc1234")
    assert {s: b.template for s, b in found.items()} == {
        stacks[0]: tmp_path / "s.json",
        stacks[1]: tmp_path / "e.json",
        stacks[2]: None,
    }
    assert found[stacks[2]].label == f"nothing: int has no {PROJECT}-int-ml at the base commit abc1234"
    assert pr_diff.gone_from_int(stacks, PROJECT, "we-1-a", templates) == [f"{PROJECT}-int-old"]
    unknown = pr_diff.int_baselines(stacks, PROJECT, "we-1-a", None, "abc1234")
    assert {b.template for b in unknown.values()} == {None}
    assert "could not be synthesised" in unknown[stacks[0]].label
    with pytest.raises(pr_diff.PrDiffError, match="not one of workspace"):
        pr_diff.int_baselines([f"{PROJECT}-other-storage"], PROJECT, "we-1-a", templates, "abc1234")


def test_the_int_section_says_when_the_base_commit_was_not_synthesised(real, tmp_path) -> None:
    out = tmp_path / "baselines"
    assert (
        pr_diff.main(
            [
                "int-baselines",
                "--app",
                str(real["head"]),
                "--base",
                str(tmp_path / "missing"),
                "--base-ref",
                "abc1234",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    facts = pr_diff.read_baselines(out)
    assert facts["int_known"] is False
    assert json.loads((out / f"{STORAGE}.json").read_text()) == {"Resources": {}}


def test_deployed_baselines_read_the_deployed_template_else_none_and_never_hide_a_refusal(
    monkeypatch, tmp_path
) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(key, value)
    template = {"Resources": {"Data": {"Type": "AWS::S3::Bucket"}}}
    with mock_aws():
        cfn = boto3.client("cloudformation")
        cfn.create_stack(StackName=f"{PROJECT}-we-1-a-storage", TemplateBody=json.dumps(template))
        stacks = [f"{PROJECT}-we-1-a-storage", f"{PROJECT}-we-1-a-etl"]
        labels = pr_diff.write_deployed_baselines(cfn, stacks, tmp_path)
    assert labels == {stacks[0]: f"deployed ({stacks[0]})", stacks[1]: "nothing (not deployed yet)"}
    assert json.loads((tmp_path / f"{stacks[0]}.json").read_text()) == template
    assert json.loads((tmp_path / f"{stacks[1]}.json").read_text()) == {"Resources": {}}
    assert pr_diff.read_baselines(tmp_path)["stacks"] == labels

    from botocore.exceptions import ClientError

    class Refusing:
        def get_template(self, **_: str) -> dict:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "GetTemplate")

    with pytest.raises(ClientError):
        pr_diff.write_deployed_baselines(Refusing(), stacks, tmp_path / "refused")


def report(int_diff: str, **changes) -> Report:
    fields = {
        "base": "abc1234",
        "int_baselines": {STORAGE: "int"},
        "int_gone": [],
        "int_diff": int_diff,
        "int_known": True,
        "allowed": False,
        "workspace": "we-1-a",
        "workspace_baselines": {},
        "workspace_diff": "Stack x\n[~] AWS::SNS::Topic T T1 \n",
        "skipped": None,
        "run_url": "https://r/1",
    }
    return Report(**{**fields, **changes})


def test_the_comment_has_the_marker_first_then_int_then_the_workspace_collapsed(real) -> None:
    comment = pr_diff.render_comment(report(real["diff"]))
    lines = comment.splitlines()
    assert lines[0] == MARKER
    assert (
        lines.index("> [!CAUTION]")
        < lines.index("```diff")
        < lines.index("<details><summary>Against the branch's deployed workspace <code>we-1-a</code></summary>")
    )
    assert real["diff"].strip() in comment and CUT_NOTE not in comment, "a small diff is whole"
    assert f"`{ALLOW_LABEL}`" in comment and "artifact `cdk-diff`" in comment and "(https://r/1)" in comment
    allowed = pr_diff.render_comment(report(real["diff"], allowed=True))
    assert "> [!WARNING]" in allowed and f"allowed by the label `{ALLOW_LABEL}`" in allowed
    quiet = pr_diff.render_comment(report("Stack x\nThere were no differences\n"))
    assert "No stateful resource of `int` is deleted or replaced." in quiet and "[!" not in quiet


def test_a_fork_gets_the_int_section_and_a_skipped_workspace_section_with_the_reason() -> None:
    reason = pr_diff.workspace_skip_reason(from_this_repo=False, stage="feature", head="feature/x")
    comment = pr_diff.render_comment(report("Stack x\n", workspace_diff=None, skipped=reason))
    assert "What merging does" in comment and "deployed workspace: skipped" in comment
    assert f"Skipped: {reason}" in comment and "fork" in reason and "id-token" in reason


@pytest.mark.parametrize(
    ("from_this_repo", "stage", "runs"),
    [
        (True, "feature", True),
        (False, "feature", False),
        (True, "prd", False),
        (True, "int", False),
        (True, None, False),
        (False, None, False),
    ],
)
def test_only_a_feature_branch_of_this_repository_gets_the_deployed_workspace_diff(
    tmp_path, capsys, from_this_repo: bool, stage: str | None, runs: bool
) -> None:
    env = tmp_path / "workspace.env"
    env.write_text(f"stage={stage}\nworkspace=we-1-a\n" if stage else "")  # empty: infra.workspace refused it
    assert (
        pr_diff.main(["gate", str(env), "--head", "release/1.2.3", "--from-this-repo", str(from_this_repo).lower()])
        == 0
    )
    outputs = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert outputs["deployed"] == str(runs).lower()
    assert bool(outputs["skipped"]) is not runs
    if not from_this_repo:
        assert "fork" in outputs["skipped"], "a fork's reason is the fork, whatever its branch"


def test_huge_diffs_are_cut_to_fit_a_comment_and_a_summary_but_the_destructive_list_is_not(real) -> None:
    many = "".join(f"Stack {PROJECT}-int-s{i}\n[-] AWS::S3::Bucket B{i:04d}ABCD destroy\n" for i in range(80))
    huge_int = many + real["diff"] * 3000 + "\nTHE END OF INT\n"
    huge_workspace = "├─ [~] ☃ wide characters\n" * 60_000 + "THE END OF WORKSPACE\n"
    assert len(huge_int) > 2 * SUMMARY_LIMIT and len(huge_workspace) > SUMMARY_LIMIT
    big = report(huge_int, workspace_diff=huge_workspace)
    comment, summary = pr_diff.render_comment(big), pr_diff.render_summary(big)
    assert len(comment) < COMMENT_LIMIT and pr_diff.comment_size(comment) < COMMENT_LIMIT
    assert len(comment.encode("utf-8")) < 4 * COMMENT_LIMIT
    assert len(summary.encode("utf-8")) < SUMMARY_LIMIT
    for text in (comment, summary):
        assert text.splitlines()[0] == MARKER
        assert text.count(CUT_NOTE.strip()) == 2, "both bodies cut, each saying where the full diff is"
        assert "THE END OF INT" not in text and "THE END OF WORKSPACE" not in text
        assert f"- {PROJECT}-int-s0: AWS::S3::Bucket B0000ABCD: deleted" in text
        assert f"- {PROJECT}-int-s{DESTRUCTIVE_SHOWN - 1}: AWS::S3::Bucket" in text
        assert f"- ... and {80 + 2 - DESTRUCTIVE_SHOWN} more" in text, "the same change twice is listed once"
        assert f"{PROJECT}-int-s{DESTRUCTIVE_SHOWN}:" not in text
        assert "<details>" in text and text.rstrip().endswith(
            f"(`{pr_diff.INT_DIFF_FILE}`, `{pr_diff.WORKSPACE_DIFF_FILE}`) of [this run](https://r/1)."
        )
    assert pr_diff.comment_size(comment) > COMMENT_LIMIT - 2_000, "the room is used, not thrown away"


def test_fit_keeps_a_short_text_whole_and_gives_the_rest_to_the_long_one() -> None:
    short, long = "s\n" * 10, "l\n" * 10_000
    kept_short, kept_long = pr_diff.fit([short, long], 1_000, len)
    assert kept_short == short and kept_long.endswith(CUT_NOTE)
    assert len(kept_short) + len(kept_long) <= 1_000 and len(kept_long) > 900


def test_the_comment_command_writes_the_comment_and_appends_the_summary(real, tmp_path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("before\n")
    args = [
        "comment",
        "--int-diff",
        str(real["diff_file"]),
        "--int-baselines",
        str(real["baselines"]),
        "--allow-destructive",
        "false",
        "--workspace",
        "we-1-a",
        "--comment",
        str(tmp_path / "c.md"),
        "--summary",
        str(summary),
    ]
    assert pr_diff.main([*args, "--skipped", "the PR comes from a fork"]) == 0
    comment = (tmp_path / "c.md").read_text()
    assert comment.startswith(MARKER + "\n") and "Skipped: the PR comes from a fork" in comment
    assert summary.read_text().startswith("before\n" + MARKER)
    assert pr_diff.main([*args, "--workspace-diff", str(tmp_path / "absent.txt")]) == 2, (
        "no workspace diff and no reason: an error, not a silent gap"
    )
    cost = tmp_path / "cost.md"
    cost.write_text("**Cost at rest** (x):\n- int: **$90.54/month** (+0.00 against the base commit)\n")
    assert pr_diff.main([*args, "--skipped", "fork", "--cost", str(cost)]) == 0
    lines = (tmp_path / "c.md").read_text().splitlines()
    assert lines.index("- int: **$90.54/month** (+0.00 against the base commit)") < lines.index("```diff"), (
        "the cost lines under the heading, above the diff"
    )
    assert pr_diff.main([*args, "--skipped", "fork", "--cost", str(tmp_path / "none.md")]) == 0
    assert "Cost at rest" not in (tmp_path / "c.md").read_text(), "no cost file (its step failed): no line"


def test_a_named_resource_moved_to_another_logical_id_fails_the_check_whatever_the_label(tmp_path, capsys) -> None:
    """`cdk diff` shows a construct wrapped or moved as one resource added and one removed; for a resource with
    an explicit name (a Glue job's), int's deploy would fail: CloudFormation creates the new one first and the
    name is taken. The int-baselines step finds it from the two templates; no label lets it pass."""
    job = {"Type": "AWS::Glue::Job", "Properties": {"Name": "dataplat-int-raw-to-staging", "Role": "r"}}
    base, head = tmp_path / "base.json", tmp_path / "head.json"
    base.write_text(json.dumps({"Resources": {"RawToStaging00C3AB4B": job}}))
    head.write_text(json.dumps({"Resources": {"RawToStagingJobB1A2C3D4": job}}))
    stack = f"{PROJECT}-int-etl"
    moved = pr_diff.moved_in_int({stack: head}, {stack: pr_diff.Baseline(base, "int")})
    assert moved == [
        f"{stack}: RawToStaging00C3AB4B (AWS::Glue::Job): moved to RawToStagingJobB1A2C3D4 with the same name "
        "dataplat-int-raw-to-staging: the deploy would fail (CloudFormation creates the new one before deleting "
        "the old)"
    ]
    assert pr_diff.moved_in_int({stack: base}, {stack: pr_diff.Baseline(base, "int")}) == []
    assert pr_diff.moved_in_int({stack: head}, {stack: pr_diff.Baseline(None, "nothing")}) == []
    for allowed in (False, True):
        judged = pr_diff.verdict([], allowed=allowed, int_known=True, moved=moved)
        assert judged.failed and "int's deploy would fail" in judged.message
    baselines = tmp_path / "baselines"
    pr_diff.write_baselines({stack: pr_diff.Baseline(base, "int")}, baselines, base="abc", int_known=True, moved=moved)
    (tmp_path / "diff.txt").write_text("")
    args = ["check", "--int-diff", str(tmp_path / "diff.txt"), "--int-baselines", str(baselines)]
    assert pr_diff.main([*args, "--allow-destructive", "true"]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("::error") and "RawToStaging00C3AB4B (AWS::Glue::Job): moved to" in err
    moved_line = "dataplat-int-etl: RawToStaging00C3AB4B (AWS::Glue::Job): moved to X with the same name n: ..."
    comment = pr_diff.render_comment(report("Stack x\n", int_moved=[moved_line], allowed=True))
    assert "> [!CAUTION]" in comment and f"> - {moved_line}" in comment and "int's deploy would fail" in comment
    quiet = pr_diff.render_comment(report("Stack x\n"))
    assert "[!CAUTION]" not in quiet and "No stateful resource of `int` is deleted or replaced." in quiet
