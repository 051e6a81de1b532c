"""The exact outputs of the naming rule that people and the workflows read: every error's wording, every
boundary of a length or a character, every field of a target. What test_workspace.py states as properties,
here pinned value by value (mutation testing, `make mutation`, found each of these unchecked)."""

from __future__ import annotations

import hashlib

import pytest

from infra.naming import MAX_WORKSPACE_LENGTH
from infra.workspace import (
    ACCEPTED,
    HASH_LENGTH,
    NamingRules,
    Stage,
    Target,
    WorkspaceError,
    branch_tag_value,
    feature_workspace,
    feature_workspace_problem,
    full_ref,
    git_ref_problem,
    owner_tag_value,
    readable_name,
    resolve,
    short_hash,
    split_ref,
)

CHARACTERS = "it contains whitespace, a control character or one of ~ ^ : ? * [ \\"
DOTS = "it contains '..' or '@{', or is '@'"
SLASHES = "it starts or ends with '/', ends with '.', or contains '//'"
SEGMENTS = "a path segment starts with '.' or ends with '.lock'"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "the name is empty"),
        ("-x", "a branch or tag name cannot start with '-'"),
        ("a b", CHARACTERS),
        ("a\x1fb", CHARACTERS),  # the last control character below space
        ("a\x7fb", CHARACTERS),  # DEL
        ("a~b", CHARACTERS),
        ("a..b", DOTS),
        ("a@{b", DOTS),
        ("@", DOTS),
        ("/a", SLASHES),
        ("a/", SLASHES),
        ("a//b", SLASHES),
        ("a.", SLASHES),
        ("a/.b", SEGMENTS),
        ("a.lock", SEGMENTS),
        ("a/b.lock/c", SEGMENTS),
        ("a\x80b", None),  # git takes bytes above DEL
        ("a@b", None),
        ("feature/x.y-z", None),
    ],
)
def test_git_ref_problems_word_for_word(name: str, problem: str | None) -> None:
    assert git_ref_problem(name) == problem


def test_a_workspace_error_names_the_ref_the_problem_and_what_is_accepted() -> None:
    error = WorkspaceError("refs/pull/1", "it is odd")
    assert str(error) == f"cannot derive a workspace from ref 'refs/pull/1': it is odd; {ACCEPTED}"
    assert error.ref == "refs/pull/1"


def test_a_ticket_key_is_matched_in_any_case_and_an_unknown_one_shortened_to_two_letters() -> None:
    rules = NamingRules(ticket_keys=(("WEDATAIN", "wdi"),))
    assert [rules.abbreviation(k) for k in ("WEDATAIN", "wedatain", "WeDaTaIn", "ABCD")] == ["wdi", "wdi", "wdi", "ab"]
    assert rules.is_configured_key("wedatain") and not rules.is_configured_key("ABCD")


@pytest.mark.parametrize(
    ("ref", "split"),
    [
        ("refs/heads/feature/x", ("branch", "feature/x")),
        ("refs/tags/v1.2.3", ("tag", "v1.2.3")),
        ("1.2.3", ("tag", "1.2.3")),
        ("v1.2.3", ("tag", "v1.2.3")),
        ("feature/x", ("branch", "feature/x")),
    ],
)
def test_a_ref_splits_into_its_type_and_name(ref: str, split: tuple[str, str]) -> None:
    assert split_ref(ref) == split


def test_a_ref_outside_heads_and_tags_is_refused_in_words() -> None:
    with pytest.raises(WorkspaceError, match=r"it is neither a branch \(refs/heads/\.\.\.\) nor a tag"):
        split_ref("refs/pull/1/merge")


def test_one_prefix_is_dropped_and_the_rest_of_the_path_kept() -> None:
    rules = NamingRules(branch_prefixes=("feature",))
    assert readable_name("feature/a/b", rules) == "a-b"
    assert readable_name("Feature/a", rules) == "a", "a prefix in any case"
    assert readable_name("other/a", rules) == "other-a"


def test_a_readable_name_of_exactly_the_limit_is_kept_and_one_over_is_cut_and_hashed() -> None:
    rules = NamingRules()
    assert feature_workspace("abcdefghijkl", rules, max_length=12) == "abcdefghijkl"
    cut = feature_workspace("abcdefghijklm", rules, max_length=12)
    assert cut == f"abc-{short_hash('abcdefghijklm')}" and len(cut) == 12
    assert feature_workspace("ab-cdefghijklm", rules, max_length=12) == f"ab-{short_hash('ab-cdefghijklm')}", (
        "no hyphen left before the hash's"
    )
    assert len(short_hash("x")) == HASH_LENGTH == 8
    assert short_hash("x") == hashlib.sha256(b"x").hexdigest()[:8]


@pytest.mark.parametrize("ref", [None, "", "   ", 7])
def test_an_empty_or_non_text_ref_is_a_workspace_error(ref) -> None:
    with pytest.raises(WorkspaceError, match="it is empty or only whitespace"):
        resolve(ref)


@pytest.mark.parametrize(
    ("ref", "target"),
    [
        ("main", Target("main", "branch", "main", Stage.INT, "int")),
        ("refs/heads/main", Target("refs/heads/main", "branch", "main", Stage.INT, "int")),
        ("refs/tags/v1.2.3", Target("refs/tags/v1.2.3", "tag", "v1.2.3", Stage.PRD, "prd")),
        ("release/1.4.0", Target("release/1.4.0", "branch", "release/1.4.0", Stage.PRD, "prd")),
        ("feature/x", Target("feature/x", "branch", "feature/x", Stage.FEATURE, "feature-x")),
    ],
)
def test_every_field_of_a_target(ref: str, target: Target) -> None:
    assert resolve(ref) == target
    assert target.full_ref == ("refs/tags/v1.2.3" if target.ref_type == "tag" else f"refs/heads/{target.name}")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("release/next", "release branches must be named release/X.Y.Z (e.g. release/1.4.0)"),
        ("refs/tags/nightly", "tag 'nightly' is not a release tag (X.Y.Z or vX.Y.Z)"),
        ("feature/a b", CHARACTERS),
    ],
)
def test_a_refused_ref_says_why(ref: str, message: str) -> None:
    with pytest.raises(WorkspaceError) as raised:
        resolve(ref)
    assert str(raised.value) == f"cannot derive a workspace from ref {ref!r}: {message}; {ACCEPTED}"


def test_a_branch_tag_value_keeps_what_tags_allow_and_is_cut_at_256() -> None:
    allowed = "feature/x_y z.1:2=3+4-5@6"
    assert branch_tag_value(allowed) == allowed
    assert branch_tag_value("feature/x!&") == "feature/x__"
    assert branch_tag_value("x" * 300) == "x" * 256


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("we-1234-add-x", None),
        ("a" * MAX_WORKSPACE_LENGTH, None),
        ("a" * (MAX_WORKSPACE_LENGTH + 1), f"a workspace is at most {MAX_WORKSPACE_LENGTH} characters"),
        ("We-1", "a workspace is lowercase letters and digits in words joined by single hyphens (e.g. we-1234-add-x)"),
        ("a--b", "a workspace is lowercase letters and digits in words joined by single hyphens (e.g. we-1234-add-x)"),
        ("int", "int and prd are never destroyed by a workflow"),
        ("prd-x", "int and prd are never destroyed by a workflow"),
    ],
)
def test_a_workspace_typed_by_hand_is_checked_word_for_word(name: str, problem: str | None) -> None:
    assert feature_workspace_problem(name) == problem


def test_full_refs_and_owner_tags() -> None:
    assert full_ref("refs/heads/x") == "refs/heads/x" and full_ref("refs/tags/v1") == "refs/tags/v1"
    assert full_ref("feature/x") == "refs/heads/feature/x" and full_ref("refsx") == "refs/heads/refsx"
    for ref in ("refs/heads/feature/x", "refs/tags/v1.0.0"):
        assert owner_tag_value(ref) == hashlib.sha256(ref.encode()).hexdigest()
    with pytest.raises(ValueError, match=r"owner 'feature/x' is not a full ref: give refs/heads/<branch> or"):
        owner_tag_value("feature/x")
