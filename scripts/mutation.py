"""Mutation testing of the pure core (not a test; `make mutation`): mutmut mutates one module at a time and runs
that module's own fast tests against each mutant; a mutant no test fails survived. Prints each module's score
(killed / (mutants - equivalent)) and fails where one is under `--min` (90 by default, issue 22).

    .venv/bin/python scripts/mutation.py [--module infra/workspace.py ...] [--min 90]

Each module runs in a copy of the repository's tracked files (mutmut writes its `mutants/` folder beside the
code it mutates), so the working tree is never touched (a test file must be tracked to be run: `git add` it).
Survivors are written to build/mutation/<module>.txt: `mutmut show <name>` in a copy kept with `--keep DIR`
tells what changed.
Equivalent mutants (a change no behaviour can tell) are listed in EQUIVALENT with why; they are not counted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = Path(sys.executable).parent / "mutmut"

MODULES: dict[str, list[str]] = {
    "infra/workspace/__init__.py": ["tests/unit/test_workspace.py", "tests/unit/test_workspace_exact.py"],
    "infra/naming.py": ["tests/unit/test_naming.py"],
    "infra/stateful.py": ["tests/unit/test_stateful.py"],
    "infra/lifecycle/janitor.py": ["tests/unit/test_lifecycle_decisions.py"],
    "infra/lifecycle/stacks.py": ["tests/unit/test_lifecycle_decisions.py"],
    "infra/cost.py": ["tests/unit/test_cost.py"],
    "pipeline/contract.py": ["tests/pipeline/test_contract.py"],
    "pipeline/gate.py": ["tests/pipeline/test_gate.py"],
    "pipeline/layout.py": ["tests/pipeline/test_layout.py"],
    "pipeline/ledger.py": ["tests/pipeline/test_ledger.py"],
    "pipeline/csv_format.py": ["tests/pipeline/test_csv_format.py"],
    "pipeline/builds.py": ["tests/pipeline/test_build_records.py"],
    "pipeline/registry.py": ["tests/pipeline/test_registry.py"],
    "pipeline/evolution.py": ["tests/pipeline/test_evolution.py"],
    "pipeline/s3_objects.py": ["tests/pipeline/test_conditional_texts.py"],
    "pipeline/erasure.py": ["tests/unit/test_erasure.py"],
    "pipeline/generate.py": ["tests/pipeline/test_generate.py"],
    "pipeline/catalog.py": ["tests/pipeline/test_catalog_sync.py"],
    "pipeline/sample_data.py": ["tests/pipeline/test_sample_data.py"],
    "pipeline/sources.py": ["tests/pipeline/test_extract_logic.py"],
    "pipeline/extract.py": ["tests/pipeline/test_extract_logic.py", "tests/extract/test_extract.py"],
    "pipeline/steps.py": ["tests/pipeline/test_steps_and_arguments.py"],
    "pipeline/job_arguments.py": ["tests/pipeline/test_steps_and_arguments.py"],
    "pipeline/drift.py": ["tests/unit/test_drift.py"],
    "lambdas/dispatch/logic.py": ["tests/lambdas/test_dispatch.py"],
    "lambdas/ingest/logic.py": ["tests/lambdas/test_ingest.py"],
    "lambdas/promote/logic.py": ["tests/lambdas/test_promote.py"],
    "lambdas/validate/logic.py": ["tests/lambdas/test_validate.py"],
    "lambdas/extract/logic.py": ["tests/lambdas/test_extract_handler.py"],
    "training/promotion.py": ["tests/training/test_promotion.py"],
    "model_service/compiled.py": ["tests/model_service/test_compiled_arrays.py"],
    "model_service/schemas.py": ["tests/model_service/test_schemas.py"],
    "model_service/model.py": ["tests/model_service/test_model_loading.py"],
}
"""Each module and the tests that are its own: fast ones (no synthesis, no Spark, no emulator), run once per
mutant that they reach."""
BELOW_THE_GATE: dict[str, list[str]] = {}
"""Measured, not yet at the gate: `--module` runs one; it moves to MODULES once its tests kill 90 % (README:
Mutation testing). None today."""

_KEYWORD_CASE = "DynamoDB's expression keywords (SET, OR) are case-insensitive: the lower-case one means the same"
_UTF8 = (
    "read_text's encoding: Python's codec names are case-insensitive, and None is the locale's, UTF-8 where the "
    "tests and the workflows run (the figures are ASCII besides)"
)
_SQL_CASE = "SQL's keywords are case-insensitive: the lower-case one means the same"
_FLOAT_EDGE = "`<` or `<=` a share: a random float drawn equal to the share exactly"
_NEWLINE = (
    "a text file's newline translation: none where the files are written (POSIX), and the csv module ends each "
    "line itself"
)
EQUIVALENT: dict[str, str] = {
    "pipeline.ledger.x_state_update__mutmut_12": _KEYWORD_CASE,
    "pipeline.ledger.x_state_update__mutmut_32": _KEYWORD_CASE,
    "pipeline.ledger.x_state_update__mutmut_38": _KEYWORD_CASE,
    "pipeline.ledger.x_step_update__mutmut_27": _KEYWORD_CASE,
    "pipeline.ledger.x_position_store__mutmut_54": _KEYWORD_CASE,
    "pipeline.sources.x_source_files__mutmut_15": _UTF8,
    "pipeline.sources.x_source_files__mutmut_17": _UTF8,
    "pipeline.builds.x_combined_moments__mutmut_3": (
        "the running mean's start: the first part with values sets it whatever it was (its weight is all of it)"
    ),
    "pipeline.evolution.x_contracts_at__mutmut_25": "`--` only tells git a path from a ref of the same name",
    **{
        f"pipeline.evolution.x_contracts_at__mutmut_{n}": (
            "`git show` of a path `git ls-tree` just listed at the same ref: it cannot fail, checked or not"
        )
        for n in (35, 39, 45)
    },
    "pipeline.s3_objects.x__text_and_etag__mutmut_11": _UTF8,
    "pipeline.s3_objects.xǁConditionalTextsǁswap__mutmut_70": (
        "the fallback's listing is narrowed to the key's prefix for speed: the key is looked up in it exactly"
    ),
    "pipeline.generate.x__valid_rows__mutmut_16": _FLOAT_EDGE,
    "pipeline.sample_data.x_appointment_rows__mutmut_51": _FLOAT_EDGE,
    "pipeline.sample_data.x_write_large__mutmut_24": _FLOAT_EDGE,
    "pipeline.extract.x__bounds__mutmut_7": _SQL_CASE,
    "pipeline.extract.x__bounds__mutmut_17": _SQL_CASE,
    "pipeline.extract.x_tls_context__mutmut_9": (
        "ssl.SSLContext.check_hostname stores a truth value: None turns the check off as False does"
    ),
    "pipeline.extract.x_extract__mutmut_157": (
        "committing a position equal to the committed one writes the same text: the position does not move"
    ),
    "pipeline.extract.x_source_types__mutmut_6": (
        "the probe of the source's columns reads one row instead of none: the same columns and types"
    ),
    "pipeline.extract.x_text_of__mutmut_15": (
        "a Decimal's format 'F' writes what 'f' does: no exponent, NaN and Infinity spelt the same"
    ),
    "pipeline.sources.x_load_sources__mutmut_21": _UTF8,
    "pipeline.sources.x_load_sources__mutmut_23": _UTF8,
    "pipeline.sample_data.x__write__mutmut_3": _NEWLINE,
    "pipeline.sample_data.x__write__mutmut_5": _NEWLINE,
    "pipeline.generate.x_generate__mutmut_32": (
        "the first of two valid rows drawn from the same random state is the first of one"
    ),
    "pipeline.generate.x_write_files__mutmut_54": _UTF8,
    "pipeline.generate.x_write_files__mutmut_56": _UTF8,
    "pipeline.generate.x_write_files__mutmut_68": _UTF8,
    "pipeline.generate.x_write_files__mutmut_60": "json tests ensure_ascii for truth: None is False",
    "infra.cost.x__tracking_server__mutmut_12": "the size is lower-cased: the default's case is immaterial",
    "model_service.model.x__stored_profile__mutmut_12": _UTF8,
    "model_service.model.x__stored_profile__mutmut_14": _UTF8,
    "infra.cost.x__definition__mutmut_13": "a token's placeholder: read by nothing (a run's size and cap are literals)",
    "infra.cost.x__definition__mutmut_14": "a token's placeholder: read by nothing (a run's size and cap are literals)",
    "infra.cost.x__metrics_every_run__mutmut_24": _UTF8,
    "infra.cost.x__metrics_every_run__mutmut_26": _UTF8,
    "infra.cost.x_load_prices__mutmut_7": _UTF8,
    "infra.cost.x_load_prices__mutmut_9": _UTF8,
    "infra.cost.x_templates_in__mutmut_12": _UTF8,
    "infra.cost.x_templates_in__mutmut_14": _UTF8,
}
"""mutmut's mutant name: why no behaviour can tell it from the code (at most 5 % of a module's mutants)."""

KILLED = {1, 3, 36, 37, -24}  # a test failed, an error, a timeout (-24: SIGXCPU, its CPU limit), the type check
SURVIVED = {0}
NO_TESTS = {33}  # no test reaches the mutated function: survived, as far as anyone knows
TO_COPY = [
    "infra",
    "pipeline",
    "lambdas",
    "model_service",
    "training",
    "config",
    "contracts",
    "sources",
    "tests",
    "glue",
    "scripts",
]


@dataclass(frozen=True)
class Score:
    module: str
    mutants: int
    killed: int
    survivors: list[str]
    equivalent: int

    @property
    def percent(self) -> float:
        counted = self.mutants - self.equivalent
        return 100.0 * self.killed / counted if counted else 100.0


def tracked_copy(target: Path) -> None:
    """The repository's tracked files (what a clone holds), without the working tree's builds and venvs, committed
    to a repository of their own: tests that read the contracts at a git ref (pipeline/evolution.py's PR check)
    find one, as in a clone."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    identity = ["-c", "user.name=mutation", "-c", "user.email=mutation@localhost"]
    for command in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-qm", "the tracked files"]):
        subprocess.run(["git", *command], cwd=target, check=True, capture_output=True)


def configure(copy: Path, module: str, tests: list[str]) -> None:
    config = copy / "pyproject.toml"
    config.write_text(
        config.read_text(encoding="utf-8")
        + "\n[tool.mutmut]\n"
        + f"source_paths = [{json.dumps(module)}]\n"
        + f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        + f"also_copy = {json.dumps(TO_COPY)}\n",
        encoding="utf-8",
    )


def run_module(module: str, tests: list[str], work: Path, log: Path) -> Score:
    copy = work / module.replace("/", "_")
    tracked_copy(copy)
    configure(copy, module, tests)
    with log.open("w", encoding="utf-8") as output:
        subprocess.run([str(MUTMUT), "run"], cwd=copy, stdout=output, stderr=subprocess.STDOUT, check=False)
    meta = copy / "mutants" / f"{module}.meta"
    if not meta.is_file():
        raise SystemExit(f"mutmut wrote no results for {module}: read {log}")
    codes: dict[str, int] = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    unknown = {code for code in codes.values() if code not in KILLED | SURVIVED | NO_TESTS}
    if unknown:
        raise SystemExit(f"{module}: mutmut exit codes {sorted(unknown)} not understood: read {log}")
    equivalent = [name for name in codes if name in EQUIVALENT]
    survivors = sorted(name for name, code in codes.items() if code not in KILLED and name not in EQUIVALENT)
    killed = sum(1 for code in codes.values() if code in KILLED)
    return Score(module, len(codes), killed, survivors, len(equivalent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--module", action="append", choices=sorted(MODULES | BELOW_THE_GATE), help="one module (repeatable)"
    )
    parser.add_argument("--min", type=float, default=90.0, help="the lowest score a module may have (percent)")
    parser.add_argument(
        "--keep", type=Path, help="keep each module's copy under this folder (`mutmut show <name>` runs there)"
    )
    args = parser.parse_args(argv)
    if not MUTMUT.is_file():
        raise SystemExit(f"{MUTMUT} is missing: run `make install` (mutmut is a dev dependency)")
    reports = ROOT / "build" / "mutation"
    reports.mkdir(parents=True, exist_ok=True)
    scores = []
    if args.keep:
        shutil.rmtree(args.keep, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="mutation-") as temporary:
        work = args.keep or Path(temporary)
        for module in args.module or list(MODULES):
            name = module.replace("/", "_")
            score = run_module(module, (MODULES | BELOW_THE_GATE)[module], work, reports / f"{name}.log")
            (reports / f"{name}.txt").write_text("".join(f"{s}\n" for s in score.survivors), encoding="utf-8")
            scores.append(score)
            print(f"{module:<32}{score.mutants:>8}{score.killed:>8}{len(score.survivors):>10}{score.percent:>8.1f}%")
    print(f"\n{'module':<32}{'mutants':>8}{'killed':>8}{'survived':>10}{'score':>9}")
    for score in scores:
        print(f"{score.module:<32}{score.mutants:>8}{score.killed:>8}{len(score.survivors):>10}{score.percent:>8.1f}%")
    (reports / "scores.json").write_text(
        json.dumps({s.module: round(s.percent, 1) for s in scores}, indent=2) + "\n", encoding="utf-8"
    )
    low = [s.module for s in scores if s.percent < args.min]
    if low:
        print(f"\nunder {args.min:g} %: {', '.join(low)} (survivors: build/mutation/<module>.txt)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
