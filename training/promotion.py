"""Whether a newly trained version moves an alias, decided on scores of the same held-out split of the same
pinned data version: the new version's and the current champion's, computed now (never the champion's stored
metric, which was measured on older data and a different split). Pure: training/train.py scores, this decides.

Where a person approves what serves (config ml.training.approval_required: prd), a better version becomes the
`challenger` and `python -m training.aliases approve` moves `champion` to it; elsewhere it becomes `champion`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.registry import CHAMPION_ALIAS

CHALLENGER_ALIAS = "challenger"
PREVIOUS_CHAMPION_TAG = "previous_champion"
"""A model version's tag naming the version that was champion before it: what a rollback moves back to."""


@dataclass(frozen=True)
class ChampionScore:
    """The current champion scored on the new version's held-out split: its RMSE, or why it could not score
    (a model of other features, a version whose artifacts are gone)."""

    version: str
    rmse: float | None
    problem: str | None = None


@dataclass(frozen=True)
class Decision:
    alias: str | None
    """The alias the new version takes (champion or challenger), or None: it moves nothing."""
    reason: str


def decide(
    new_version: str,
    new_rmse: float,
    champion: ChampionScore | None,
    *,
    approval_required: bool,
    min_improvement: float = 0.0,
) -> Decision:
    """The new version moves `champion` (or `challenger`, where a person approves) when there is no champion,
    when the champion cannot score this data, or when it scores better than the champion by more than
    `min_improvement` (RMSE, lower is better); else nothing moves, and the reason says by how much it fell short."""
    alias = CHALLENGER_ALIAS if approval_required else CHAMPION_ALIAS
    if champion is None:
        return Decision(alias, f"version {new_version} is the first: no champion to beat")
    if champion.rmse is None:
        return Decision(
            alias, f"champion version {champion.version} cannot score this data ({champion.problem}): replaced"
        )
    margin = champion.rmse - new_rmse
    compared = (
        f"version {new_version} RMSE {new_rmse:.3f}, champion version {champion.version} RMSE "
        f"{champion.rmse:.3f} on the same held-out split"
    )
    if margin > min_improvement:
        return Decision(alias, f"{compared}: better by {margin:.3f}")
    return Decision(None, f"{compared}: not better by more than {min_improvement:.3f}; the champion stays")


def enough_new_rows(rows_now: int, rows_at_last_training: int | None, minimum: int) -> str | None:
    """Why training would not start (too few rows changed since the last training's data), or None."""
    if rows_at_last_training is None or minimum <= 0:
        return None
    new = rows_now - rows_at_last_training
    if new < minimum:
        return (
            f"{new} new rows since the last training ({rows_at_last_training} then, {rows_now} now): "
            f"fewer than the {minimum} config ml.training.min_new_rows asks for"
        )
    return None


CHAMPION_AGE_METRIC = "ChampionAgeDays"
"""What each training run in AWS reports (training/train.py --metrics-namespace) and the stale-champion alarm
reads (infra/constructs/training_pipeline.py): one name, both sides."""
MODEL_DIMENSION = "model"
DAY_MS = 86_400_000


def champion_age_days(registered_ms: int | None, trained_on: str | None, data_now: str, now_ms: int) -> float:
    """How stale the champion is: the days since it was registered, where the table now holds other data than it
    learned (`trained_on`, its run's data source, names another build than `data_now`); 0 where it learned
    today's data or there is no champion. A champion that keeps winning on new builds stays young (each win
    registers it anew); one the runs cannot beat or replace ages, and the alarm says so."""
    if registered_ms is None or trained_on == data_now:
        return 0.0
    return max(0.0, (now_ms - registered_ms) / DAY_MS)
