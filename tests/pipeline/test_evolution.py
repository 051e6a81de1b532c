"""Contract evolution (pipeline/evolution.py): which changes break existing data or curated's readers, and the
PR check that asks a breaking change for a higher contract_version, on the rules' table and on a real git
history."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.contract import ContractError, load_contracts, parse_contract
from pipeline.evolution import breaking_changes, contracts_at, evolution_problems
from pipeline.sample_data import prices_contract

BASE: dict[str, Any] = json.loads(load_contracts()["diabetes/patients"].to_json())


def changed(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    change(data)
    return data


def column(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in data["columns"] if c["name"] == name)


NULLABLE_NOTE = {"name": "note", "type": "string", "nullable": True}


@pytest.mark.parametrize(
    ("change", "breaking"),
    [
        # breaking: data valid before is not, or curated's readers lose what they read
        (lambda d: d["columns"].remove(column(d, "s6")) or d["features"].remove("s6"), "column 's6' dropped"),
        (lambda d: column(d, "s6").update(name="glucose") or d["features"].remove("s6"), "column 's6' dropped"),
        (lambda d: column(d, "bmi").update(type="integer"), "column 'bmi': type narrowed from double to integer"),
        (
            lambda d: (
                column(d, "patient_id").update(type="integer", pattern=None) or column(d, "patient_id").pop("pattern")
            ),
            "type narrowed from string to integer",
        ),
        (lambda d: column(d, "s1").update(nullable=False), "column 's1': nullable made required"),
        (
            lambda d: d["columns"].append({"name": "site", "type": "string", "nullable": False}),
            "'site' added as required",
        ),
        (lambda d: d.update(key=["patient_id", "age"]), "key changed from ['patient_id'] to ['patient_id', 'age']"),
        (lambda d: column(d, "bmi").update(min=12), "column 'bmi': minimum raised to 12"),
        (lambda d: column(d, "bmi").update(max=70), "column 'bmi': maximum lowered to 70"),
        (lambda d: column(d, "s1").update(max=None) or column(d, "target").update(max=300), "maximum lowered to 300"),
        (lambda d: column(d, "sex").update(allowed=[1]), "column 'sex': allowed values narrowed to [1]"),
        (lambda d: column(d, "bmi").update(allowed=[20, 30]), "column 'bmi': allowed values narrowed to [20, 30]"),
        (lambda d: column(d, "patient_id").update(pattern="^P[0-9]{5}$"), "column 'patient_id': pattern changed"),
        (lambda d: column(d, "bp").update(pattern="^[0-9]+$"), "column 'bp': pattern added"),
        (lambda d: d["features"].remove("s6"), "curated no longer keeps column 's6'"),
        (
            lambda d: column(d, "age").update(type="string", min=None, max=None, pattern="^[0-9]+$"),
            "column 'age': widened to string with a pattern or allowed values",
        ),
        (lambda d: column(d, "age").update(type="double", min=1), "column 'age': minimum raised to 1"),
        (lambda d: column(d, "bmi").update(type="string", min=None, max=None), "curated's type changes from double"),
        (lambda d: column(d, "age").update(type="double", pattern="^[0-9]+$"), "a pattern is checked on the number"),
        (lambda d: d.update(format={"delimiter": ";"}), "format.delimiter changed"),
        (lambda d: d.update(format={"encoding": "latin-1"}), "format.encoding changed"),
        (lambda d: d.update(format={"null_values": []}), "format.null_values lost a spelling"),
        (lambda d: d.update(unknown_columns="quarantine"), "unknown_columns: quarantine refuses files"),
        (lambda d: d.update(delete_when={"column": "sex", "values": [2]}), "delete_when added or changed"),
        (lambda d: d.update(check_only=True, model=None), "check_only: the table"),
    ],
)
def test_a_breaking_change_is_named(change, breaking: str) -> None:
    found = breaking_changes(parse_contract(BASE), parse_contract(changed(change)))
    assert any(breaking in problem for problem in found), found


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["columns"].append(NULLABLE_NOTE),  # a nullable column added
        lambda d: column(d, "age").update(type="double"),  # integer widened to double
        lambda d: column(d, "s1").update(nullable=True),  # already nullable: nothing
        lambda d: column(d, "bmi").update(nullable=True),  # required made nullable
        lambda d: column(d, "bmi").update(min=5, max=90),  # a range widened
        lambda d: column(d, "sex").update(allowed=[1, 2, 3]),  # more values allowed
        lambda d: column(d, "patient_id").pop("pattern"),  # a pattern dropped
        lambda d: column(d, "bmi").update(description="BMI, kg/m2"),
        lambda d: d["quality"].update(min_rows=50),  # the gate's thresholds are not the data's shape
        lambda d: d.update(partition={"buckets": 8}),  # a rebuild from scratch, nothing lost
        lambda d: d["features"].append("s6") if "s6" not in d["features"] else None,
    ],
)
def test_a_compatible_change_is_not_breaking(change) -> None:
    assert breaking_changes(parse_contract(BASE), parse_contract(changed(change))) == []


def test_the_key_s_order_is_no_break_and_a_headerless_files_order_is() -> None:
    prices = json.loads(prices_contract(daily=True).to_json())
    reordered = copy.deepcopy(prices) | {"key": ["sku", "day"]}
    assert breaking_changes(parse_contract(prices), parse_contract(reordered)) == []
    headerless = copy.deepcopy(prices) | {"format": {"header": False}}
    swapped = copy.deepcopy(headerless)
    swapped["columns"][0], swapped["columns"][1] = swapped["columns"][1], swapped["columns"][0]
    (found,) = breaking_changes(parse_contract(headerless), parse_contract(swapped))
    assert found.startswith("columns reordered in a contract without a header")
    typed = copy.deepcopy(prices)
    next(c for c in typed["columns"] if c["name"] == "seq").update(type="double")  # the version: a widening
    assert any("type of a key" in f for f in breaking_changes(parse_contract(prices), parse_contract(typed)))


def test_a_breaking_change_passes_with_a_higher_contract_version_only() -> None:
    old = {"diabetes/patients": parse_contract(BASE)}
    dropped = changed(lambda d: column(d, "s1").update(nullable=False))
    (problem,) = evolution_problems(old, {"diabetes/patients": parse_contract(dropped)})
    assert problem.startswith("diabetes/patients: breaking changes need contract_version: 2 (is 1): ")
    assert evolution_problems(old, {"diabetes/patients": parse_contract(dropped | {"contract_version": 2})}) == []
    assert evolution_problems(old, {"diabetes/patients": parse_contract(dropped | {"contract_version": 3})}) == []


def test_a_version_never_goes_down_and_a_removed_contract_is_named() -> None:
    newer = {"diabetes/patients": parse_contract(BASE | {"contract_version": 2})}
    older = {"diabetes/patients": parse_contract(BASE)}
    assert evolution_problems(newer, older) == ["diabetes/patients: contract_version went down from 2 to 1"]
    (removed,) = evolution_problems(older, {})
    assert removed == (
        "diabetes/patients: contract removed; its landed files would be quarantined as unroutable (keep it, or "
        "remove its landing first and say so in the PR)"
    )
    two = parse_contract(changed(lambda d: (column(d, "bmi").update(max=70), column(d, "bp").update(min=50))))
    before = {"a/down": newer["diabetes/patients"], "b/tightened": older["diabetes/patients"]}
    assert evolution_problems(before, {"a/down": older["diabetes/patients"], "b/tightened": two}) == [
        "a/down: contract_version went down from 2 to 1",
        "b/tightened: breaking changes need contract_version: 2 (is 1): column 'bmi': maximum lowered to 70; "
        "column 'bp': minimum raised to 50",
    ], "every contract judged, in name order, each breaking change named"
    assert evolution_problems({}, older) == [], "a new contract passes"
    assert evolution_problems(older, older) == []


@pytest.mark.parametrize("value", [0, -1, "2", 1.5, True])
def test_a_contract_version_is_a_whole_number_from_1(value) -> None:
    with pytest.raises(ContractError, match=r"contract_version must be a whole number from 1"):
        parse_contract(BASE | {"contract_version": value})


def test_the_pr_check_compares_the_contracts_at_the_base_ref_with_the_working_tree(tmp_path: Path) -> None:
    """`python -m pipeline.evolution --base <ref>`, as ci.yml runs it, on a repository of two commits."""
    import yaml

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    contracts = tmp_path / "contracts" / "diabetes"
    contracts.mkdir(parents=True)
    (contracts / "patients.yaml").write_text(yaml.safe_dump(BASE))
    second = changed(lambda d: d.update(table="visits"))  # two of one dataset: its folder is made once
    (contracts / "visits.yaml").write_text(yaml.safe_dump(second))
    (contracts / "notes").mkdir()  # a file deeper than any contract: listed by git, read by nobody
    (contracts / "notes" / "README.md").write_text("why the columns are as they are\n")
    git("init", "-q", "-b", "main")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "base", "--allow-empty")
    git("add", "-A")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "contract")
    at_base = contracts_at("HEAD", tmp_path, tmp_path / "contracts")
    assert sorted(at_base) == ["diabetes/patients", "diabetes/visits"]
    (contracts / "patients.yaml").write_text(yaml.safe_dump(changed(lambda d: column(d, "bmi").update(max=70))))
    problems = evolution_problems(at_base, load_contracts(tmp_path / "contracts"))
    assert len(problems) == 1 and "maximum lowered to 70" in problems[0], problems
    assert contracts_at("HEAD~1", tmp_path, tmp_path / "contracts") == {}, "no contracts folder at the first commit"


def test_the_command_fails_on_a_breaking_change_of_the_repository(monkeypatch, capsys) -> None:
    """Against this repository: HEAD's contracts, with one tightened in the working tree as the module reads it."""
    from pipeline import evolution

    now = load_contracts()
    tightened = changed(lambda d: column(d, "bmi").update(max=70))
    monkeypatch.setattr(evolution, "contracts_at", lambda ref, repo: now)
    monkeypatch.setattr(evolution, "load_contracts", lambda: now | {"diabetes/patients": parse_contract(tightened)})
    assert evolution.main(["--base", "origin/main"]) == 1
    assert "::error::diabetes/patients: breaking changes need contract_version: 2" in capsys.readouterr().out
    monkeypatch.setattr(evolution, "load_contracts", lambda: now)
    assert evolution.main(["--base", "origin/main"]) == 0


def test_each_change_of_how_files_are_read_is_named_in_full() -> None:
    new = changed(
        lambda d: d.update(
            format={"delimiter": ";", "quote": "'", "encoding": "latin-1", "header": False, "null_values": []},
            unknown_columns="quarantine",
            delete_when={"column": "sex", "values": [2]},
            check_only=True,
            model=None,
        )
    )
    assert breaking_changes(parse_contract(BASE), parse_contract(new)) == [
        "format.delimiter changed: files written the old way no longer read the same",
        "format.quote changed: files written the old way no longer read the same",
        "format.encoding changed: files written the old way no longer read the same",
        "format.header changed: files written the old way no longer read the same",
        "format.null_values lost a spelling: a value written that way is no longer empty",
        "unknown_columns: quarantine refuses files with extra columns that passed",
        "delete_when added or changed: rows that were kept now delete their key",
        "check_only: the table no longer reaches curated",
    ]


def test_every_column_is_judged_whatever_an_earlier_one_did() -> None:
    """A column dropped, narrowed or of the rows' identity is named once, and the columns after it are still
    judged (each is a `continue`, not the end of the list)."""
    new = changed(
        lambda d: (
            d["columns"].remove(column(d, "age")),
            d["features"].remove("age"),
            column(d, "sex").update(type="string"),
            column(d, "sex").pop("allowed"),
            column(d, "bmi").update(type="integer"),
            column(d, "s6").update(max=100),
        )
    )
    assert breaking_changes(parse_contract(BASE), parse_contract(new)) == [
        "column 'age' dropped (a rename is a drop and an add)",
        "column 'sex': curated's type changes from integer to string (its readers')",
        "column 'bmi': type narrowed from double to integer",
        "column 's6': maximum lowered to 100",
    ]
    prices = json.loads(prices_contract().to_json())
    widened = copy.deepcopy(prices)
    column(widened, "seq").update(type="double")  # the version column
    column(widened, "op").update(nullable=False)
    assert breaking_changes(parse_contract(prices), parse_contract(widened)) == [
        "column 'seq': type of a key, version or partition column changed (rows' identity)",
        "column 'op': nullable made required",
    ]


def test_a_column_curated_does_not_keep_may_become_text_without_rules() -> None:
    extra = {"name": "note", "type": "integer", "nullable": True}
    old = changed(lambda d: d["columns"].append(extra))
    as_text = changed(lambda d: d["columns"].append(extra | {"type": "string"}))
    assert breaking_changes(parse_contract(old), parse_contract(as_text)) == []
    reordered = changed(lambda d: d["columns"].reverse())
    assert breaking_changes(parse_contract(BASE), parse_contract(reordered)) == [], "a header names the fields"


def test_the_command_reads_this_repositorys_contracts_and_says_why_it_cannot(monkeypatch, capsys) -> None:
    from pipeline import evolution
    from pipeline.contract import CONTRACTS_DIR

    assert evolution.main(["--base", "HEAD"]) == 0
    assert (
        capsys.readouterr().out
        == "contracts: every change since HEAD is compatible or has a major version of its own\n"
    )
    assert evolution.main(["--base", "no-such-ref-anywhere"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("::error::cannot read the contracts at no-such-ref-anywhere: fatal: ") and "\n" in out
    asked = []
    monkeypatch.setattr(evolution, "contracts_at", lambda ref, repo: asked.append((ref, repo)) or {})
    assert evolution.main(["--base", "origin/main"]) == 0 and asked == [("origin/main", CONTRACTS_DIR.parent)]
    capsys.readouterr()

    def broken(ref, repo):
        raise ContractError("contracts/x/y.yaml: not a mapping")

    monkeypatch.setattr(evolution, "contracts_at", broken)
    assert evolution.main(["--base", "origin/main"]) == 2
    assert capsys.readouterr().out == "::error::contracts/x/y.yaml: not a mapping\n"
    with pytest.raises(SystemExit):
        evolution.main([])
