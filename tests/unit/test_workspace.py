"""Branch -> (stage, workspace): concrete cases, properties over arbitrary text, and the CLI."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from infra.naming import MAX_WORKSPACE_LENGTH, PROJECT_NAME_MAX_LENGTH, names_over_limit
from infra.workspace import (
    PERSISTENT_WORKSPACES,
    NamingRules,
    Stage,
    WorkspaceError,
    branch_tag_value,
    readable_name,
    resolve,
    short_hash,
)

RULES = NamingRules(ticket_keys=(("WEDATAIN", "we"),), branch_prefixes=("feature", "bugfix", "fix"))
WORKSPACE_SHAPE = re.compile(r"^[a-z](?:[a-z0-9]|-(?=[a-z0-9]))*$")  # no double or trailing hyphen
LONG = "feature/" + "very-long-branch-name-" * 10


@pytest.mark.parametrize(
    ("ref", "stage", "workspace"),
    [
        ("feature/WEDATAIN-1234-some-feature", Stage.FEATURE, "we-1234-some-feature"),
        ("refs/heads/feature/WEDATAIN-1234-some-feature", Stage.FEATURE, "we-1234-some-feature"),
        ("WEDATAIN-77", Stage.FEATURE, "we-77"),
        ("feature/wedatain-5-lower-case-key", Stage.FEATURE, "we-5-lower-case-key"),
        ("feature/ABC-42_fix_it", Stage.FEATURE, "ab-42-fix-it"),  # unknown key: first two letters
        ("bugfix/Fix-Login", Stage.FEATURE, "fix-login"),
        ("main", Stage.INT, "int"),
        ("refs/heads/main", Stage.INT, "int"),
        ("release/1.2.3", Stage.PRD, "prd"),
        ("refs/heads/release/10.20.30", Stage.PRD, "prd"),
        ("1.2.3", Stage.PRD, "prd"),
        ("v1.2.3", Stage.PRD, "prd"),
        ("refs/tags/v1.2.3", Stage.PRD, "prd"),
        ("refs/heads/v1.2.3", Stage.FEATURE, "v1-2-3"),  # a branch that looks like a version is a branch
        ("dependabot/pip/boto3-1.2.3", Stage.FEATURE, "dependabot-pip-boto3-1-2-3"),
        ("renovate/aws-cdk-lib-2.x", Stage.FEATURE, "renovate-aws-cdk-lib-2-x"),
        ("UPPER/Case/Branch", Stage.FEATURE, "upper-case-branch"),
        ("a/b/c/d/e/f", Stage.FEATURE, "a-b-c-d-e-f"),
        ("feature/ünïcode-Straße", Stage.FEATURE, "unicode-strae"),
        ("123-starts-with-digit", Stage.FEATURE, "ws-123-starts-with-digit"),
        ("int-storage-x", Stage.FEATURE, "ws-int-storage-x"),  # never named like int's resources
        ("feature/prd-fix", Stage.FEATURE, "ws-prd-fix"),
        ("Main", Stage.FEATURE, "main"),  # git is case-sensitive: only `main` is int
    ],
)
def test_concrete_refs(ref: str, stage: Stage, workspace: str) -> None:
    target = resolve(ref, RULES)
    assert (target.stage, target.workspace) == (stage, workspace)


@pytest.mark.parametrize("branch", ["int", "prd", "feature/int", "INT", "fix/prd", "PRD"])
def test_a_feature_branch_never_takes_a_persistent_workspace(branch: str) -> None:
    target = resolve(branch, RULES)
    assert target.stage is Stage.FEATURE
    assert target.workspace not in PERSISTENT_WORKSPACES
    assert target.workspace.startswith(f"ws-{readable_name(branch, RULES)}-")
    assert target.workspace.endswith(short_hash(branch))


@pytest.mark.parametrize(
    "branch",
    [LONG, "x" * 200, "日本語", "!!!", "+++", "€/£/¥", "feature/" + "é" * 150, "fix/abc-deadbeef"],
)
def test_hostile_branches_become_valid_hashed_workspaces(branch: str) -> None:
    workspace = resolve(branch, RULES).workspace
    assert WORKSPACE_SHAPE.match(workspace)
    assert len(workspace) <= MAX_WORKSPACE_LENGTH
    assert workspace.endswith("-" + short_hash(branch))


def test_cut_names_keep_a_readable_start() -> None:
    workspace = resolve(LONG, RULES).workspace
    assert workspace.startswith("very-long-branch-name-very-long")
    assert MAX_WORKSPACE_LENGTH - 1 <= len(workspace) <= MAX_WORKSPACE_LENGTH  # a cut hyphen is dropped


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("", "empty"),
        ("   ", "whitespace"),
        ("\t\n", "whitespace"),
        ("refs/pull/12/merge", "neither a branch"),
        ("refs/remotes/origin/main", "neither a branch"),
        ("refs/tags/nightly", "not a release tag"),
        ("release/next", "release/X.Y.Z"),
        ("release/1.2", "release/X.Y.Z"),
        ("feature/has space", "whitespace"),
        ("feature/a..b", "'..'"),
        ("feature/x.lock", ".lock"),
        ("-leading-dash", "start with '-'"),
        ("trailing/", "ends with '/'"),
        ("a//b", "'//'"),
        ("what?", "? *"),
        ("feature/.hidden", "starts with '.'"),
        ("@", "'@'"),
    ],
)
def test_unusable_refs_are_rejected_with_a_clear_error(ref: str, why: str) -> None:
    with pytest.raises(WorkspaceError) as caught:
        resolve(ref, RULES)
    message = str(caught.value)
    assert repr(ref) in message, "the error names the input"
    assert why in message
    assert "accepted:" in message and "release/X.Y.Z" in message


def test_every_derived_name_fits_at_the_longest_project_and_workspace() -> None:
    assert names_over_limit("p" * PROJECT_NAME_MAX_LENGTH, "w" * MAX_WORKSPACE_LENGTH) == []
    assert names_over_limit("p" * PROJECT_NAME_MAX_LENGTH, "w" * (MAX_WORKSPACE_LENGTH + 1)) != []


def test_max_workspace_length_is_the_documented_figure() -> None:
    assert MAX_WORKSPACE_LENGTH == 41


# ---- properties over arbitrary text --------------------------------------------------------------

branch_text = st.text(min_size=1, max_size=120)
branchy_text = st.lists(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=25),
    min_size=1,
    max_size=5,
).map("/".join)
git_like_text = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._/\-éüß日本]{0,90}", fullmatch=True)
any_ref = st.one_of(branch_text, branchy_text, git_like_text)


def _resolve_or_none(ref: str):
    try:
        return resolve(ref, RULES)
    except WorkspaceError as exc:
        assert repr(ref) in str(exc)
        return None


@settings(max_examples=400, deadline=None)
@given(any_ref)
@example("feature/WEDATAIN-1-" + "x" * 200)
@example("int")
@example("int-x")
def test_any_text_gives_a_valid_bounded_workspace_or_a_clear_error(ref: str) -> None:
    target = _resolve_or_none(ref)
    if target is None:
        return
    assert WORKSPACE_SHAPE.match(target.workspace), target.workspace
    assert len(target.workspace) <= MAX_WORKSPACE_LENGTH
    if target.stage is Stage.FEATURE:  # the destroy role denies <project>-int-* and <project>-prd-* by name
        assert not target.workspace.startswith(("int-", "prd-")), target.workspace
    assert names_over_limit("p" * PROJECT_NAME_MAX_LENGTH, target.workspace) == []
    if target.stage is Stage.FEATURE:
        assert target.workspace not in PERSISTENT_WORKSPACES
    assert resolve(ref, RULES) == target, "deterministic"


@settings(max_examples=400, deadline=None)
@given(any_ref, any_ref)
@example("feature/" + "a" * 60 + "1", "feature/" + "a" * 60 + "2")
@example("int", "feature/int")
def test_branches_with_different_normalised_names_get_different_workspaces(a: str, b: str) -> None:
    first, second = _resolve_or_none(a), _resolve_or_none(b)
    assume(first is not None and second is not None)
    assume(first.stage is Stage.FEATURE and second.stage is Stage.FEATURE)
    assume(readable_name(first.name, RULES) != readable_name(second.name, RULES))
    assert first.workspace != second.workspace


@settings(max_examples=200, deadline=None)
@given(branch_text)
def test_branch_tag_values_fit_aws_tag_rules(name: str) -> None:
    value = branch_tag_value(name)
    assert len(value) <= 256
    assert re.fullmatch(r"[\w .:/=+\-@]*", value)


@settings(max_examples=200, deadline=None)
@given(git_like_text, git_like_text)
def test_long_branches_that_share_a_prefix_stay_distinct(tail_a: str, tail_b: str) -> None:
    shared = "feature/" + "a-shared-and-long-prefix-" * 3
    test_branches_with_different_normalised_names_get_different_workspaces.hypothesis.inner_test(
        shared + tail_a, shared + tail_b
    )
