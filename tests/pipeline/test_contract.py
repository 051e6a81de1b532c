"""The data contract: loading, value checks, header checks, and clear errors for a bad contract."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from pipeline.contract import CONTRACTS_DIR, ContractError, _key_problems, load_contracts, parse_contract

CONTRACT = load_contracts()["diabetes/patients"]


def test_the_shipped_contract_loads() -> None:
    assert CONTRACT.key == ("patient_id",)
    assert CONTRACT.features == ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
    assert CONTRACT.label == "target"


@pytest.mark.parametrize(
    ("column", "raw", "value", "reason"),
    [
        ("age", "40", 40, None),
        ("age", " 40 ", 40, None),
        ("age", "40.0", 40, None),
        ("age", "40.5", None, "age: not an integer"),
        ("age", "forty", None, "age: not an integer"),
        ("age", "", None, "age is missing (required)"),
        ("age", None, None, "age is missing (required)"),
        ("age", "121", None, "age: above the maximum 120"),
        ("bmi", "1_000", None, "bmi: not a number"),
        ("bmi", "nan", None, "bmi: not a number"),
        ("bmi", "1e999", None, "bmi: not a finite number"),
        ("bmi", "9.9", None, "bmi: below the minimum 10"),
        ("bmi", "2.5e1", 25.0, None),
        ("s1", "", None, None),  # nullable
        ("sex", "3", None, "sex: not one of [1, 2]"),
        ("patient_id", "P12345", "P12345", None),
        ("patient_id", "p12345", None, "patient_id: does not match ^P[0-9]{5,9}$"),
    ],
)
def test_column_checks(column: str, raw, value, reason) -> None:
    assert CONTRACT.column(column).check(raw) == (value, reason)


def test_header_problems() -> None:
    missing, unknown = CONTRACT.header_problems(["patient_id", "age", " notes "])
    assert "bmi" in missing and "target" in missing and "patient_id" not in missing
    assert unknown == ["notes"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(key=["nope"]), "key 'nope' is not a column"),
        (lambda d: d.update(label="nope"), "label 'nope' is not a column"),
        (lambda d: d["columns"][1].update(type="float"), "has type 'float'"),
        (lambda d: d["columns"][0].update(nullable=True), "key column 'patient_id' must not be nullable"),
        (lambda d: d.pop("columns"), "invalid contract (KeyError"),
    ],
)
def test_bad_contracts_say_what_is_wrong(change, message) -> None:
    import json

    data = json.loads(CONTRACT.to_json())
    change(data)
    with pytest.raises(ContractError, match=r"my\.yaml") as caught:
        parse_contract(data, source="my.yaml")
    assert message in str(caught.value)


def test_json_round_trip_is_lossless() -> None:
    import json

    assert parse_contract(json.loads(CONTRACT.to_json())) == CONTRACT


def test_the_check_contract_is_check_only_and_the_diabetes_one_is_not() -> None:
    from pipeline.contract import load_contracts as load

    contracts = load()
    assert contracts["platform_check/smoke"].check_only is True
    assert CONTRACT.check_only is False, "the default: a contract without check_only is promoted"


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_check_only_must_be_a_boolean(value) -> None:
    import json

    data = {**json.loads(CONTRACT.to_json()), "check_only": value}
    with pytest.raises(ContractError, match=r"my\.yaml.*check_only must be true or false"):
        parse_contract(data, source="my.yaml")


@pytest.mark.parametrize("value", ["yes", 1])
def test_sensitive_must_be_a_boolean_and_names_its_column(value) -> None:
    import json

    data = json.loads(CONTRACT.to_json())
    data["columns"][1]["sensitive"] = value
    with pytest.raises(ContractError, match=r"my\.yaml.*column 'age': sensitive must be true or false"):
        parse_contract(data, source="my.yaml")


def test_a_column_is_not_sensitive_unless_marked_and_the_mark_survives_the_glue_argument() -> None:
    from pipeline.contract import contracts_from_json, contracts_to_json

    assert CONTRACT.column("patient_id").sensitive and not CONTRACT.column("bmi").sensitive
    data = {
        "dataset": "d",
        "table": "t",
        "key": ["k"],
        "features": [],
        "label": "k",
        "columns": [{"name": "k", "type": "string", "nullable": False}],
    }
    assert parse_contract(data).columns[0].sensitive is False
    again = contracts_from_json(contracts_to_json({CONTRACT.name: CONTRACT}))[CONTRACT.name]
    assert [c.sensitive for c in again.columns] == [c.sensitive for c in CONTRACT.columns]


def test_all_contracts_round_trip_through_the_glue_argument() -> None:
    from pipeline.contract import contracts_from_json, contracts_to_json

    contracts = load_contracts()
    assert contracts_from_json(contracts_to_json(contracts)) == contracts
    with pytest.raises(ContractError, match=r"--contracts: expected a JSON list"):
        contracts_from_json('{"a": 1}')


def test_contract_named_refuses_check_only_data_for_promotion_and_names_unknown_tables() -> None:
    from pipeline.contract import contract_named

    contracts = load_contracts()
    assert contract_named(contracts, "diabetes/patients", promote=True) == CONTRACT
    assert contract_named(contracts, "platform_check/smoke").check_only
    with pytest.raises(ContractError, match="platform_check/smoke is a check-only dataset"):
        contract_named(contracts, "platform_check/smoke", promote=True)
    with pytest.raises(
        ContractError, match=r"no data contract for x/y \(known: clinic/appointments, diabetes/patients, platform_check"
    ):
        contract_named(contracts, "x/y")


@pytest.mark.parametrize(
    ("version", "columns", "problem"),
    [
        ("seq", [{"name": "seq", "type": "string", "nullable": False}], "must be a number every row has"),
        ("seq", [{"name": "seq", "type": "integer", "nullable": True}], "not nullable integer"),
        ("when", [], "version 'when' is not a column"),
        (["seq"], [], "version ['seq'] is not a column"),
    ],
)
def test_a_version_column_must_be_a_number_every_row_has(version, columns, problem: str) -> None:
    data = {
        "dataset": "shop",
        "table": "prices",
        "key": ["sku"],
        "columns": [{"name": "sku", "type": "string", "nullable": False}, *columns],
        "features": [],
        "label": "sku",
        "version": version,
    }
    with pytest.raises(ContractError, match=re.escape(problem)):
        parse_contract(data, "contracts/shop/prices.yaml")


def test_a_version_column_survives_the_json_the_glue_jobs_get() -> None:
    from pipeline.contract import contracts_from_json, contracts_to_json

    data = {
        "dataset": "shop",
        "table": "prices",
        "key": ["sku"],
        "columns": [{"name": "sku", "type": "string", "nullable": False}, {"name": "seq", "type": "integer"}],
        "features": ["seq"],
        "label": "sku",
        "version": "seq",
    }
    data["columns"][1]["nullable"] = False
    contract = parse_contract(data)
    assert contracts_from_json(contracts_to_json({contract.name: contract}))[contract.name].version == "seq"


@pytest.mark.parametrize("name", ["max_rejected_fraction", "max_row_drop_fraction"])
@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_a_fraction_out_of_range_names_itself(name: str, value: float) -> None:
    data = {
        "dataset": "shop",
        "table": "prices",
        "key": ["sku"],
        "columns": [{"name": "sku", "type": "string", "nullable": False}],
        "features": [],
        "label": "sku",
        "quality": {name: value},
    }
    with pytest.raises(ContractError, match=re.escape(f"quality.{name} must be between 0 and 1, not {value:g}")):
        parse_contract(data, "contracts/shop/prices.yaml")


PRICES = {
    "dataset": "shop",
    "table": "prices",
    "key": ["sku"],
    "columns": [
        {"name": "sku", "type": "string", "nullable": False},
        {"name": "op", "type": "string"},
        {"name": "flag", "type": "integer"},
        {"name": "price", "type": "double"},
    ],
    "features": ["price"],
    "label": "price",
}


@pytest.mark.parametrize(
    ("delete_when", "problem"),
    [
        ({"column": "operation", "values": ["D"]}, "delete_when column 'operation' is not a column"),
        ({"column": "price", "values": [1.0]}, "must be a string or integer column, not double"),
        ({"column": "op", "values": []}, "delete_when values must be a non-empty list of strings, not []"),
        ({"column": "op", "values": [1]}, "delete_when values must be a non-empty list of strings, not [1]"),
        ({"column": "flag", "values": [True]}, "a non-empty list of integers, not [True]"),
        ({"column": "op"}, "delete_when must be {column: <name>, values: [<value>, ...]}"),
        ("op", "delete_when must be {column: <name>, values: [<value>, ...]}"),
    ],
)
def test_a_delete_rule_names_a_column_and_the_values_that_mean_delete(delete_when, problem: str) -> None:
    with pytest.raises(ContractError, match=re.escape(problem)):
        parse_contract({**PRICES, "delete_when": delete_when}, "contracts/shop/prices.yaml")


def test_a_delete_rule_survives_the_json_the_glue_jobs_get() -> None:
    from pipeline.contract import DeleteWhen, contracts_from_json, contracts_to_json

    for delete_when in ({"column": "op", "values": ["D", "X"]}, {"column": "flag", "values": [1]}):
        contract = parse_contract({**PRICES, "delete_when": delete_when})
        assert contract.delete_when == DeleteWhen(delete_when["column"], tuple(delete_when["values"]))
        assert contracts_from_json(contracts_to_json({contract.name: contract}))[contract.name] == contract
    assert parse_contract(PRICES).delete_when is None


def test_unknown_columns_is_accept_by_default_and_one_of_two_choices() -> None:
    from pipeline.contract import contracts_from_json, contracts_to_json

    assert parse_contract(PRICES).unknown_columns == "accept"
    strict = parse_contract({**PRICES, "unknown_columns": "quarantine"})
    assert contracts_from_json(contracts_to_json({strict.name: strict}))[strict.name].unknown_columns == "quarantine"
    with pytest.raises(ContractError, match="unknown_columns must be one of accept, quarantine, not 'drop'"):
        parse_contract({**PRICES, "unknown_columns": "drop"})


def test_a_mean_shift_limit_names_a_column_curated_keeps() -> None:
    """The build's figures are of curated's columns: a limit on a column curated drops could never be checked
    (every build would fail to compute it)."""
    with pytest.raises(ContractError, match=r"'flag' must be a positive number .* that curated keeps"):
        parse_contract({**PRICES, "quality": {"max_mean_shift": {"flag": 1.0}}})
    assert parse_contract({**PRICES, "quality": {"max_mean_shift": {"price": 1.0}}}).quality.max_mean_shift


@pytest.mark.parametrize(
    ("partition", "problem"),
    [
        ({"buckets": 0}, "partition.buckets must be a whole number from 1 to 4096, not 0"),
        ({"buckets": 4097}, "partition.buckets must be a whole number from 1 to 4096, not 4097"),
        ({"buckets": True}, "partition.buckets must be a whole number from 1 to 4096, not True"),
        ({"buckets": "8"}, "partition.buckets must be a whole number from 1 to 4096, not '8'"),
        ({"column": "op"}, "partition.column 'op' must be a column of the key ['sku'] (a key lives in one partition)"),
        ({"column": "day"}, "partition.column 'day' must be a column of the key ['sku']"),
        ({"buckets": 4, "column": "sku"}, "partition must be {buckets: <1-4096>} or {column: <a key column>}"),
        ({"bucket": 4}, "partition must be {buckets: <1-4096>} or {column: <a key column>}"),
        ("sku", "partition must be {buckets: <1-4096>} or {column: <a key column>}"),
    ],
)
def test_a_partitioning_says_what_is_wrong(partition, problem: str) -> None:
    with pytest.raises(ContractError, match=re.escape(problem)):
        parse_contract({**PRICES, "partition": partition}, "contracts/shop/prices.yaml")


def test_a_partition_column_is_a_string_or_integer_key_column_and_partition_is_no_column_name() -> None:
    keyed = {**PRICES, "key": ["sku", "price"], "columns": [{**c, "nullable": False} for c in PRICES["columns"]]}
    with pytest.raises(ContractError, match=r"partition\.column 'price' must be a string or integer column, not"):
        parse_contract({**keyed, "partition": {"column": "price"}})
    for name in ("partition", "Partition"):  # Spark resolves a name in any case
        named = {**PRICES, "columns": [*PRICES["columns"], {"name": name, "type": "string"}]}
        with pytest.raises(ContractError, match="column name 'partition' is taken by curated's partition folders"):
            parse_contract(named)


def test_a_partition_column_names_folders_so_it_is_neither_sensitive_nor_the_whole_key() -> None:
    """A folder per key would be a file per key; a sensitive value in a folder's name is in every listing, the
    pointer and its manifests, none of which an erasure rewrites."""
    flag = {"name": "flag", "type": "integer", "nullable": False}
    keyed = {**PRICES, "key": ["sku", "flag"], "columns": [c for c in PRICES["columns"] if c["name"] != "flag"]}
    for column, contract in (
        ("sku", {**PRICES, "partition": {"column": "sku"}}),
        ("flag", {**keyed, "columns": [*keyed["columns"], {**flag, "sensitive": True}]}),
    ):
        with pytest.raises(ContractError, match=f"partition.column '{column}' must not be sensitive nor the whole key"):
            parse_contract({**contract, "partition": {"column": column}})
    allowed = parse_contract({**keyed, "columns": [*keyed["columns"], flag], "partition": {"column": "flag"}})
    assert allowed.partition.column == "flag"


def test_a_partitioning_survives_the_json_the_glue_jobs_get_and_defaults_to_one_bucket() -> None:
    from pipeline.contract import Partitioning, contracts_from_json, contracts_to_json

    assert parse_contract(PRICES).partition == Partitioning(buckets=1)
    by_flag = {
        **PRICES,
        "key": ["sku", "flag"],
        "columns": [{**c, "nullable": False} if c["name"] == "flag" else c for c in PRICES["columns"]],
    }
    for partition, expected in (({"buckets": 64}, Partitioning(64)), ({"column": "flag"}, Partitioning(None, "flag"))):
        contract = parse_contract({**by_flag, "partition": partition})
        assert contract.partition == expected
        assert contracts_from_json(contracts_to_json({contract.name: contract}))[contract.name] == contract


# ---- defaults, checks and messages, exact ------------------------------------------------------------------


def test_what_a_contract_leaves_out_takes_its_default() -> None:
    from pipeline.contract import Column, Quality
    from pipeline.csv_format import CsvFormat

    contract = parse_contract(PRICES)
    assert contract.columns[1] == Column("op", "string", nullable=True, description="", sensitive=False)
    assert contract.quality == Quality(1, 0.0, {}, 1.0, {})
    assert (contract.description, contract.format, contract.version, contract.check_only) == (
        "",
        CsvFormat(),
        None,
        False,
    )
    declared = parse_contract({**PRICES, "description": "d", "format": {"delimiter": ";"}})
    assert declared.description == "d" and declared.format == CsvFormat(delimiter=";")


def test_every_problem_of_a_contract_is_listed_in_one_message() -> None:
    bad = {
        **PRICES,
        "features": ["price", "weight"],
        "quality": {"mean_between": {"height": [0, 1]}, "max_mean_shift": {"depth": 1.0}},
        "columns": [*PRICES["columns"], {"name": "op", "type": "string"}],
    }
    with pytest.raises(ContractError) as raised:
        parse_contract(bad, "contracts/shop/prices.yaml")
    assert str(raised.value) == (
        "contracts/shop/prices.yaml: feature 'weight' is not a column; mean_between 'height' is not a column; "
        "max_mean_shift 'depth' is not a column; column names repeat"
    )
    with pytest.raises(ContractError, match=r"^contracts/shop/prices.yaml: format\."):
        parse_contract({**PRICES, "format": {"delimiter": ";;"}}, "contracts/shop/prices.yaml")


@pytest.mark.parametrize(
    ("shift", "refused"),
    [({"price": 0}, True), ({"price": -1}, True), ({"op": 1.0}, True), ({"flag": 1.0}, True), ({"price": 0.5}, False)],
)
def test_a_mean_shift_limit_is_positive_on_a_number_curated_keeps(shift: dict, refused: bool) -> None:
    data = {**PRICES, "quality": {"max_mean_shift": shift}}
    if refused:
        with pytest.raises(ContractError, match="must be a positive number of standard deviations of a numeric column"):
            parse_contract(data)
    else:
        assert parse_contract(data).quality.max_mean_shift == shift


def test_a_value_is_checked_with_inclusive_bounds_spaces_trimmed_and_the_formats_nulls() -> None:
    from pipeline.contract import Column

    x = Column("x", "double", nullable=False, min=0, max=10)
    assert [x.check(v) for v in ("0", "10", " 5 ", "-0.1", "10.5", "", "\t5")] == [
        (0.0, None),
        (10.0, None),
        (5.0, None),
        (None, "x: below the minimum 0"),
        (None, "x: above the maximum 10"),
        (None, "x is missing (required)"),
        (None, "x: not a number"),
    ]
    assert x.check("NA", ("", "NA")) == (None, "x is missing (required)")
    assert Column("y", "double").check("NA", ("", "NA")) == (None, None)
    assert Column("y", "double").check("NA") == (None, "y: not a number"), "NA is a null only where the format says"


def test_a_row_is_checked_column_by_column_with_the_formats_nulls() -> None:
    contract = parse_contract({**PRICES, "format": {"null_values": ["", "-"]}})
    assert contract.check_row({"sku": "A1", "op": "-", "flag": "2", "price": "x"}) == (
        {"sku": "A1", "op": None, "flag": 2, "price": None},
        ["price: not a number"],
    )
    assert contract.check_row({"op": "U"}) == (
        {"sku": None, "op": "U", "flag": None, "price": None},
        ["sku is missing (required)"],
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["columns"][3].update(nullabel=True),
            "columns[3] (bmi).nullabel: unknown key (did you mean 'nullable'?)",
        ),
        (lambda d: d.update(labl="target"), "labl: unknown key (did you mean 'label'?)"),
        (lambda d: d["quality"].update(min_row=5), "quality.min_row: unknown key (did you mean 'min_rows'?)"),
        (lambda d: d.update(zzz=1), "zzz: unknown key (known: contract_version, dataset, table,"),
        (lambda d: d["columns"].append("age"), "columns[12] must be a mapping, not str"),
    ],
)
def test_an_unknown_key_fails_with_its_path_and_the_nearest_known_one(change, message) -> None:
    data = yaml.safe_load((CONTRACTS_DIR / "diabetes" / "patients.yaml").read_text())
    change(data)
    with pytest.raises(ContractError) as raised:
        parse_contract(data, source="contracts/diabetes/patients.yaml")
    assert str(raised.value).startswith("contracts/diabetes/patients.yaml: ")
    assert message in str(raised.value)


def test_every_shipped_contract_uses_known_keys_only() -> None:
    for path in CONTRACTS_DIR.rglob("*.yaml"):
        assert not _key_problems(yaml.safe_load(path.read_text())), path


def test_a_contract_lives_at_the_path_its_dataset_and_table_name(tmp_path: Path) -> None:
    source = (CONTRACTS_DIR / "diabetes" / "patients.yaml").read_text()
    (tmp_path / "clinic").mkdir()
    (tmp_path / "clinic" / "visits.yaml").write_text(source)
    with pytest.raises(ContractError, match=r"visits.yaml: names dataset 'diabetes' and table 'patients', so it "):
        load_contracts(tmp_path)
    (tmp_path / "clinic" / "visits.yaml").unlink()
    (tmp_path / "diabetes").mkdir()
    (tmp_path / "diabetes" / "patients.yaml").write_text(source)
    assert list(load_contracts(tmp_path)) == ["diabetes/patients"]
    (tmp_path / "diabetes" / "patients.json").write_text(json.dumps(yaml.safe_load(source)))
    with pytest.raises(ContractError, match="a second contract of diabetes/patients"):
        load_contracts(tmp_path)
