"""The quality gate: each rule fails on its own, and the rules print as DQDL."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest

from pipeline.contract import load_contracts
from pipeline.gate import WITHHELD, ProfileError, check_build, dqdl, evaluate

CONTRACT = load_contracts()["diabetes/patients"]
GOOD = {
    "rows_in": 100,
    "rows_written": 95,
    "rows_rejected": 5,
    "columns": {
        c.name: ({"nulls": 0} | ({"min": c.min, "max": c.max, "mean": None} if c.min is not None else {}))
        for c in CONTRACT.columns
    },
}
GOOD["columns"]["target"]["mean"] = 150.0
GOOD["columns"]["bmi"]["mean"] = 26.0


def test_a_good_profile_passes() -> None:
    result = evaluate(CONTRACT, GOOD)
    assert result.passed, result.failures
    assert len(result.checks) > 10


@pytest.mark.parametrize(
    ("path", "value", "rule"),
    [
        (("rows_written",), 94, "rows in = rows written + rows rejected"),
        (("rows_written",), 0, "RowCount >= 1"),
        (("rows_rejected",), 50, "RejectedFraction <= 0.2"),
        (("columns", "age", "nulls"), 1, 'IsComplete "age"'),
        (("columns", "bmi", "max"), 81.0, 'ColumnValues "bmi" between 10 and 80'),
        (("columns", "target", "mean"), 250.0, 'Mean "target" between 100 and 200'),
    ],
)
def test_each_rule_can_fail_the_gate(path, value, rule) -> None:
    profile = copy.deepcopy(GOOD)
    if path == ("rows_written",) and value == 0:
        profile["rows_in"], profile["rows_rejected"] = 0, 0
    if path == ("rows_rejected",):
        profile["rows_in"] = profile["rows_written"] + value
    target = profile
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    result = evaluate(CONTRACT, profile)
    assert not result.passed
    assert rule in [c.rule for c in result.failures]


def test_a_profile_without_counts_cannot_pass() -> None:
    with pytest.raises(ProfileError, match="raw_to_staging"):
        evaluate(CONTRACT, {"columns": {}})


def test_rules_print_as_dqdl() -> None:
    text = dqdl(CONTRACT)
    assert text.startswith("Rules = [")
    for rule in (
        "RowCount >= 1",
        'IsComplete "bmi"',
        'ColumnValues "age" between 0 and 120',
        'Mean "target" between 100 and 200',
    ):
        assert rule in text


def test_a_sensitive_column_figures_in_no_detail_and_others_keep_theirs() -> None:
    """A batch's minimum or maximum of a sensitive column is one person's value: the details travel to logs
    and notifications, so they carry none; a column not marked sensitive keeps its figures for triage."""
    sensitive = {c.name for c in CONTRACT.columns if c.sensitive}
    assert {"patient_id", "age", "sex"} <= sensitive and "bmi" not in sensitive
    profile = copy.deepcopy(GOOD)
    profile["columns"]["age"] |= {"min": -987654.0, "max": 987653.0}
    profile["columns"]["bmi"] |= {"min": 10.5, "max": 987652.0}
    result = evaluate(CONTRACT, profile)
    details = {c.rule: c.observed for c in result.checks}
    assert details['ColumnValues "age" between 0 and 120'] == WITHHELD
    assert details['ColumnValues "bmi" between 10 and 80'] == "10.5..987652.0"
    assert not result.passed and "98765" not in repr(result.as_dict()).replace("987652", "")

    unmarked = replace(CONTRACT, columns=tuple(replace(c, sensitive=False) for c in CONTRACT.columns))
    assert "987653" in repr(evaluate(unmarked, profile).as_dict()), "the figure is withheld only when marked"


def test_a_sensitive_mean_is_withheld() -> None:
    contract = replace(CONTRACT, columns=tuple(replace(c, sensitive=c.name == "target") for c in CONTRACT.columns))
    profile = copy.deepcopy(GOOD)
    profile["columns"]["target"]["mean"] = 987651.5
    details = {c.rule: c.observed for c in evaluate(contract, profile).failures}
    assert details == {'Mean "target" between 100 and 200': WITHHELD}


def test_a_small_correction_file_passes_the_gate_the_table_minimum_is_the_builds() -> None:
    """min_rows (10) is the curated table's: a 5-row correction file is a batch like any other."""
    profile = copy.deepcopy(GOOD) | {"rows_in": 5, "rows_written": 5, "rows_rejected": 0}
    assert evaluate(CONTRACT, profile).passed
    assert not check_build(CONTRACT, rows=5, keys=5, previous_rows=None).passed
    assert check_build(CONTRACT, rows=10, keys=10, previous_rows=None).passed


def test_a_file_with_no_rows_fails_for_having_none_not_for_its_rejects() -> None:
    profile = copy.deepcopy(GOOD) | {"rows_in": 0, "rows_written": 0, "rows_rejected": 0}
    assert [c.rule for c in evaluate(CONTRACT, profile).failures] == ["RowCount >= 1"]


@pytest.mark.parametrize(
    ("rows", "keys", "previous", "failed"),
    [
        (100, 100, None, []),
        (100, 100, 100, []),
        (120, 120, 100, []),
        (9, 9, None, ["RowCount >= 10"]),
        (100, 99, None, ["IsUnique patient_id"]),
        (99, 99, 100, ["RowCount >= 1 x the previous build"]),
    ],
)
def test_a_curated_build_is_checked_before_it_replaces_the_table(rows, keys, previous, failed) -> None:
    strict = replace(CONTRACT, quality=replace(CONTRACT.quality, max_row_drop_fraction=0.0))
    result = check_build(strict, rows=rows, keys=keys, previous_rows=previous)
    assert [c.rule for c in result.failures] == failed and result.passed == (not failed)


def test_a_contract_may_allow_a_build_to_shrink() -> None:
    allowing = replace(CONTRACT, quality=replace(CONTRACT.quality, max_row_drop_fraction=0.1))
    assert check_build(allowing, rows=90, keys=90, previous_rows=100).passed
    (failure,) = check_build(allowing, rows=89, keys=89, previous_rows=100).failures
    assert (failure.rule, failure.observed) == ("RowCount >= 0.9 x the previous build", "89 after 100")


def test_by_default_a_build_may_shrink_a_stricter_contract_says_so() -> None:
    """The default lets a build shrink: a file being re-run while another is promoted must not fail it."""
    assert CONTRACT.quality.max_row_drop_fraction == 1.0
    assert check_build(CONTRACT, rows=10, keys=10, previous_rows=400).passed


def test_a_build_whose_mean_moves_further_than_the_contract_allows_fails() -> None:
    from pipeline.gate import Moments

    shifting = replace(CONTRACT, quality=replace(CONTRACT.quality, max_mean_shift={"bmi": 0.5, "age": 0.5}))
    before = {"bmi": Moments(26.0, 4.0), "age": Moments(50.0, 10.0)}

    def build(bmi: float, age: float = 50.0):
        now = {"bmi": Moments(bmi, 4.0), "age": Moments(age, 10.0)}
        return check_build(shifting, rows=100, keys=100, previous_rows=100, moments=now, previous_moments=before)

    assert build(28.0).passed, "half a standard deviation is allowed"
    failed = build(28.1)
    assert not failed.passed
    ((check),) = failed.failures
    assert (check.rule, check.observed) == ('Mean "bmi" within 0.5 sd of the previous build', "0.53 sd")
    ((check),) = build(26.0, age=60.0).failures
    assert check.observed == "figures withheld", "age is sensitive: its shift is not quoted"
    first = check_build(shifting, rows=100, keys=100, previous_rows=None, moments=before, previous_moments=None)
    assert first.passed and len(first.checks) == 2, "a first build has nothing to move from"


@pytest.mark.parametrize(
    ("now", "before", "shift"),
    [
        ((5.0, 1.0), (5.0, 0.0), None),
        ((5.1, 1.0), (5.0, 0.0), None),  # a constant column before: nothing to measure the move in
        ((5.1, 1.0), (5.0, None), None),  # a one-row build
        ((None, None), (5.0, 1.0), None),
        ((5.0, 1.0), (None, None), None),
        ((3.0, 1.0), (5.0, 4.0), 0.5),
    ],
)
def test_a_mean_shift_is_in_the_earlier_builds_standard_deviations(now, before, shift) -> None:
    from pipeline.gate import Moments, mean_shift

    assert mean_shift(Moments(*now), Moments(*before)) == shift


@pytest.mark.parametrize(
    ("shift", "problem"),
    [({"patient_id": 1.0}, "'patient_id' must be a positive"), ({"bmi": 0}, "'bmi' must be a positive")],
)
def test_a_mean_shift_limit_is_positive_and_on_a_numeric_column(shift, problem: str) -> None:
    from pipeline.contract import ContractError, parse_contract

    data = json.loads(CONTRACT.to_json())
    data["quality"]["max_mean_shift"] = shift
    with pytest.raises(ContractError, match=problem):
        parse_contract(data)
    data["quality"]["max_mean_shift"] = {"weight": 1.0}
    with pytest.raises(ContractError, match="max_mean_shift 'weight' is not a column"):
        parse_contract(data)


# ---- every check's rule, verdict and observed figure, at its boundaries --------------------------------------


def _small(**quality):
    from pipeline.contract import parse_contract

    return parse_contract(
        {
            "dataset": "shop",
            "table": "items",
            "key": ["id", "part"],
            "columns": [
                {"name": "id", "type": "string", "nullable": False},
                {"name": "part", "type": "integer", "nullable": False},
                {"name": "x", "type": "double", "min": 0, "max": 10},
                {"name": "y", "type": "double", "min": 0},
                {"name": "age", "type": "integer", "min": 0, "max": 120, "sensitive": True},
            ],
            "features": ["x", "y"],
            "label": "x",
            "quality": {"max_rejected_fraction": 0.25, "mean_between": {"x": [2, 8]}, **quality},
        }
    )


def _profile(rows_in=4, written=3, rejected=1, **columns):
    base = {
        "id": {"nulls": 0},
        "part": {"nulls": 0, "min": 1.0, "max": 2.0, "mean": 1.5},
        "x": {"nulls": 1, "min": 0.0, "max": 10.0, "mean": 2.0},
        "y": {"nulls": 0, "min": -5.0, "max": 1.0, "mean": 0.0},
        "age": {"nulls": 0, "min": 30.0, "max": 40.0, "mean": 35.0},
    }
    return {"rows_in": rows_in, "rows_written": written, "rows_rejected": rejected, "columns": base | columns}


def test_a_profile_is_judged_check_by_check_with_each_figure() -> None:
    from pipeline.gate import WITHHELD, Check, GateResult

    result = evaluate(_small(), _profile())
    assert result == GateResult(
        "shop/items",
        True,
        (
            Check("rows in = rows written + rows rejected", True, "4 = 3 + 1"),
            Check("RowCount >= 1", True, "3"),
            Check("RejectedFraction <= 0.25", True, "1/4"),
            Check('IsComplete "id"', True, "0 nulls"),
            Check('IsComplete "part"', True, "0 nulls"),
            Check('ColumnValues "x" between 0 and 10', True, "0.0..10.0"),
            Check('ColumnValues "age" between 0 and 120', True, WITHHELD),
            Check('Mean "x" between 2 and 8', True, "2.0"),
        ),
    ), "y has a minimum only: no range check (its -5 passes); x's figures on its bounds pass"
    assert result.as_dict() == {
        "contract": "shop/items",
        "passed": True,
        "checks": [{"rule": c.rule, "passed": c.passed, "observed": c.observed} for c in result.checks],
    }


@pytest.mark.parametrize(
    ("profile", "rule", "observed"),
    [
        (_profile(rows_in=0, written=0, rejected=0), "RowCount >= 1", "0"),
        (_profile(rows_in=3, written=2, rejected=1), "RejectedFraction <= 0.25", "1/3"),
        (_profile(rows_in=4, written=3, rejected=0), "rows in = rows written + rows rejected", "4 = 3 + 0"),
        (
            _profile(x={"nulls": 0, "min": -0.5, "max": 3.0, "mean": 2.0}),
            'ColumnValues "x" between 0 and 10',
            "-0.5..3.0",
        ),
        (
            _profile(x={"nulls": 0, "min": 1.0, "max": 10.5, "mean": 8.0}),
            'ColumnValues "x" between 0 and 10',
            "1.0..10.5",
        ),
        (_profile(x={"nulls": 0, "min": 1.0, "max": 9.0, "mean": 8.01}), 'Mean "x" between 2 and 8', "8.01"),
        (_profile(x={"nulls": 0, "min": 1.0, "max": 9.0, "mean": 1.99}), 'Mean "x" between 2 and 8', "1.99"),
        (_profile(x={"nulls": 0, "min": 1.0, "max": 9.0, "mean": None}), 'Mean "x" between 2 and 8', "None"),
        (_profile(id={"nulls": 2}), 'IsComplete "id"', "2 nulls"),
    ],
)
def test_each_check_fails_just_past_its_bound_with_the_figure(profile, rule: str, observed: str) -> None:
    result = evaluate(_small(), profile)
    assert not result.passed
    assert [(c.rule, c.observed) for c in result.failures] == [(rule, observed)]


def test_a_column_the_profile_lacks_fails_its_checks_instead_of_crashing() -> None:
    profile = _profile()
    del profile["columns"]["id"], profile["columns"]["x"]
    failures = {c.rule: c.observed for c in evaluate(_small(), profile).failures}
    assert failures == {
        'IsComplete "id"': "None nulls",
        'ColumnValues "x" between 0 and 10': "None..None",
        'Mean "x" between 2 and 8': "None",
    }
    assert evaluate(_small(), _profile(rows_in=0, written=0, rejected=0)).failures[0].rule == "RowCount >= 1"
    assert evaluate(_small(), _profile(rows_in=1, written=1, rejected=0)).passed, "one row is a batch"


def test_the_small_contracts_rules_as_dqdl_exactly() -> None:
    from pipeline.gate import dqdl

    assert dqdl(_small()) == (
        "Rules = [\n"
        "    RowCount >= 1,\n"
        '    IsComplete "id",\n'
        '    IsComplete "part",\n'
        '    ColumnValues "x" between 0 and 10,\n'
        '    ColumnValues "age" between 0 and 120,\n'
        '    Mean "x" between 2 and 8\n'
        "]"
    )


def test_a_builds_checks_name_the_key_and_give_their_figures() -> None:
    from pipeline.gate import Check, Moments, check_build

    contract = _small(min_rows=3, max_mean_shift={"x": 1.0, "y": 1.0})
    result = check_build(
        contract,
        rows=3,
        keys=2,
        previous_rows=4,
        moments={"x": Moments(5.0, 1.0), "y": Moments(9.0, 1.0)},
        previous_moments={"x": Moments(5.0, 0.0), "y": Moments(1.0, 2.0)},
    )
    assert result.contract == "shop/items" and not result.passed
    assert result.checks == (
        Check("RowCount >= 3", True, "3"),
        Check("IsUnique id, part", False, "2 keys in 3 rows"),
        Check("RowCount >= 0 x the previous build", True, "3 after 4"),
        Check('Mean "y" within 1 sd of the previous build', False, "4.00 sd"),
    ), "x did not vary before (no sd): nothing to measure, and y is checked after it"
