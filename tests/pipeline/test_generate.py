"""Test data from any contract (pipeline/generate.py): valid rows pass every check with distinct keys, and each
broken row breaks one rule, the one the pipeline names; patterns are written from the pattern itself."""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

import pytest

from pipeline.contract import load_contracts
from pipeline.generate import GenerateError, generate, main, reasons_file, text_matching, write_files

CORPUS = Path(__file__).resolve().parents[1] / "data" / "landing" / "contracts"
CONTRACTS = load_contracts() | load_contracts(CORPUS)


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_valid_rows_pass_every_check_with_distinct_keys(name: str) -> None:
    contract = CONTRACTS[name]
    valid, _ = generate(contract, 40, seed=3)
    assert len(valid) == 40
    assert all(contract.check_row(row)[1] == [] for row in valid)
    assert len({tuple(row[k] for k in contract.key) for row in valid}) == 40
    for column, (low, high) in contract.quality.mean_between.items():
        mean = sum(float(row[column]) for row in valid) / len(valid)
        assert low <= mean <= high, f"{column}: the generated batch passes the gate's mean check"


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_each_broken_row_breaks_one_rule_the_one_it_names(name: str) -> None:
    contract = CONTRACTS[name]
    _, broken = generate(contract, 5, seed=3)
    assert broken
    for case in broken:
        assert contract.check_row(case.row)[1] == [case.reason]


def test_every_rule_of_the_diabetes_contract_is_broken_once() -> None:
    _, broken = generate(CONTRACTS["diabetes/patients"], 5)
    reasons = {case.reason for case in broken}
    assert {
        "patient_id is missing (required)",
        "patient_id: does not match ^P[0-9]{5,9}$",
        "age: not an integer",
        "age: below the minimum 0",
        "age: above the maximum 120",
        "sex: not one of [1, 2]",
        "bmi: not a number",
        "s1: above the maximum 400",
    } <= reasons
    assert not any(r.startswith("s1 is missing") for r in reasons), "a nullable column may be empty"
    assert len(reasons) == len(broken), "one row per rule"


@pytest.mark.parametrize(
    "pattern",
    [
        r"^P[0-9]{5,9}$",
        r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
        r"[A-Z][a-z]+( [A-Z][a-z]+)*",
        r"x[^0-9]y\d\w+",
        r"(red|green|blue)-\d{3}",
        r"a.b?c*",
    ],
)
def test_a_text_is_written_that_the_pattern_matches_whole(pattern: str) -> None:
    rng = random.Random(5)  # noqa: S311 (test data)
    for _ in range(20):
        assert re.fullmatch(pattern, text_matching(pattern, rng))


def test_a_pattern_the_generator_cannot_write_says_so() -> None:
    with pytest.raises(GenerateError, match="cannot write"):
        text_matching(r"(?=a)a", random.Random(1))  # noqa: S311 (test data)


def test_files_are_written_in_the_contracts_format_with_each_reason(tmp_path: Path) -> None:
    contract = CONTRACTS["exports/semicolon"]
    valid, invalid = write_files(contract, tmp_path, 10)
    assert valid.parent == tmp_path / "exports" / "semicolon"
    with valid.open(encoding=contract.format.encoding, newline="") as handle:
        rows = list(csv.reader(handle, delimiter=contract.format.delimiter, quotechar=contract.format.quote))
    assert (rows[0] == contract.column_names) is contract.format.header and len(rows) == 10 + contract.format.header
    expected = json.loads(reasons_file(contract, tmp_path).read_text())
    assert tmp_path not in reasons_file(contract, tmp_path).parents, "outside the landing folder"
    assert [e["reason"] for e in expected] == [b.reason for b in generate(contract, 10)[1]]
    with invalid.open(encoding=contract.format.encoding, newline="") as handle:
        broken = list(csv.reader(handle, delimiter=contract.format.delimiter, quotechar=contract.format.quote))
    assert len(broken) == len(expected) + contract.format.header


def test_the_command_names_an_unknown_table(tmp_path: Path, capsys) -> None:
    assert main(["--table", "nope/nothing", "--out", str(tmp_path)]) == 2
    assert "no data contract for nope/nothing" in capsys.readouterr().err
    assert main(["--table", "clinic/appointments", "--rows", "5", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "clinic" / "appointments" / "generated-valid.csv").is_file()


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_files_of_every_contracts_format_read_back_as_generated(name: str, tmp_path: Path) -> None:
    """Each format (utf-16, latin-1, no header, other null spellings) written and read back by the pipeline's
    own reader: the same rows, checked valid."""
    from pipeline.csv_format import decoded_chunks, header_and_records

    contract = CONTRACTS[name]
    data = tmp_path / "data"
    valid_file, _ = write_files(contract, data, 15, seed=2)
    assert not [p for p in data.rglob("*") if p.is_file() and p.suffix != ".csv"], "only data in the landing folder"
    with valid_file.open("rb") as handle:
        chunks = decoded_chunks(handle, valid_file.name, contract.format)
        names, records = header_and_records(chunks, contract.format, contract.column_names)
        rows = [dict(zip(names, record, strict=True)) for record in records]
    assert len(rows) == 15 and all(contract.check_row(row)[1] == [] for row in rows)


@pytest.mark.parametrize(
    ("column", "band"),
    [
        ({"name": "flag", "type": "integer", "nullable": False, "allowed": [0, 1]}, [0.1, 0.3]),
        ({"name": "flag", "type": "integer", "nullable": False, "min": 0, "max": 10}, [0.1, 0.3]),
        ({"name": "flag", "type": "double", "nullable": True, "min": 0, "max": 100}, [40, 45]),
    ],
)
def test_a_mean_band_is_met_by_a_mix_of_valid_values_not_a_constant(column: dict, band: list[float]) -> None:
    """A band no single whole number lies in (0.1-0.3 of 0s and 1s) is met by mixing them."""
    from pipeline.sample_data import prices_contract

    contract = prices_contract(
        columns=[
            {"name": "sku", "type": "string", "nullable": False},
            {"name": "seq", "type": "integer", "nullable": False},
            {"name": "price", "type": "double", "nullable": False},
            {"name": "op", "type": "string", "nullable": True},
            column,
        ],
        quality={"min_rows": 1, "mean_between": {"flag": band}},
    )
    valid, _ = generate(contract, 60, seed=4)
    values = [float(row["flag"]) for row in valid if row["flag"] != ""]
    assert band[0] <= sum(values) / len(values) <= band[1]
    assert len(set(values)) > 1, "a mix, not a constant"
    assert all(contract.check_row(row)[1] == [] for row in valid)


def test_a_partition_columns_rows_share_a_few_values() -> None:
    """As a daily export does: clinic/appointments is cut by day, and 60 rows fall on at most 5 days."""
    valid, _ = generate(CONTRACTS["clinic/appointments"], 60)
    assert 1 < len({row["day"] for row in valid}) <= 5
