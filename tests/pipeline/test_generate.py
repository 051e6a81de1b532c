"""Test data from any contract (pipeline/generate.py): valid rows pass every check with distinct keys, and each
broken row breaks one rule, the one the pipeline names; patterns are written from the pattern itself."""

from __future__ import annotations

import csv
import json
import random
import re
from collections import Counter
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
    spellings = contract.format.null_values
    null = spellings[0] if spellings and "" not in spellings else ""
    generated = generate(contract, 15, seed=2)[0]
    assert rows == [{name: row[name] or null for name in contract.column_names} for row in generated]


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


# --- what each value is: exact where a user reads it, within its rule where it is drawn --------------------------

DIABETES = CONTRACTS["diabetes/patients"]
SKU = {"name": "sku", "type": "string", "nullable": False}
SEQ = {"name": "seq", "type": "integer", "nullable": False}
PRICE = {"name": "price", "type": "double", "nullable": False}
OP = {"name": "op", "type": "string", "nullable": True}


def with_column(column: dict, band: list[float] | None = None, **extra: object):
    """shop/prices with one more column, `flag` (and the gate's mean band on it)."""
    from pipeline.sample_data import prices_contract

    quality = {"min_rows": 1, **({"mean_between": {column["name"]: band}} if band else {})}
    return prices_contract(columns=[SKU, SEQ, PRICE, OP, column], quality=quality, **extra)


def values_of(contract, column: str, rows: int = 60, seed: int = 4) -> list[str]:
    return [row[column] for row in generate(contract, rows, seed=seed)[0]]


def test_the_same_seed_gives_the_same_rows_and_the_default_seed_is_0() -> None:
    assert generate(DIABETES, 20) == generate(DIABETES, 20, seed=0)
    assert generate(DIABETES, 20, seed=1) != generate(DIABETES, 20, seed=0)


def test_each_broken_row_is_the_first_valid_row_with_one_value_just_outside_one_rule() -> None:
    """Just outside: the nearest whole number past a bound, the next past the allowed values, written as the
    column's type is (an integer without a decimal point), so that a check off by one at a bound is caught."""
    valid, broken = generate(DIABETES, 5)
    outside = {}
    for case in broken:
        (changed,) = [name for name in case.row if case.row[name] != valid[0][name]]
        outside[case.reason] = case.row[changed]
    assert {reason: outside[reason] for reason in list(outside)[:10]} == {
        "patient_id is missing (required)": "",
        "patient_id: does not match ^P[0-9]{5,9}$": "!",
        "age is missing (required)": "",
        "age: not an integer": "not-a-number",
        "age: below the minimum 0": "-1",
        "age: above the maximum 120": "121",
        "sex is missing (required)": "",
        "sex: not an integer": "not-a-number",
        "sex: not one of [1, 2]": "3",
        "bmi is missing (required)": "",
    }
    assert outside["s4: below the minimum 1"] == "0" and outside["bmi: not a number"] == "not-a-number"
    assert "s1 is missing (required)" not in outside, "a nullable column may be empty"


@pytest.mark.parametrize("banded", [False, True], ids=["diabetes", "a-band-one-row-cannot-meet"])
def test_no_valid_row_asked_for_still_gives_every_broken_row_from_a_valid_one(banded: bool) -> None:
    """From one valid row, even where one row alone cannot meet the contract's mean band (0.1-0.3 of integers)."""
    flag = {"name": "flag", "type": "integer", "nullable": False, "min": 0, "max": 10}
    contract = with_column(flag, [0.1, 0.3]) if banded else DIABETES
    valid, broken = generate(contract, 0, seed=2)
    assert valid == [] and len(broken) > 5
    assert generate(contract, 0, seed=2) == (valid, broken), "the same seed, the same rows"
    template = {name: Counter(case.row[name] for case in broken).most_common(1)[0][0] for name in broken[0].row}
    assert contract.check_row(template)[1] == []
    for case in broken:
        assert len([name for name in case.row if case.row[name] != template[name]]) == 1


def test_a_string_allowed_value_is_broken_by_one_outside_them() -> None:
    contract = with_column({"name": "flag", "type": "string", "nullable": False, "allowed": ["on", "off"]})
    outside = {case.reason: case.row["flag"] for case in generate(contract, 3)[1] if case.reason.startswith("flag")}
    assert outside == {"flag is missing (required)": "", "flag: not one of ['on', 'off']": "zz-not-allowed"}


def test_a_nullable_column_is_empty_in_about_a_tenth_of_the_rows() -> None:
    empty = [value == "" for value in values_of(DIABETES, "s1", rows=400)]
    assert 0.05 < sum(empty) / len(empty) < 0.15


@pytest.mark.parametrize(
    ("column", "low", "high"),
    [
        ({"type": "integer", "max": 0}, 0, 0),
        ({"type": "integer", "min": 5, "max": 5}, 5, 5),
        ({"type": "integer", "max": -5}, -1005, -5),
        ({"type": "integer", "min": 3}, 3, 1003),
        ({"type": "double"}, 0, 1000),
        ({"type": "double", "min": -2.5, "max": -2.5}, -2.5, -2.5),
    ],
)
def test_a_number_lies_within_its_bounds_an_open_end_at_most_1000_away(column: dict, low: float, high: float) -> None:
    values = [float(v) for v in values_of(with_column({"name": "flag", "nullable": False, **column}), "flag")]
    assert low <= min(values) and max(values) <= high
    if high - low >= 1000:
        assert max(values) - min(values) > 500, "spread over the range"


def test_a_double_has_at_most_three_decimals_and_an_integer_none() -> None:
    doubles = values_of(with_column({"name": "flag", "type": "double", "nullable": False}), "flag")
    assert all(re.fullmatch(r"\d+\.\d{1,3}", v) for v in doubles), doubles
    assert any(re.fullmatch(r"\d+\.\d{3}", v) for v in doubles)
    assert all(re.fullmatch(r"-?\d+", v) for v in values_of(DIABETES, "age"))


@pytest.mark.parametrize(
    ("column", "band", "message"),
    [
        ({"type": "integer", "min": 0.5, "max": 0.7}, None, "column 'flag': no integer between 1 and 0"),
        ({"type": "double", "min": 0, "max": 30}, [40, 45], "column 'flag': no double between 40 and 30"),
        (
            {"type": "integer", "allowed": [0, 1]},
            [2, 3],
            "column 'flag': no mix of its valid values has a mean in [2, 3]",
        ),
    ],
)
def test_a_column_no_value_can_satisfy_says_which_and_why(column: dict, band: list | None, message: str) -> None:
    contract = with_column({"name": "flag", "nullable": False, **column}, band)
    with pytest.raises(GenerateError, match=re.escape(message)):
        generate(contract, 10)


def test_a_double_with_a_mean_band_is_drawn_within_it() -> None:
    values = [
        float(v) for v in values_of(with_column({"name": "flag", "type": "double", "min": 0}, [40, 45]), "flag") if v
    ]
    assert min(values) >= 40 and max(values) <= 45


@pytest.mark.parametrize(
    ("column", "band", "either_side"),
    [
        ({"type": "integer"}, [2.5, 2.6], {"2", "3"}),  # open ends: the whole numbers either side of the band
        ({"type": "double", "allowed": [0.5, 1.5, 2.5]}, [2.2, 2.4], {"0.5", "2.5"}),
    ],
)
def test_a_band_no_value_lies_in_is_met_by_the_values_either_side(column: dict, band: list, either_side: set) -> None:
    contract = with_column({"name": "flag", "nullable": False, **column}, band)
    valid = generate(contract, 60, seed=4)[0]
    values = [row["flag"] for row in valid]
    assert band[0] <= sum(map(float, values)) / len(values) <= band[1]
    assert all(contract.check_row(row)[1] == [] for row in valid)
    assert either_side <= set(values)


def fitted(values: list[str], band: tuple[float, float], **column: object) -> list[str]:
    from pipeline.contract import Column
    from pipeline.generate import _fit_mean

    rows = [{"flag": v} for v in values]
    _fit_mean(rows, Column(name="flag", **{"type": "integer", **column}), band, random.Random(1))  # noqa: S311
    return [row["flag"] for row in rows]


def test_a_mean_on_either_edge_of_its_band_is_left_alone() -> None:
    assert fitted(["1", "3"], (2, 5), min=0, max=9) == ["1", "3"]
    assert fitted(["1", "3"], (0, 2), min=0, max=9) == ["1", "3"]
    assert fitted(["", ""], (4, 5), min=0, max=9) == ["", ""], "no value to move"


def test_a_mean_below_its_band_moves_rows_to_the_highest_value_above_it_to_the_lowest() -> None:
    raised = fitted(["4"] * 10, (6, 7), min=1, max=9)
    assert set(raised) == {"4", "9"} and 6 <= sum(map(int, raised)) / 10 <= 7
    lowered = fitted(["4"] * 10, (2, 3), min=1, max=9)
    assert set(lowered) == {"4", "1"} and 2 <= sum(map(int, lowered)) / 10 <= 3
    assert set(fitted(["4"] * 10, (2, 3), allowed=[0, 4, 6])) == {"4", "0"}
    assert set(fitted(["9"] * 10, (2.5, 3.5))) == {"9", "2"}, "open below: the whole number under the band"
    assert set(fitted(["1"] * 10, (1.5, 2.5))) == {"1", "3"}, "open above: the whole number over it"


@pytest.mark.parametrize(
    ("pattern", "written"),
    [
        (r"[ab0-2x-z]", set("ab012xyz")),
        (r"[a\d]", set("a0123456789")),
        (r"\w", set("abcdefghijklmnopqrstuvwxyz0123456789_")),
        (r"\s", {" "}),
        (r"[\Da]", {"a"}),
        (r"[^a-y]", {"z"}),
        (r"[^a-z]", {"~"}),
        (r"[^a]", set("bcdefghijklmnopqrstuvwxyz")),
        (r".", set("abcdefghijklmnopqrstuvwxyz")),
    ],
)
def test_a_class_writes_each_of_its_characters_and_only_those(pattern: str, written: set[str]) -> None:
    rng = random.Random(2)  # noqa: S311 (test data)
    assert {text_matching(pattern, rng) for _ in range(1500)} == written


@pytest.mark.parametrize(("pattern", "lengths"), [("a{0,9}", range(10)), ("a+", range(1, 5)), ("a*?", range(4))])
def test_a_repeat_spans_its_range_an_open_one_three_past_its_minimum(pattern: str, lengths: range) -> None:
    rng = random.Random(3)  # noqa: S311 (test data)
    assert {len(text_matching(pattern, rng)) for _ in range(400)} == set(lengths)


def test_every_pattern_the_generator_writes_matches_at_its_first_try(monkeypatch) -> None:
    """Retries are for a pattern with anchors inside: the sampler itself writes only matching texts."""
    from pipeline import generate as module

    monkeypatch.setattr(module, "TRIES", 1)
    rng = random.Random(4)  # noqa: S311 (test data)
    for pattern in [r"^P[0-9]{5,9}$", r"x[^0-9]y\d\w+", r"(red|green|blue)-\d{3}", r"a.b?c*", r"[^a][^b]", r"\s\w"]:
        for _ in range(50):
            assert re.fullmatch(pattern, text_matching(pattern, rng)), pattern


def test_a_pattern_no_written_text_matches_and_a_class_with_no_character_say_so() -> None:
    with pytest.raises(GenerateError, match=re.escape("no text matching '^a$b' in 50 tries")):
        text_matching(r"^a$b", random.Random(1))  # noqa: S311 (test data)
    with pytest.raises(GenerateError, match=re.escape("no character of class")):
        text_matching(r"[\D]", random.Random(1))  # noqa: S311 (test data)


def test_a_key_with_fewer_values_than_rows_asked_for_says_so() -> None:
    from pipeline.sample_data import prices_contract

    few = prices_contract(columns=[{**SKU, "allowed": ["a", "b"]}, SEQ, PRICE, OP])
    with pytest.raises(GenerateError, match=re.escape("shop/prices: only 2 rows of distinct keys, not 5")):
        generate(few, 5)


def test_a_free_text_partition_column_spreads_over_five_distinct_values() -> None:
    region = {"name": "region", "type": "string", "nullable": False}
    contract = with_column(region, partition={"column": "region"}, key=["region", "sku"])
    assert len(set(values_of(contract, "region"))) == 5


# --- the files: as the contract's format writes them ----------------------------------------------------------


@pytest.mark.parametrize(("spellings", "written"), [(["NULL", "NA"], "NULL"), (["NA", ""], ""), ([], "")])
def test_an_empty_value_is_written_as_the_formats_first_null_spelling(spellings: list, written: str) -> None:
    from pipeline.generate import csv_text

    contract = with_column({"name": "flag", "type": "string"}, format={"null_values": spellings})
    rows = [{"sku": "a", "seq": "1", "price": "2.0", "op": "", "flag": "x"}]
    assert csv_text(contract, rows).splitlines()[1] == f"a,1,2.0,{written},x"


def test_a_file_is_written_with_the_formats_quote_and_delimiter() -> None:
    from pipeline.generate import csv_text

    contract = with_column({"name": "flag", "type": "string"}, format={"quote": "'", "delimiter": ";"})
    rows = [{"sku": "a;b", "seq": "1", "price": "2.0", "op": "it's", "flag": 'say "hi"'}]
    assert csv_text(contract, rows) == "sku;seq;price;op;flag\r\n'a;b';1;2.0;'it''s';say \"hi\"\r\n"


def test_the_reasons_file_is_indented_json_with_its_text_as_written(tmp_path: Path) -> None:
    contract = with_column({"name": "flag", "type": "string", "nullable": False, "allowed": ["é", "ü"]})
    write_files(contract, tmp_path, 3)
    text = reasons_file(contract, tmp_path).read_bytes().decode("utf-8")
    expected = [{"row": b.row, "reason": b.reason} for b in generate(contract, 3)[1]]
    assert text == json.dumps(expected, indent=2, ensure_ascii=False) + "\n"
    assert "not one of ['é', 'ü']" in text
    write_files(contract, tmp_path, 3, seed=1)  # again into the same folders: replaced
    assert json.loads(reasons_file(contract, tmp_path).read_text(encoding="utf-8")) == [
        {"row": b.row, "reason": b.reason} for b in generate(contract, 3, seed=1)[1]
    ]


def test_the_command_writes_100_rows_of_seed_0_to_build_generated_by_default(monkeypatch, tmp_path, capsys) -> None:
    from pipeline.generate import csv_text

    monkeypatch.chdir(tmp_path)
    assert main(["--table", "diabetes/patients"]) == 0
    valid, broken = generate(DIABETES, 100, seed=0)
    folder = Path("build/generated/diabetes/patients")
    assert (folder / "generated-valid.csv").read_bytes().decode() == csv_text(DIABETES, valid)
    assert (folder / "generated-invalid.csv").read_bytes().decode() == csv_text(DIABETES, [b.row for b in broken])
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        f"{Path('build/generated') / folder.relative_to('build/generated') / 'generated-valid.csv'}",
        f"{folder / 'generated-invalid.csv'} (each row's reason: build/generated-reasons/diabetes/patients.json)",
        "run them: make pipeline DATA=build/generated",
    ]
    assert main(["--table", "diabetes/patients", "--rows", "7", "--seed", "3", "--out", "elsewhere"]) == 0
    assert Path("elsewhere/diabetes/patients/generated-valid.csv").read_bytes().decode() == csv_text(
        DIABETES, generate(DIABETES, 7, seed=3)[0]
    )
    with pytest.raises(SystemExit):
        main(["--rows", "5"])
    assert "--table" in capsys.readouterr().err
