"""What merging a pull request does, as one PR comment (and the job summary): the pr-diff workflow's logic.

Two sections:

1. **Against int** (first, open): the PR's merge result synthesised as `int` against `int` as the PR's base
   commit defines it, synthesised in the same job from the base sha. No credentials at all: int lives in
   another account, which the dev-account PR role cannot read, and synthesis needs none. A stateful resource
   (`infra.stateful`) that this diff deletes or replaces fails the check, unless the PR carries the label
   `ALLOW_LABEL`; so does an int that the base commit could not be synthesised into (nothing could be checked).
   Why int against int and not the branch's feature workspace against int: a feature workspace differs from
   int by stage (tags, removal policies, auto-delete resources, names that carry the workspace, such as the
   Glue database, which the diff then shows as *replaced* on every PR); merging deploys int, so int is diffed.
2. **Against the branch's own deployed workspace** (collapsed): the deployed template, read with the
   read-only PR role (GetTemplate), else an empty one. Skipped, with the reason, for a fork (GitHub gives its
   PRs no id-token, so no AWS credentials, and a read-only token) and for a head that is not a feature branch
   (`release/*`, `main`, a name `infra.workspace` refuses): it has no workspace of its own.

Sizes: GitHub refuses a comment over `COMMENT_LIMIT` characters and drops a step summary over `SUMMARY_LIMIT`
bytes; the diff bodies are cut to fit (never the marker, the headers or the destructive list, which is capped),
and both texts say that the full diffs are in the workflow artifact `ARTIFACT`.

CLI (the workflow calls it; I/O is here, the rest are pure functions): `python -m infra.pr_diff <command>`,
see `main`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Required, TypedDict

from botocore.exceptions import ClientError

from infra.stateful import STATEFUL_RESOURCE_TYPES, moved_named_resources
from infra.workspace import Stage

if TYPE_CHECKING:  # the stubs are a development dependency, not installed where the workflows run this
    from mypy_boto3_cloudformation import CloudFormationClient

ALLOW_LABEL = "allow-destructive-changes"
"""The PR label that lets a destructive change to int's stateful resources pass (the workflow's `contains()`)."""
MARKER = "<!-- cdk-diff -->"
"""The comment's first line: how the workflow finds its one comment to update."""
ARTIFACT = "cdk-diff"
INT_DIFF_FILE = "diff-int.txt"
WORKSPACE_DIFF_FILE = "diff-workspace.txt"
"""The workflow uploads these, uncut, as the artifact `ARTIFACT`."""
BASELINES_FILE = "baselines.json"
"""Written beside the baseline templates: what each stack is compared with, read back by `diff` and `comment`."""

COMMENT_LIMIT = 65_536
"""GitHub refuses a longer comment body."""
COMMENT_MAX = COMMENT_LIMIT - 536
"""What the comment may take by `comment_size`; the margin covers a count of GitHub's that differs from ours."""
SUMMARY_LIMIT = 1_048_576
"""GitHub drops a step summary over 1 MiB (bytes)."""
SUMMARY_MAX = SUMMARY_LIMIT - 16_384
DESTRUCTIVE_SHOWN = 50
"""Destructive changes listed in full; the rest are counted ("... and N more")."""
EMPTY_TEMPLATE: dict[str, Any] = {"Resources": {}}
CDK = ("npx", "--no", "cdk")
"""The CDK CLI pinned by package.json (`--no`: never download another one)."""
CUT_NOTE = f"\n... (cut to fit: the full diff is in the workflow artifact `{ARTIFACT}`)"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RESOURCE = re.compile(r"^\[(?P<op>[-~+])\] (?P<type>AWS::\S+) (?P<rest>.+)$")
_MOVE = re.compile(r" \(OR move .*\)$")
_IMPACTS = ("may be replaced", "replace", "destroy", "orphan", "import")
"""What `cdk diff` prints after a resource's logical ID (its formatImpact), longest first."""


class PrDiffError(RuntimeError):
    """A step of the PR diff that cannot go on; the message says which and why."""


# The baselines: what each stack is compared with.


@dataclass(frozen=True)
class Baseline:
    template: Path | None
    """The template to diff against; None: an empty one (nothing there yet)."""
    label: str
    """What that is, for the comment."""


def component_of(stack: str, project: str, workspace: str) -> str:
    """`<project>-<workspace>-<component>` -> component: how a stack finds its counterpart in int."""
    prefix = f"{project}-{workspace}-"
    if not stack.startswith(prefix):
        raise PrDiffError(f"stack {stack!r} is not one of workspace {workspace!r} of project {project!r}")
    return stack.removeprefix(prefix)


def int_baselines(
    stacks: Sequence[str], project: str, workspace: str, int_templates: Mapping[str, Path] | None, base: str
) -> dict[str, Baseline]:
    """For each of the branch's stacks, int's template of the same component as the base commit defines it;
    an empty template when int has no such component; `int_templates` None: the base was not synthesised."""
    found = {}
    for stack in stacks:
        counterpart = f"{project}-{Stage.INT.value}-{component_of(stack, project, workspace)}"
        if int_templates is None:
            found[stack] = Baseline(None, f"nothing: int could not be synthesised from the base commit {base}")
        elif counterpart in int_templates:
            found[stack] = Baseline(int_templates[counterpart], f"int ({counterpart}) at the base commit {base}")
        else:
            found[stack] = Baseline(None, f"nothing: int has no {counterpart} at the base commit {base}")
    return found


def gone_from_int(
    stacks: Sequence[str], project: str, workspace: str, int_templates: Mapping[str, Path] | None
) -> list[str]:
    """int's stacks whose component the branch no longer has: merging does not delete them (a deploy only
    deploys what the app defines), they stay deployed and unmanaged; the comment names them."""
    components = {f"{project}-{Stage.INT.value}-{component_of(stack, project, workspace)}" for stack in stacks}
    return sorted(set(int_templates or {}) - components)


def moved_in_int(app: Mapping[str, Path], baselines: Mapping[str, Baseline]) -> list[str]:
    """Each named resource of int that the merge result gives another logical ID, by stack
    (infra/stateful.py moved_named_resources): CloudFormation would create the new one before deleting the old,
    and the service refuse the name, so int's deploy would fail. `cdk diff` shows it as an add and a remove."""
    moved = []
    for stack, baseline in baselines.items():
        if baseline.template is None or stack not in app:
            continue
        before = json.loads(baseline.template.read_text(encoding="utf-8"))
        after = json.loads(app[stack].read_text(encoding="utf-8"))
        moved += [f"{stack}: {line}" for line in moved_named_resources(before, after)]
    return moved


def assembly_templates(cdk_out: Path) -> dict[str, Path] | None:
    """Stack name -> template file of a synthesised cloud assembly (nested assemblies included); None when
    there is no assembly (the synth failed or never ran)."""
    manifest = cdk_out / "manifest.json"
    if not manifest.is_file():
        return None
    found: dict[str, Path] = {}
    for artifact_id, artifact in json.loads(manifest.read_text(encoding="utf-8")).get("artifacts", {}).items():
        properties = artifact.get("properties", {})
        if artifact.get("type") == "aws:cloudformation:stack":
            found[properties.get("stackName") or artifact_id] = cdk_out / properties["templateFile"]
        elif artifact.get("type") == "cdk:cloud-assembly":
            found.update(assembly_templates(cdk_out / properties["directoryName"]) or {})
    return found


def write_baselines(baselines: Mapping[str, Baseline], out: Path, **facts: Any) -> None:
    """Each stack's baseline as `<out>/<stack>.json` (an empty template where there is none) and the labels,
    with `facts` about the whole section, in `<out>/BASELINES_FILE`."""
    out.mkdir(parents=True, exist_ok=True)
    for stack, baseline in baselines.items():
        target = out / f"{stack}.json"
        if baseline.template is None:
            target.write_text(json.dumps(EMPTY_TEMPLATE), encoding="utf-8")
        elif baseline.template.resolve() != target.resolve():
            shutil.copyfile(baseline.template, target)
    labels = {stack: baseline.label for stack, baseline in baselines.items()}
    (out / BASELINES_FILE).write_text(json.dumps({**facts, "stacks": labels}, indent=1), encoding="utf-8")


def write_deployed_baselines(cfn: CloudFormationClient, stacks: Sequence[str], out: Path) -> dict[str, str]:
    """For each of the branch's stacks, its deployed template (the PR role's GetTemplate), else an empty one.
    Only "does not exist" means not deployed: any other refusal (a role that may not read it) is raised, so
    that a permission problem never reads as "nothing deployed"."""
    baselines = {}
    out.mkdir(parents=True, exist_ok=True)
    for stack in stacks:
        try:
            body = cfn.get_template(StackName=stack, TemplateStage="Original")["TemplateBody"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ValidationError" or "does not exist" not in str(exc):
                raise
            baselines[stack] = Baseline(None, "nothing (not deployed yet)")
            continue
        template = out / f"{stack}.json"
        template.write_text(body if isinstance(body, str) else json.dumps(body), encoding="utf-8")
        baselines[stack] = Baseline(template, f"deployed ({stack})")
    write_baselines(baselines, out)
    return {stack: baseline.label for stack, baseline in baselines.items()}


class Baselines(TypedDict, total=False):
    """BASELINES_FILE: each stack's label, and the facts `int-baselines` adds about int's section."""

    stacks: Required[dict[str, str]]
    base: str
    int_known: bool
    gone: list[str]
    moved: list[str]
    """int's named resources the merge result moves to another logical ID (`moved_in_int`)."""


def read_baselines(out: Path) -> Baselines:
    """What `write_baselines` wrote to `out`."""
    baselines: Baselines = json.loads((out / BASELINES_FILE).read_text(encoding="utf-8"))
    return baselines


# The diff.


def cdk_diff(app: Path, stack: str, template: Path, *, cdk: Sequence[str] = CDK) -> str:
    """`cdk diff` of one synthesised stack against a template file. It reads local files only: no credentials,
    no network (it exits 0 with differences too; anything else is an error). `--exclusively`: a stack's
    dependencies would be selected too, and a fixed template compares one stack only."""
    env = {**os.environ, "NODE_NO_WARNINGS": "1", "CDK_DISABLE_VERSION_CHECK": "1"}
    command = [*cdk, "diff", "--no-color", "--exclusively", "--app", str(app), "--template", str(template), stack]
    run = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if run.returncode != 0:
        raise PrDiffError(f"cdk diff of {stack} failed (exit {run.returncode}): {(run.stdout + run.stderr)[-4000:]}")
    return _ANSI.sub("", run.stdout + run.stderr)


def diff_all(app: Path, baselines_dir: Path, *, cdk: Sequence[str] = CDK) -> str:
    """The diffs of every stack listed in `baselines_dir` against its baseline template, in that order."""
    stacks = read_baselines(baselines_dir)["stacks"]
    return "".join(cdk_diff(app, stack, baselines_dir / f"{stack}.json", cdk=cdk) for stack in stacks)


@dataclass(frozen=True)
class Destructive:
    stack: str
    resource_type: str
    logical_id: str
    path: str
    change: str  # "deleted", "replaced" or "may be replaced"

    def __str__(self) -> str:
        where = f"{self.path} ({self.logical_id})" if self.path else self.logical_id
        return f"{self.stack}: {self.resource_type} {where}: {self.change}"


def destructive_changes(diff_text: str) -> list[Destructive]:
    """Stateful resources that a `cdk diff` output deletes or replaces. A resource line is
    `[op] <type> [<construct path> ]<logical id>[ <impact>]`: a deleted resource has no path (it is not in the
    new template); `orphan` (removed but retained, its DeletionPolicy) keeps the data and is not listed."""
    found, stack = [], "?"
    for raw in diff_text.splitlines():
        line = _MOVE.sub("", _ANSI.sub("", raw).strip())
        if line.startswith("Stack "):
            stack = line.removeprefix("Stack ").strip()
            continue
        match = _RESOURCE.match(line)
        if not match or match["type"] not in STATEFUL_RESOURCE_TYPES:
            continue
        rest, impact = match["rest"], ""
        for candidate in _IMPACTS:
            if rest.endswith(f" {candidate}"):
                rest, impact = rest.removesuffix(f" {candidate}"), candidate
                break
        path, _, logical_id = rest.rpartition(" ")
        if match["op"] == "-" and impact == "destroy":
            change = "deleted"
        elif match["op"] == "~" and impact in ("replace", "may be replaced"):
            change = "replaced" if impact == "replace" else impact
        else:
            continue
        found.append(Destructive(stack, match["type"], logical_id, path, change))
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class Verdict:
    failed: bool
    message: str


def verdict(
    destructive: Sequence[Destructive], *, allowed: bool, int_known: bool, moved: Sequence[str] = ()
) -> Verdict:
    """Whether the check fails: a destructive change to int, or an int that could not be synthesised (nothing
    was checked), fails it unless the PR carries `ALLOW_LABEL`; a named resource moved to another logical ID
    fails it whatever the label (int's deploy would fail)."""
    how = f"add the label `{ALLOW_LABEL}` to the PR (that re-runs this check)"
    if moved:
        return Verdict(
            True,
            f"Merging moves {len(moved)} named resource(s) of int to another logical ID: int's deploy would "
            "fail (CloudFormation creates the new one first, and its name is taken). Keep the construct's "
            "path (a wrapper's `Default` child keeps it), or rename the resource too",
        )
    if not int_known:
        problem = "The base commit could not be synthesised as int (see the job log): nothing could be checked"
    elif destructive:
        problem = f"Merging deletes or replaces {len(destructive)} stateful resource(s) of int"
    else:
        return Verdict(False, "No stateful resource of int is deleted or replaced")
    if allowed:
        return Verdict(False, f"{problem}; allowed by the label `{ALLOW_LABEL}`")
    return Verdict(True, f"{problem}. If that is intended, {how}.")


# The comment and the summary.


def comment_size(text: str) -> int:
    """A comment's size as GitHub may count it at most: UTF-16 code units (what JavaScript's length counts;
    a code point is one or two), and a line break as two (a body may be stored with CRLF). Under
    `COMMENT_LIMIT` by this count is under it by code points and under 4 x `COMMENT_LIMIT` UTF-8 bytes."""
    return len(text.encode("utf-16-le")) // 2 + text.count("\n")


def summary_size(text: str) -> int:
    return len(text.encode("utf-8"))


def cut(text: str, limit: int, size: Callable[[str], int]) -> str:
    """`text` if it fits in `limit`, else its start (at a line break when there is one) and `CUT_NOTE`."""
    if size(text) <= limit:
        return text
    keep = limit - size(CUT_NOTE)
    if keep <= 0:
        return ""
    head = text[:keep]
    head = head[: len(head) - (size(head) - keep)] if size(head) > keep else head  # each char is >= 1 unit
    if "\n" in head:
        head = head[: head.rindex("\n")]
    return head + CUT_NOTE


def fit(texts: Sequence[str], budget: int, size: Callable[[str], int]) -> list[str]:
    """Cut the texts to take `budget` together: each gets an equal share of what is left, so a short one stays
    whole and a long one gets the rest."""
    out = list(texts)
    left = max(budget, 0)
    for rank, index in enumerate(sorted(range(len(texts)), key=lambda i: size(texts[i]))):
        out[index] = cut(texts[index], left // (len(texts) - rank), size)
        left -= size(out[index])
    return out


@dataclass(frozen=True)
class Report:
    """What the comment says, before any cutting."""

    base: str
    int_baselines: Mapping[str, str]
    int_gone: Sequence[str]
    """int's stacks that the merge result no longer defines."""
    int_diff: str
    int_known: bool
    allowed: bool
    workspace: str
    workspace_baselines: Mapping[str, str]
    workspace_diff: str | None
    skipped: str | None
    """Why the workspace section was not computed (then `workspace_diff` is None)."""
    run_url: str = ""
    cost: str = ""
    int_moved: Sequence[str] = ()
    """int's named resources the merge result moves to another logical ID: a deploy that fails."""
    """The cost-at-rest lines (`python -m infra.cost --compare`), shown under the heading; empty: none."""


def _fence(body: str) -> list[str]:
    return ["```diff", body.rstrip("\n") or "(no output)", "```"]


def _baseline_lines(baselines: Mapping[str, str]) -> list[str]:
    lines = [f"- `{stack}` against {label}" for stack, label in baselines.items()]
    return [*lines, ""] if lines else []


def render(report: Report, *, limit: int, size: Callable[[str], int]) -> str:
    """The markdown: the marker first, the int section with its verdict and destructive list (capped, never
    cut), then the workspace section collapsed; the diff bodies cut so that the whole takes at most `limit`."""
    found = destructive_changes(report.int_diff)
    judged = verdict(found, allowed=report.allowed, int_known=report.int_known, moved=report.int_moved)
    destructive = [*report.int_moved[:DESTRUCTIVE_SHOWN], *(str(d) for d in found[:DESTRUCTIVE_SHOWN])]
    if len(found) > DESTRUCTIVE_SHOWN:
        destructive.append(f"... and {len(found) - DESTRUCTIVE_SHOWN} more")
    alert = "CAUTION" if judged.failed else "WARNING"
    artifact = f"the workflow artifact `{ARTIFACT}` (`{INT_DIFF_FILE}`, `{WORKSPACE_DIFF_FILE}`)"
    where = f"{artifact} of [this run]({report.run_url})" if report.run_url else artifact

    def document(int_body: str, workspace_body: str) -> str:
        lines = [
            MARKER,
            "### What merging does: `cdk diff` against `int`",
            "",
            f"This PR's merge result, synthesised as `int`, against `int` as the base commit `{report.base}` "
            "defines it (synthesised in the job: no credentials, int lives in another account).",
            "",
            *([report.cost.rstrip("\n"), ""] if report.cost.strip() else []),
        ]
        if destructive or not report.int_known:
            lines += [f"> [!{alert}]", f"> **{judged.message}**"]
            lines += [f"> - {item}" for item in destructive] + [""]
        else:
            lines += ["No stateful resource of `int` is deleted or replaced.", ""]
        lines += [
            f"- `{stack}`: in int, no longer defined (merging leaves it deployed, unmanaged: destroy it by "
            "hand if it is to go)"
            for stack in report.int_gone
        ]
        lines += [*_baseline_lines(report.int_baselines), *_fence(int_body), ""]
        if report.workspace_diff is None:
            lines += [
                "<details><summary>Against the branch's deployed workspace: skipped</summary>",
                "",
                f"Skipped: {report.skipped}",
                "",
                "</details>",
            ]
        else:
            lines += [
                f"<details><summary>Against the branch's deployed workspace <code>{report.workspace}</code></summary>",
                "",
                *_baseline_lines(report.workspace_baselines),
                *_fence(workspace_body),
                "",
                "</details>",
            ]
        lines += ["", f"The full diffs are in {where}."]
        return "\n".join(lines)

    bodies = [report.int_diff, report.workspace_diff or ""]
    text = document(*fit(bodies, limit - size(document("", "")), size))
    return text if size(text) <= limit else cut(text, limit, size)  # only if the fixed parts alone do not fit


def render_comment(report: Report) -> str:
    return render(report, limit=COMMENT_MAX, size=comment_size)


def render_summary(report: Report) -> str:
    return render(report, limit=SUMMARY_MAX, size=summary_size)


# The workspace section's gate.


def workspace_skip_reason(*, from_this_repo: bool, stage: str | None, head: str) -> str | None:
    """Why the diff against the branch's deployed workspace cannot run, or None when it can."""
    if not from_this_repo:
        return (
            "the PR comes from a fork: GitHub gives a fork's PR no id-token, so no AWS role can be assumed "
            "(the diff against int needs none)"
        )
    if stage is None:
        return f"`{head}` names no workspace (infra.workspace refuses it), so nothing of it is deployed"
    if stage != Stage.FEATURE.value:
        return (
            f"`{head}` is not a feature branch (stage {stage}): it has no workspace of its own; what merging "
            "it does is the diff against int"
        )
    return None


def read_env_file(path: Path) -> dict[str, str]:
    """`key=value` lines (what `python -m infra.workspace` prints); {} for a missing or empty file."""
    if not path.is_file():
        return {}
    return dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)


def _flag(text: str) -> bool:
    """A workflow expression's boolean as the shell sees it ("true"/"false")."""
    if text not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected true or false")
    return text == "true"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.pr_diff", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gate = sub.add_parser("gate", help="GITHUB_OUTPUT lines: whether the deployed-workspace diff runs, else why not")
    gate.add_argument("workspace_env", type=Path, help="what `python -m infra.workspace` printed (empty: refused)")
    gate.add_argument("--head", required=True, help="the PR's head branch")
    gate.add_argument("--from-this-repo", type=_flag, required=True)
    ints = sub.add_parser("int-baselines", help="int's templates from the base commit's synth (no AWS)")
    ints.add_argument("--app", type=Path, required=True, help="the merge result synthesised as int")
    ints.add_argument("--base", type=Path, required=True, help="the base commit's cdk.out (missing: synth failed)")
    ints.add_argument("--base-ref", required=True, help="the base commit, for the comment")
    ints.add_argument("--out", type=Path, required=True)
    deployed = sub.add_parser("deployed-baselines", help="the deployed templates (the PR role: GetTemplate)")
    deployed.add_argument("--app", type=Path, required=True, help="the branch's workspace synthesised")
    deployed.add_argument("--out", type=Path, required=True)
    diff = sub.add_parser("diff", help="`cdk diff` of every stack against its baseline, into one file")
    diff.add_argument("--app", type=Path, required=True)
    diff.add_argument("--baselines", type=Path, required=True)
    diff.add_argument("--out", type=Path, required=True)
    for name, helptext in (
        ("comment", "the PR comment and the job summary"),
        ("check", "exit 1 on a destructive change to int without the label"),
    ):
        command = sub.add_parser(name, help=helptext)
        command.add_argument("--int-diff", type=Path, required=True)
        command.add_argument("--int-baselines", type=Path, required=True)
        command.add_argument("--allow-destructive", type=_flag, required=True, help=f"the PR has `{ALLOW_LABEL}`")
    report = sub.choices["comment"]
    report.add_argument("--workspace", default="")
    report.add_argument("--workspace-diff", type=Path, help="absent or missing: the section was skipped")
    report.add_argument("--workspace-baselines", type=Path)
    report.add_argument("--skipped", default="", help="why the workspace section was skipped")
    report.add_argument("--run-url", default="")
    report.add_argument("--cost", type=Path, help="the cost lines (python -m infra.cost --compare); absent: none")
    report.add_argument("--comment", type=Path, required=True)
    report.add_argument("--summary", type=Path, required=True, help="appended to ($GITHUB_STEP_SUMMARY)")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except PrDiffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "gate":
        stage = read_env_file(args.workspace_env).get("stage")
        reason = workspace_skip_reason(from_this_repo=args.from_this_repo, stage=stage, head=args.head)
        print(f"deployed={'false' if reason else 'true'}\nskipped={reason or ''}")
    elif args.command == "int-baselines":
        from infra.config import load_config

        app = assembly_templates(args.app)
        if app is None:
            raise PrDiffError(f"{args.app} holds no synthesised app (run the synth of the merge result first)")
        base = assembly_templates(args.base)
        project = load_config().project
        found = int_baselines(list(app), project, Stage.INT.value, base, args.base_ref)
        write_baselines(
            found,
            args.out,
            base=args.base_ref,
            int_known=base is not None,
            gone=gone_from_int(list(app), project, Stage.INT.value, base),
            moved=moved_in_int(app, found),
        )
        print(json.dumps({stack: baseline.label for stack, baseline in found.items()}, indent=1))
    elif args.command == "deployed-baselines":
        import boto3

        app = assembly_templates(args.app)
        if app is None:
            raise PrDiffError(f"{args.app} holds no synthesised app (run `make synth` first)")
        print(json.dumps(write_deployed_baselines(boto3.client("cloudformation"), list(app), args.out), indent=1))
    elif args.command == "diff":
        args.out.write_text(diff_all(args.app, args.baselines), encoding="utf-8")
    elif args.command == "check":
        facts = read_baselines(args.int_baselines)
        changes = destructive_changes(args.int_diff.read_text(encoding="utf-8"))
        moved = facts.get("moved", [])
        judged = verdict(changes, allowed=args.allow_destructive, int_known=facts["int_known"], moved=moved)
        for item in [*moved, *changes]:
            print(f"  {item}", file=sys.stderr)
        print(f"{'::error title=Destructive changes to int::' if judged.failed else ''}{judged.message}")
        return 1 if judged.failed else 0
    else:
        report = _report(args)
        args.comment.write_text(render_comment(report), encoding="utf-8")
        with args.summary.open("a", encoding="utf-8") as summary:
            summary.write(render_summary(report) + "\n")
    return 0


def _report(args: argparse.Namespace) -> Report:
    facts = read_baselines(args.int_baselines)
    workspace_diff: str | None = None
    workspace_labels: Mapping[str, str] = {}
    if args.workspace_diff is not None and args.workspace_diff.is_file():
        workspace_diff = args.workspace_diff.read_text(encoding="utf-8")
        workspace_labels = read_baselines(args.workspace_baselines)["stacks"] if args.workspace_baselines else {}
    elif not args.skipped:
        raise PrDiffError("no diff against the deployed workspace, and no reason why it was skipped")
    return Report(
        base=facts["base"],
        int_baselines=facts["stacks"],
        int_gone=facts.get("gone", []),
        int_diff=args.int_diff.read_text(encoding="utf-8"),
        int_known=facts["int_known"],
        allowed=args.allow_destructive,
        workspace=args.workspace,
        workspace_baselines=workspace_labels,
        workspace_diff=workspace_diff,
        skipped=args.skipped or None,
        run_url=args.run_url,
        cost=args.cost.read_text(encoding="utf-8") if args.cost is not None and args.cost.is_file() else "",
        int_moved=facts.get("moved", []),
    )


if __name__ == "__main__":
    sys.exit(main())
