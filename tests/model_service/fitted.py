"""Small scikit-learn models fitted in process, for the compiled form's tests (no MLflow: fast enough to run
once per mutant, scripts/mutation.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline

from model_service.compiled import TreeEnsemble, compile_gradient_boosting, verified

COLUMNS = ["a", "b", "c"]


def fitted(
    *steps, rows: int = 60, named: bool = True, missing: bool = True, empty_column: bool = False, columns=COLUMNS
):
    random = np.random.default_rng(1)
    features = random.normal(size=(rows, 3))
    target = features[:, 0] * 3 + features[:, 1]
    if missing:
        features[::7, 1] = np.nan
    if empty_column:
        features[:, 2] = np.nan
    frame = pd.DataFrame(features, columns=columns) if named else features
    return make_pipeline(*steps).fit(frame, target)


def boosted(**parameters):
    return fitted(SimpleImputer(strategy="median"), GradientBoostingRegressor(**parameters), rows=200)


def verified_form(model, columns=COLUMNS) -> TreeEnsemble:
    return verified(compile_gradient_boosting(model), lambda rows: model.predict(pd.DataFrame(rows, columns=columns)))


def nudged(ensemble: TreeEnsemble, which: int = 0) -> TreeEnsemble:
    """The ensemble with one leaf's value a billionth off (one float64 step would vanish in the sum): a compiled
    form that is wrong at one leaf of one tree."""
    value = ensemble.value.copy()
    value[ensemble.leaves()[which]] += 1e-9
    return replace(ensemble, value=value)
