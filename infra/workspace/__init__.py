"""Git ref -> (stage, workspace): the one rule that app.py and every workflow share.

    main                              -> int / int
    release/1.2.3, 1.2.3, v1.2.3      -> prd / prd        (also refs/heads/..., refs/tags/...)
    feature/WEDATAIN-1234-some-feature -> feature / we-1234-some-feature
    anything else that git accepts    -> feature / a slug of the branch

A feature workspace is lowercase `[a-z0-9-]`, starts with a letter, has no double or trailing
hyphen and is at most `MAX_WORKSPACE_LENGTH` (41) characters: the longest for which every name
derived from it fits its AWS limit (see `infra.naming`). When the readable slug cannot be used as
it is (too long, a reserved name, or it already ends like a hash), it is cut and `-<8 hex>` of
the full branch name is appended. Every output that ends in such a suffix therefore carries its
own branch's hash, which is why two branches whose slugs differ never share a workspace.

CLI (the workflows call this): `python -m infra.workspace <ref> [--json | --stacks]`, exit 2 on bad input
(infra/workspace/cli.py: it reads the config, which this module must not import).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from infra.naming import MAX_WORKSPACE_LENGTH


class Stage(StrEnum):
    FEATURE = "feature"
    INT = "int"
    PRD = "prd"

    @property
    def is_persistent(self) -> bool:
        return self is not Stage.FEATURE


PERSISTENT_WORKSPACES = frozenset({Stage.INT.value, Stage.PRD.value})
PERSISTENT_PREFIXES = tuple(f"{name}-" for name in sorted(PERSISTENT_WORKSPACES))
"""No feature workspace starts with these: `<project>-int-*` and `<project>-prd-*` name only int's and prd's
resources (the destroy role denies them by those names)."""
"""Workspaces of persistent stages; a feature branch must never produce one of these."""

HASH_LENGTH = 8
FALLBACK_PREFIX = "ws"
_VERSION = r"v?\d+\.\d+\.\d+"
_RELEASE_BRANCH = re.compile(rf"^release/{_VERSION}$")
_RELEASE_TAG = re.compile(rf"^{_VERSION}$")
_HASH_SUFFIX = re.compile(rf"-[0-9a-f]{{{HASH_LENGTH}}}$")
_TICKET = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9]+)-(?P<number>\d+)(?P<rest>$|[^A-Za-z0-9].*)", re.DOTALL)
_FORBIDDEN_IN_REFS = set(" ~^:?*[\\")

ACCEPTED = (
    "accepted: a git branch name (main, release/X.Y.Z or any other valid branch, e.g. "
    "feature/WEDATAIN-1234-some-feature), refs/heads/<branch>, or a release tag "
    "X.Y.Z / vX.Y.Z / refs/tags/vX.Y.Z"
)


class WorkspaceError(ValueError):
    """A ref that cannot become a workspace; the message names it and says what is accepted."""

    def __init__(self, ref: str, problem: str) -> None:
        super().__init__(f"cannot derive a workspace from ref {ref!r}: {problem}; {ACCEPTED}")
        self.ref = ref


@dataclass(frozen=True)
class NamingRules:
    """The parts of the naming rule that a project configures."""

    ticket_keys: tuple[tuple[str, str], ...] = ()
    """Jira-style project keys and their abbreviation, e.g. (("WEDATAIN", "we"),)."""
    branch_prefixes: tuple[str, ...] = ()
    """Leading path segments dropped from a branch, e.g. ("feature", "bugfix")."""

    def abbreviation(self, key: str) -> str:
        for known, short in self.ticket_keys:
            if known.lower() == key.lower():
                return short
        return key[:2].lower()

    def is_configured_key(self, key: str) -> bool:
        return any(known.lower() == key.lower() for known, _ in self.ticket_keys)


@dataclass(frozen=True)
class Target:
    """What one ref deploys to."""

    ref: str
    ref_type: str  # "branch" or "tag"
    name: str  # the branch or tag without refs/heads/ or refs/tags/
    stage: Stage
    workspace: str

    @property
    def full_ref(self) -> str:
        """`refs/heads/<branch>` or `refs/tags/<tag>`, however the ref was given."""
        return f"refs/{'tags' if self.ref_type == 'tag' else 'heads'}/{self.name}"


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def git_ref_problem(name: str) -> str | None:
    """Why git itself would refuse `name` as a branch or tag (git check-ref-format), or None."""
    if not name:
        return "the name is empty"
    if name.startswith("-"):
        return "a branch or tag name cannot start with '-'"
    if any(ch in _FORBIDDEN_IN_REFS or ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "it contains whitespace, a control character or one of ~ ^ : ? * [ \\"
    if ".." in name or "@{" in name or name == "@":
        return "it contains '..' or '@{', or is '@'"
    if name.startswith("/") or name.endswith("/") or "//" in name or name.endswith("."):
        return "it starts or ends with '/', ends with '.', or contains '//'"
    if any(part.startswith(".") or part.endswith(".lock") for part in name.split("/")):
        return "a path segment starts with '.' or ends with '.lock'"
    return None


def split_ref(ref: str) -> tuple[str, str]:
    """Return (ref_type, name) for a full or short ref; version-like short names are tags."""
    if ref.startswith("refs/heads/"):
        return "branch", ref.removeprefix("refs/heads/")
    if ref.startswith("refs/tags/"):
        return "tag", ref.removeprefix("refs/tags/")
    if ref.startswith("refs/"):
        raise WorkspaceError(ref, "it is neither a branch (refs/heads/...) nor a tag (refs/tags/...)")
    return ("tag" if _RELEASE_TAG.match(ref) else "branch"), ref


def slugify(text: str) -> str:
    """Lowercase ASCII letters, digits and single hyphens; accents folded, the rest dropped."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def readable_name(branch: str, rules: NamingRules) -> str:
    """The branch's normalised, human-readable form, before any length or uniqueness rule.

    One configured type prefix is dropped (`feature/`); a leading ticket key is abbreviated
    (`WEDATAIN-1234` -> `we-1234`). Empty when nothing usable is left.
    """
    head, _, tail = branch.partition("/")
    if tail and head.lower() in rules.branch_prefixes:
        branch = tail
    ticket = _TICKET.match(branch)
    if ticket and (ticket["key"].isupper() or rules.is_configured_key(ticket["key"])):
        branch = f"{rules.abbreviation(ticket['key'])}-{ticket['number']}{ticket['rest']}"
    slug = slugify(branch)
    if slug and (not slug[0].isalpha() or slug.startswith(PERSISTENT_PREFIXES)):
        slug = f"{FALLBACK_PREFIX}-{slug}"  # a feature workspace never starts like int's or prd's names
    return slug


def feature_workspace(branch: str, rules: NamingRules, max_length: int = MAX_WORKSPACE_LENGTH) -> str:
    """The workspace of a feature branch (see the module docstring for the rule)."""
    readable = readable_name(branch, rules)
    needs_hash = (
        not readable
        or len(readable) > max_length
        or readable in PERSISTENT_WORKSPACES
        or _HASH_SUFFIX.search(readable) is not None
    )
    if not needs_hash:
        return readable
    if readable in PERSISTENT_WORKSPACES:  # `int` itself: ws-int-<hash>, never int-<hash>
        readable = f"{FALLBACK_PREFIX}-{readable}"
    keep = readable[: max_length - HASH_LENGTH - 1].rstrip("-") or FALLBACK_PREFIX
    return f"{keep}-{short_hash(branch)}"


def resolve(ref: str, rules: NamingRules = NamingRules()) -> Target:
    """Map a git ref to its stage and workspace, or raise WorkspaceError."""
    if not isinstance(ref, str) or not ref.strip():
        raise WorkspaceError(str(ref), "it is empty or only whitespace")
    ref_type, name = split_ref(ref)
    problem = git_ref_problem(name)
    if problem:
        raise WorkspaceError(ref, problem)
    if ref_type == "tag":
        if not _RELEASE_TAG.match(name):
            raise WorkspaceError(ref, f"tag {name!r} is not a release tag (X.Y.Z or vX.Y.Z)")
        return Target(ref, ref_type, name, Stage.PRD, Stage.PRD.value)
    if name == "main":
        return Target(ref, ref_type, name, Stage.INT, Stage.INT.value)
    if _RELEASE_BRANCH.match(name):
        return Target(ref, ref_type, name, Stage.PRD, Stage.PRD.value)
    if name.startswith("release/"):
        raise WorkspaceError(ref, "release branches must be named release/X.Y.Z (e.g. release/1.4.0)")
    return Target(ref, ref_type, name, Stage.FEATURE, feature_workspace(name, rules))


def branch_tag_value(name: str) -> str:
    """A branch name as an AWS tag value: tags allow letters, digits, spaces and _.:/=+-@ only (so this
    is for people: `feature/x!` and `feature/x&` give one value; owner_tag_value tells them apart)."""
    return re.sub(r"[^\w .:/=+\-@]", "_", name)[:256]


_WORKSPACE_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def feature_workspace_problem(name: str) -> str | None:
    """Why `name` cannot be a feature workspace (a name typed by hand, for a manual destroy), or None."""
    if not _WORKSPACE_NAME.match(name):
        return "a workspace is lowercase letters and digits in words joined by single hyphens (e.g. we-1234-add-x)"
    if len(name) > MAX_WORKSPACE_LENGTH:
        return f"a workspace is at most {MAX_WORKSPACE_LENGTH} characters"
    if name in PERSISTENT_WORKSPACES or name.startswith(PERSISTENT_PREFIXES):
        return "int and prd are never destroyed by a workflow"
    return None


def full_ref(ref_or_branch: str) -> str:
    """A ref as given (`refs/heads/x`, `refs/tags/v1`) or a bare branch name (`feature/x`), in full."""
    return ref_or_branch if ref_or_branch.startswith("refs/") else f"refs/heads/{ref_or_branch}"


def owner_tag_value(full_ref: str) -> str:
    """Who owns a workspace, exactly and within AWS's tag rules: the SHA-256 (hex) of the full ref
    (`refs/heads/feature/x`), which no two refs share and whatever characters or length the ref has."""
    if not full_ref.startswith(("refs/heads/", "refs/tags/")):
        raise ValueError(f"owner {full_ref!r} is not a full ref: give refs/heads/<branch> or refs/tags/<tag>")
    return hashlib.sha256(full_ref.encode("utf-8")).hexdigest()
