"""The arguments a Glue job gets are the ones its script reads: the stack's default arguments plus what the
state machine passes, or the code that starts it (the promotion: lambdas/promote, infra/backfill.py), against
the names `getResolvedOptions` asks for in glue/<job>/job.py (a rename on one side would otherwise fail first
in AWS, at the job's start)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from infra.naming import Component
from pipeline import job_arguments
from tests.infra.state_machine import definition

ROOT = Path(__file__).resolve().parents[2]
GLUE_OWN = {
    "--job-bookmark-option",
    "--enable-metrics",
    "--enable-observability-metrics",
    "--extra-py-files",
    "--enable-continuous-cloudwatch-log",
    "--continuous-log-logGroup",
    "--job-language",
    "--enable-glue-datacatalog",
    "--enable-job-insights",
    "--enable-spark-ui",
    "--spark-event-logs-path",
}
"""Arguments Glue itself reads (special job parameters), not the script."""


def script_reads(script: Path) -> set[str]:
    """The flags `getResolvedOptions` asks for: a literal list, or a comprehension over a tuple of
    pipeline/job_arguments.py."""
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "getResolvedOptions":
            names = node.args[1]
            if isinstance(names, ast.ListComp):
                source = names.generators[0].iter
                assert isinstance(source, ast.Name), f"{script}: read the names of a job_arguments tuple"
                return {argument.flag for argument in getattr(job_arguments, source.id)}
            return {f"--{element.value}" for element in names.elts}  # type: ignore[attr-defined]
    raise AssertionError(f"{script}: no getResolvedOptions call")


def _flag(key: ast.expr) -> str | None:
    """A literal `"--name"`, or `Argument.NAME.flag`."""
    if isinstance(key, ast.Constant):
        return str(key.value)
    if isinstance(key, ast.Attribute) and key.attr == "flag" and isinstance(key.value, ast.Attribute):
        return job_arguments.Argument[key.value.attr].flag
    return None


def states(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if node.get("Type") == "Task":
            found.append(node)
        for value in node.values():
            found += states(value)
    elif isinstance(node, list):
        for value in node:
            found += states(value)
    return found


STARTED_BY_CODE = {"staging-to-curated": [ROOT / "lambdas" / "promote" / "handler.py", ROOT / "infra" / "backfill.py"]}
"""Jobs the state machine does not start (by the end of the job's name), and the modules that do."""


def code_passes(modules: list[Path]) -> set[str]:
    """The argument names of every `start_job_run(..., Arguments={...})` in `modules`."""
    names = set()
    for module in modules:
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "start_job_run":
                (arguments,) = [k.value for k in node.keywords if k.arg == "Arguments"]
                assert isinstance(arguments, ast.Dict), f"{module}: Arguments must be a literal dict here"
                names |= {flag for key in arguments.keys if key is not None and (flag := _flag(key))}
    assert names, f"no start_job_run in {modules}"
    return names


def test_every_glue_job_gets_exactly_the_arguments_its_script_reads(workspaces) -> None:
    for workspace in workspaces.values():
        template = workspace.templates[Component.ETL].to_json()
        passed: dict[str, set[str]] = {}
        for task in states(definition(template)):
            if "glue:startJobRun" in str(task.get("Resource")):
                parameters = task["Parameters"]
                passed[parameters["JobName"]] = {k.removesuffix(".$") for k in parameters.get("Arguments", {})}
        jobs = {
            logical_id: r["Properties"]
            for logical_id, r in template["Resources"].items()
            if r["Type"] == "AWS::Glue::Job"
        }
        by_code = {lid for lid, job in jobs.items() if any(e in job["Name"] for e in STARTED_BY_CODE)}
        assert len(jobs) >= 2 and len(by_code) == len(jobs) // 2
        assert set(passed) == {f"REF:{logical_id}" for logical_id in jobs.keys() - by_code}, "the state machine's"
        for logical_id in by_code:
            (modules,) = [m for end, m in STARTED_BY_CODE.items() if end in jobs[logical_id]["Name"]]
            passed[f"REF:{logical_id}"] = code_passes(modules)
        for logical_id, job in jobs.items():
            script = next(
                p for p in (ROOT / "glue").glob("*/job.py") if f"-{p.parent.name.replace('_', '-')}" in job["Name"]
            )
            given = (set(job["DefaultArguments"]) - GLUE_OWN) | passed[f"REF:{logical_id}"]
            assert given == script_reads(script), (job["Name"], sorted(given), sorted(script_reads(script)))
