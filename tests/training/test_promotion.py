"""The promotion decision (training/promotion.py): on scores of the same held-out split, by a margin, to the
champion or, where a person approves, the challenger; and the guard on new rows."""

from __future__ import annotations

import pytest

from training.promotion import CHALLENGER_ALIAS, ChampionScore, Decision, decide, enough_new_rows

SPLIT = "on the same held-out split"


@pytest.mark.parametrize("approval", [False, True])
def test_the_first_version_takes_the_alias_its_stage_gives(approval: bool) -> None:
    alias = CHALLENGER_ALIAS if approval else "champion"
    assert decide("1", 50.0, None, approval_required=approval) == Decision(
        alias, "version 1 is the first: no champion to beat"
    )


def test_a_better_version_moves_the_alias_and_a_worse_or_equal_one_does_not() -> None:
    champion = ChampionScore("3", 52.0)
    assert decide("4", 51.5, champion, approval_required=False) == Decision(
        "champion", f"version 4 RMSE 51.500, champion version 3 RMSE 52.000 {SPLIT}: better by 0.500"
    )
    assert decide("4", 51.5, champion, approval_required=True).alias == CHALLENGER_ALIAS
    assert decide("4", 52.0, champion, approval_required=False) == Decision(
        None,
        f"version 4 RMSE 52.000, champion version 3 RMSE 52.000 {SPLIT}: not better by more than 0.000; "
        "the champion stays",
    )
    assert decide("4", 60.0, champion, approval_required=True).alias is None


def test_a_version_must_beat_the_champion_by_the_margin() -> None:
    champion = ChampionScore("3", 52.0)
    assert decide("4", 51.5, champion, approval_required=False, min_improvement=0.5).alias is None
    assert decide("4", 51.49, champion, approval_required=False, min_improvement=0.5).alias == "champion"


def test_a_champion_that_cannot_score_this_data_is_replaced_and_the_reason_says_why() -> None:
    broken = ChampionScore("2", None, "ValueError: X has 9 features, but the model expects 10")
    assert decide("5", 80.0, broken, approval_required=False) == Decision(
        "champion",
        "champion version 2 cannot score this data (ValueError: X has 9 features, but the model expects 10): replaced",
    )


def test_training_waits_for_enough_new_rows() -> None:
    assert enough_new_rows(1000, None, 500) is None, "never trained: nothing to wait for"
    assert enough_new_rows(1000, 900, 0) is None, "no minimum"
    assert enough_new_rows(800, 900, 0) is None, "no minimum, though rows were erased"
    assert enough_new_rows(900, 900, 1) == (
        "0 new rows since the last training (900 then, 900 now): fewer than the 1 config ml.training.min_new_rows "
        "asks for"
    )
    assert enough_new_rows(1400, 900, 500) is None
    assert enough_new_rows(1399, 900, 500) == (
        "499 new rows since the last training (900 then, 1399 now): fewer than the 500 config "
        "ml.training.min_new_rows asks for"
    )


def test_a_champion_ages_only_while_the_table_holds_data_it_did_not_learn() -> None:
    from training.promotion import DAY_MS, champion_age_days

    registered = 1_700_000_000_000
    assert champion_age_days(registered, "s3://c/t build 3", "s3://c/t build 4", registered + 3 * DAY_MS) == 3.0
    assert champion_age_days(registered, "s3://c/t build 4", "s3://c/t build 4", registered + 30 * DAY_MS) == 0.0
    assert champion_age_days(None, None, "s3://c/t build 4", registered) == 0.0, "no champion: nothing stale"
    assert champion_age_days(registered, None, "x", registered + DAY_MS // 2) == 0.5, "a champion of unknown data"
    assert champion_age_days(registered, "a", "b", registered - DAY_MS) == 0.0, "clocks apart: never below 0"
