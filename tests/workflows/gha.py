"""A small GitHub Actions runner for the tests: runs a workflow file's jobs for one event the way GitHub
does, so the tests assert what a workflow *does* for an event (which jobs run, in which environment,
with which role, calling which commands), not what its text contains.

- Expressions (`if:`, `${{ }}`) are evaluated with GitHub's rules for the subset the workflows use:
  literals, context paths, `== != && || !`, parentheses, `always()`, `success()`, `contains()`;
  `&&`/`||` give an operand (so `a && 'x' || 'y'` is a ternary); loose equality coerces mismatched
  types to numbers (null -> 0) and compares strings case-insensitively.
- `run:` steps run in bash, with `${{ }}` substituted first (as GitHub does), the step's env, and
  $GITHUB_OUTPUT / $GITHUB_STEP_SUMMARY / $GITHUB_EVENT_PATH files. They run in a scratch directory whose
  `.venv/bin/python` is a shim: the project's pure CLIs (infra.workspace, infra.github_events, `releases
  ref`) run for real; anything that would call AWS, GitHub or the CDK (lifecycle, smoke, `releases
  check`, npx, make, git ls-remote, gh) is recorded and answered from the scenario's `fakes`.
- `uses:` steps are recorded with their evaluated `with:`; none runs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
REAL_MODULES = ("infra.workspace", "infra.github_events", "infra.releases ref")
"""`python -m` commands that run for real: pure, no AWS (a test of the CLIs' own behaviour lives elsewhere)."""

# --- expressions ----------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||!|\(|\)|,)"
    r"|(?P<name>[A-Za-z_][\w-]*(?:\.[\w*-]+)*))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    found, pos = [], 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"cannot parse expression at {text[pos:]!r}")
        kind = match.lastgroup or ""
        found.append((kind, match[kind]))
        pos = match.end()
    return found


def _number(value: Any) -> float:
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.lower() == right.lower()
    if type(left) is type(right):
        return bool(left == right)
    return _number(left) == _number(right)


def truthy(value: Any) -> bool:
    return value not in (None, False, 0, "", 0.0)


class Expression:
    """One `${{ }}` expression over a context (a mapping of mappings)."""

    def __init__(self, text: str, context: Mapping[str, Any]) -> None:
        self.tokens, self.pos, self.context = _tokens(text), 0, context

    def value(self) -> Any:
        result = self._or()
        if self.pos != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.pos]}")
        return result

    def _peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def _or(self) -> Any:
        left = self._and()
        while self._peek() == "||":
            self.pos += 1
            right = self._and()
            left = left if truthy(left) else right
        return left

    def _and(self) -> Any:
        left = self._compare()
        while self._peek() == "&&":
            self.pos += 1
            right = self._compare()
            left = right if truthy(left) else left
        return left

    def _compare(self) -> Any:
        left = self._unary()
        while self._peek() in ("==", "!="):
            op = self.tokens[self.pos][1]
            self.pos += 1
            right = self._unary()
            left = _equal(left, right) if op == "==" else not _equal(left, right)
        return left

    def _unary(self) -> Any:
        if self._peek() == "!":
            self.pos += 1
            return not truthy(self._unary())
        return self._primary()

    def _primary(self) -> Any:
        kind, text = self.tokens[self.pos]
        self.pos += 1
        if text == "(":
            inner = self._or()
            self.pos += 1  # ")"
            return inner
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if self._peek() == "(":
            self.pos += 1
            args = []
            while self._peek() != ")":
                args.append(self._or())
                if self._peek() == ",":
                    self.pos += 1
            self.pos += 1
            return self._call(text, args)
        return self._lookup(text)

    def _call(self, name: str, args: list[Any]) -> Any:
        if name in ("always", "success"):
            return name == "always" or self.context.get("_success", True)
        if name == "contains":
            haystack, needle = args
            if isinstance(haystack, list):
                return any(_equal(item, needle) for item in haystack)
            return str(needle).lower() in str(haystack or "").lower()
        raise ValueError(f"function {name}() is not supported by this runner")

    def _lookup(self, path: str) -> Any:
        value: Any = self.context
        for part in path.split("."):
            if part == "*" and isinstance(value, list):
                continue
            if isinstance(value, list):
                value = [item.get(part) if isinstance(item, Mapping) else None for item in value]
            elif isinstance(value, Mapping):
                value = value.get(part)
            else:
                return None
        return value


def evaluate(text: str, context: Mapping[str, Any]) -> Any:
    text = text.strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    return Expression(text, context).value()


def render(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def substitute(text: str, context: Mapping[str, Any]) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: render(evaluate(m[1], context)), text)


# --- running a workflow ---------------------------------------------------------------------------------


@dataclass
class Scenario:
    event_name: str
    payload: dict[str, Any]
    ref: str
    head_ref: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    fakes: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Command prefix (`git ls-remote`, `infra.lifecycle destroy`, `npx cdk deploy`) -> (exit, stdout);
    a recorded call nobody answers exits 0 with no output."""


@dataclass
class JobRun:
    name: str
    ran: bool
    ok: bool = True
    environment: str | None = None
    role: str | None = None
    commands: list[str] = field(default_factory=list)
    uses: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""


SHIM = """#!/bin/sh
# the workflow's `.venv/bin/python`, or a faked tool: record, then run for real or answer from the fakes
exec "{python}" "{runner}" "$0" "$@"
"""


def _shim_main() -> None:
    """Entry point of the shims (this file run as a script): argv = [shim path, args...]."""
    tool, args = Path(sys.argv[1]).name, sys.argv[2:]
    log = Path(os.environ["GHA_LOG"])
    line = " ".join([tool, *args])
    with log.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps([tool, *args]) + "\n")
    module_call = " ".join(args).removeprefix("-m ") if args[:1] == ["-m"] else ""
    if tool == "python" and any(module_call == real or module_call.startswith(f"{real} ") for real in REAL_MODULES):
        os.execv(os.environ["GHA_PYTHON"], [os.environ["GHA_PYTHON"], *args])
    answers = json.loads(os.environ["GHA_FAKES"])
    for prefix, (code, out) in sorted(answers.items(), key=lambda item: -len(item[0])):
        if line.removeprefix("python -m ").startswith(prefix) or line.startswith(prefix):
            sys.stdout.write(out)
            sys.exit(code)
    if tool == "python" and args[:1] == ["-c"]:
        os.execv(os.environ["GHA_PYTHON"], [os.environ["GHA_PYTHON"], *args])
    sys.exit(0)  # an unanswered tool call succeeds silently (recorded all the same)


def run_workflow(name: str, scenario: Scenario, workdir: Path) -> dict[str, JobRun]:
    """Run the workflow's jobs (in `needs` order) for the scenario; every job's record by name."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / f"{name}.yml").read_text())
    workdir.mkdir(parents=True, exist_ok=True)
    event_path = workdir / "event.json"
    event_path.write_text(json.dumps(scenario.payload))
    bin_dir = workdir / ".venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in ("python", "npx", "git", "gh", "make"):
        shim = bin_dir / tool
        shim.write_text(SHIM.format(python=sys.executable, runner=Path(__file__).resolve()))
        shim.chmod(0o755)
    github = {
        "event_name": scenario.event_name,
        "event": scenario.payload,
        "ref": scenario.ref,
        "head_ref": scenario.head_ref,
        "repository": "acme/data-platform",
        "token": "gh-token",
    }
    runs: dict[str, JobRun] = {}
    for job_name, job in _in_needs_order(workflow["jobs"]):
        needs = _needs(job)
        context = {
            "github": github,
            "inputs": scenario.inputs,
            "job": {"status": "success"},
            "needs": {n: {"outputs": runs[n].outputs, "result": _result(runs[n])} for n in needs},
            "_success": all(runs[n].ran and runs[n].ok for n in needs),
        }
        if not _runs(job, context):
            runs[job_name] = JobRun(job_name, ran=False)
            continue
        runs[job_name] = _run_job(job_name, job, context, scenario, workdir, bin_dir, event_path)
    return runs


def _needs(job: Mapping[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _runs(node: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    """A job's or step's `if:` as GitHub applies it: `success()` when absent, and unless the condition
    says `always()`, nothing runs after a failure (context["_success"])."""
    condition = str(node.get("if", "success()"))
    return truthy(evaluate(condition, context)) and ("always()" in condition or bool(context["_success"]))


def _result(run: JobRun) -> str:
    return "skipped" if not run.ran else ("success" if run.ok else "failure")


def _in_needs_order(jobs: Mapping[str, Any]) -> list[tuple[str, Any]]:
    done: list[str] = []
    while len(done) < len(jobs):
        for name, job in jobs.items():
            if name not in done and all(n in done for n in _needs(job)):
                done.append(name)
    return [(name, jobs[name]) for name in done]


def _run_job(
    name: str,
    job: Mapping[str, Any],
    context: dict[str, Any],
    scenario: Scenario,
    workdir: Path,
    bin_dir: Path,
    event_path: Path,
) -> JobRun:
    run = JobRun(name, ran=True)
    environment = job.get("environment")
    run.environment = (
        render(evaluate(environment, context)) if isinstance(environment, str) and "${{" in environment else environment
    )
    context = {**context, "steps": {}, "env": {}}
    job_env = {k: substitute(str(v), context) for k, v in (job.get("env") or {}).items()}
    log = workdir / f"{name}.log"
    log.write_text("")
    summary = workdir / f"{name}.summary"
    summary.write_text("")
    for step in job.get("steps", []):
        context["_success"] = run.ok
        if not _runs(step, context):
            continue
        step_env = {**job_env, **{k: substitute(str(v), context) for k, v in (step.get("env") or {}).items()}}
        if "uses" in step:
            given = {k: substitute(str(v), context) for k, v in (step.get("with") or {}).items()}
            run.uses.append((step["uses"], given))
            if step["uses"].startswith("aws-actions/configure-aws-credentials"):
                run.role = given["role-to-assume"]
            continue
        output = workdir / "output"
        output.write_text("")
        script = substitute(step["run"], context)
        env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "HOME": os.environ.get("HOME", "/tmp"),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_EVENT_NAME": scenario.event_name,
            "GITHUB_REF": scenario.ref,
            "GITHUB_REF_NAME": scenario.ref.split("/", 2)[-1],
            "GITHUB_REPOSITORY": "acme/data-platform",
            "GHA_LOG": str(log),
            "GHA_PYTHON": sys.executable,
            "GHA_FAKES": json.dumps(scenario.fakes),
            "PYTHONPATH": str(ROOT),
            **step_env,
        }
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            run.ok = False
        if step.get("id"):
            values = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
            context["steps"][step["id"]] = {
                "outputs": values,
                "outcome": "success" if done.returncode == 0 else "failure",
            }
    run.commands = [" ".join(shlex.quote(part) for part in json.loads(line)) for line in log.read_text().splitlines()]
    run.outputs = {k: render(evaluate(str(v), context)) for k, v in (job.get("outputs") or {}).items()}
    run.summary = summary.read_text()
    return run


if __name__ == "__main__":
    _shim_main()
