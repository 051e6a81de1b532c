"""The registered model in the form that predicts fastest and loads fastest, with the same answers as MLflow's own.

Through MLflow's generic wrapper one record took 0.7-1.6 ms (a pandas frame per request, the signature enforced
again, scikit-learn's input checks at every step), and loading it imported scikit-learn, SciPy and skops: most of a
Lambda cold start. The model `training/train.py` registers (a SimpleImputer, then a GradientBoostingRegressor) is
a sum of small decision trees, so training also stores it as plain arrays (`compiled.npz`, in the registered
model's own directory): the imputer's statistics, the init estimator's constant, the learning rate and every
tree's nodes. The service evaluates them with NumPy alone, as scikit-learn does: missing values replaced by the
statistics, the matrix cast to float32 (what `GradientBoostingRegressor.predict` compares), each tree walked
(`x <= threshold` goes left), and the trees' scaled values added to the constant one tree after another, in
scikit-learn's order, so that every float64 operation is the same and so is the result, bit for bit.

Training writes the arrays only after they answered a probe exactly as the model does: a row that takes each tree
to each of its leaves (a wrong value at any leaf shows), and rows at every split threshold, just either side of it
in float32 and in float64, and missing. The probe and the model's answers are stored with the arrays, and loading
them checks them again, with NumPy alone. A model without the file (trained elsewhere, or before it existed) is
compiled when the service loads it, checked on the same probe against MLflow's wrapper, and served through the
wrapper if it is of another shape or answers differently (model_service/model.py logs why).

On large batches the arrays are slower than scikit-learn's compiled loop (about 6 microseconds a record against 1
on this machine: 1,000 records in 6-7 ms), a price paid for loading without scikit-learn; a batch is scored in
blocks of BLOCK_ROWS records, which bounds the memory, and the API scores a large one in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

COMPILED_FILE = "compiled.npz"
"""The arrays' file, in the registered model's directory (training/train.py logs it there)."""
FORMAT = "tree-ensemble/1"
ARRAYS = ("statistics", "roots", "feature", "threshold", "children", "value", "check_rows", "check_answers")
BLOCK_ROWS = 256
PROBE_ROWS = 512
PROBE_SEED = 20261204


class NotCompiled(Exception):
    """The model is not of a shape this module compiles, or its compiled form answered differently; the
    message says which, for the log."""


@dataclass(frozen=True)
class TreeEnsemble:
    """An imputer then gradient-boosted regression trees, as arrays. The trees' nodes are numbered across the
    ensemble; a leaf's children are itself, so every row may take `depth` steps."""

    columns: tuple[str, ...]  # the matrix's columns, in the order the model was fitted on
    statistics: np.ndarray  # per column, what a missing value becomes
    init: float  # the init estimator's prediction (a constant)
    scale: float  # the learning rate
    roots: np.ndarray  # per tree, its root's node number
    feature: np.ndarray  # per node, the column it compares (0 for a leaf)
    threshold: np.ndarray  # per node, the value it compares with (float64, as scikit-learn keeps it)
    children: np.ndarray  # node n's left child (where `x <= threshold` goes) at 2n, its right child at 2n + 1
    value: np.ndarray  # per node, the tree's prediction there (a leaf's is the one used)
    depth: int
    check_rows: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    """The probe it was verified on, and the model's own answers to it (`verified`): stored with the arrays, so
    that loading them checks them again with NumPy alone (a damaged file, or another NumPy, is refused)."""
    check_answers: np.ndarray = field(default_factory=lambda: np.empty(0))

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Predictions for a float64 matrix (one row per record, `columns` in order, NaN where missing), in blocks
        of BLOCK_ROWS rows (the per-tree arrays of a block stay small: 10,000 rows at once took 57 MiB)."""
        if matrix.shape[0] <= BLOCK_ROWS:
            return self._predict_block(matrix)
        return np.concatenate(
            [self._predict_block(matrix[i : i + BLOCK_ROWS]) for i in range(0, len(matrix), BLOCK_ROWS)]
        )

    def _predict_block(self, matrix: np.ndarray) -> np.ndarray:
        imputed = np.where(np.isnan(matrix), self.statistics, matrix)
        rows = imputed.astype(np.float32)  # what GradientBoostingRegressor.predict casts to before the trees
        if not np.isfinite(rows).all():  # scikit-learn refuses them too (infinite, or beyond float32's range)
            raise ValueError("a value is infinite or too large for float32: the model cannot score it")
        flat, width = rows.ravel(), rows.shape[1]
        start = np.arange(rows.shape[0]) * width  # each row's first value in `flat`
        node = np.broadcast_to(self.roots[:, None], (self.roots.size, rows.shape[0]))  # per tree, per row
        for _ in range(self.depth):
            value = flat.take(start + self.feature.take(node))
            goes_right = ~(value <= self.threshold.take(node))  # float32 compared as float64, as in the trees
            node = self.children.take(node * 2 + goes_right)
        terms = np.empty((self.roots.size + 1, rows.shape[0]))
        terms[0] = self.init
        np.multiply(self.scale, self.value.take(node), out=terms[1:])
        summed: np.ndarray = np.add.accumulate(terms, axis=0)[-1]  # one tree after another, as scikit-learn adds
        return summed

    def _is_leaf(self) -> np.ndarray:
        """Per node, whether it is a leaf (its children are itself)."""
        return np.asarray(self.children[0::2] == np.arange(self.feature.size))

    def leaves(self) -> np.ndarray:
        """The node numbers of every tree's leaves."""
        return np.flatnonzero(self._is_leaf())

    def leaf_rows(self) -> np.ndarray:
        """One row per leaf that a float32 value can reach, taking its tree there: each column on the leaf's path
        at the bound of its interval (a `<=` bound itself, so equality is tested; else the first float32 value
        past a `>` bound), the others at the imputer's statistics."""
        rows = []
        for root in self.roots.tolist():
            paths = [(root, np.full(self.statistics.size, -np.inf), np.full(self.statistics.size, np.inf))]
            while paths:
                node, low, high = paths.pop()  # the values a float32 x may take here: low < x <= high
                left, right = int(self.children[2 * node]), int(self.children[2 * node + 1])
                if left == node:
                    row = _inside(low, high, self.statistics)
                    if row is not None:
                        rows.append(row)
                    continue
                column, cut = int(self.feature[node]), float(self.threshold[node])
                below, above = high.copy(), low.copy()
                below[column], above[column] = min(high[column], cut), max(low[column], cut)
                paths += [(left, low, below), (right, above, high)]
        return np.array(rows)

    def thresholds(self) -> dict[int, np.ndarray]:
        """Per column, the split values its trees compare it with."""
        split = ~self._is_leaf()
        return {
            column: np.unique(self.threshold[split & (self.feature == column)])
            for column in np.unique(self.feature[split]).tolist()
        }

    def save(self, path: Path) -> None:
        if not self.check_answers.size:
            raise NotCompiled("only a verified ensemble is stored (verified())")
        arrays = {name: getattr(self, name) for name in ARRAYS}
        np.savez(
            path, format=FORMAT, columns=self.columns, init=self.init, scale=self.scale, depth=self.depth, **arrays
        )

    @classmethod
    def load(cls, path: Path) -> TreeEnsemble:
        with np.load(path, allow_pickle=False) as arrays:
            if str(arrays["format"]) != FORMAT:
                raise NotCompiled(f"{path.name} is of format {arrays['format']}, this service reads {FORMAT}")
            return cls(
                columns=tuple(str(c) for c in arrays["columns"]),
                init=float(arrays["init"]),
                scale=float(arrays["scale"]),
                depth=int(arrays["depth"]),
                **{name: arrays[name] for name in ARRAYS},
            ).checked()

    def checked(self) -> TreeEnsemble:
        """The ensemble, once it answers its stored probe as the model did when it was verified."""
        if not self.check_answers.size or not np.array_equal(self.predict(self.check_rows), self.check_answers):
            raise NotCompiled("its arrays do not answer their stored probe as the model did: damaged, or another NumPy")
        return self


def compile_gradient_boosting(model: Any) -> TreeEnsemble:
    """A fitted Pipeline(SimpleImputer, GradientBoostingRegressor) as a TreeEnsemble; NotCompiled for any other
    shape, with the reason."""
    from sklearn.dummy import DummyRegressor
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    steps = [step for _, step in model.steps] if type(model) is Pipeline else [model]
    shape = [type(step).__name__ for step in steps]
    if len(steps) != 2 or type(steps[0]) is not SimpleImputer or type(steps[1]) is not GradientBoostingRegressor:
        raise NotCompiled(f"a model of steps {shape}: compiled are SimpleImputer then GradientBoostingRegressor")
    imputer, boosting = steps
    statistics = np.asarray(imputer.statistics_)  # float64: the imputer was fitted on the float64 frame
    if imputer.add_indicator:
        raise NotCompiled("the imputer adds indicator columns")
    if not _is_nan(imputer.missing_values):
        raise NotCompiled(f"the imputer replaces {imputer.missing_values!r}, not NaN")
    if np.isnan(statistics).any():
        raise NotCompiled("the imputer drops a column that was empty in training")
    if not (type(boosting.init_) is DummyRegressor or boosting.init_ == "zero"):
        raise NotCompiled(f"the boosting's init estimator is a {type(boosting.init_).__name__}: not a constant")
    columns = tuple(str(name) for name in getattr(model, "feature_names_in_", ()))
    if len(columns) != len(statistics):
        raise NotCompiled("the model was not fitted on named features")
    init = float(boosting._raw_predict_init(np.zeros((1, len(columns)), dtype=np.float32))[0, 0])
    return _from_trees([tree.tree_ for tree in boosting.estimators_[:, 0]], columns, statistics, init, boosting)


def _from_trees(
    trees: list[Any], columns: tuple[str, ...], statistics: np.ndarray, init: float, boosting: Any
) -> TreeEnsemble:
    roots, feature, threshold, children, value = [], [], [], [], []
    offset = 0
    for tree in trees:
        nodes = np.arange(tree.node_count) + offset
        leaf = tree.children_left < 0
        roots.append(offset)
        feature.append(np.where(leaf, 0, tree.feature))
        threshold.append(np.where(leaf, 0.0, tree.threshold))
        left, right = (
            np.where(leaf, nodes, tree.children_left + offset),
            np.where(leaf, nodes, tree.children_right + offset),
        )
        children.append(np.column_stack([left, right]).ravel())
        value.append(tree.value[:, 0, 0])
        offset += tree.node_count
    return TreeEnsemble(
        columns=columns,
        statistics=statistics,
        init=init,
        scale=float(boosting.learning_rate),
        roots=np.array(roots),
        feature=np.concatenate(feature),
        threshold=np.concatenate(threshold),
        children=np.concatenate(children),
        value=np.concatenate(value),
        depth=max(int(tree.max_depth) for tree in trees),
    )


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and np.isnan(value)


def probe(ensemble: TreeEnsemble, rows: int = PROBE_ROWS, seed: int = PROBE_SEED) -> np.ndarray:
    """Rows that take every tree to every leaf a float32 value can reach (`leaf_rows`), and rows around the
    splits: every column takes, in some row, each of its split thresholds, the float32 values just below and
    above it (the trees compare float32), the float64 values just below and above it (rounded to float32 as
    scikit-learn rounds them), and missing, the columns' values shuffled independently so the rows mix them."""
    random = np.random.default_rng(seed)
    cuts = ensemble.thresholds()
    candidates = [_near(cuts.get(column, np.zeros(1))) for column in range(len(ensemble.columns))]
    height = max(rows, *(len(values) for values in candidates))
    around = np.column_stack([random.permutation(np.resize(values, height)) for values in candidates])
    return np.vstack([ensemble.leaf_rows(), around])


def _inside(low: np.ndarray, high: np.ndarray, fill: np.ndarray) -> np.ndarray | None:
    """A row whose float32 values satisfy low < x <= high in every column (at a bound where there is one), or
    None when a column's interval holds no float32 value."""
    row = fill.copy()
    for column in np.flatnonzero(np.isfinite(high) | np.isfinite(low)).tolist():
        if np.isfinite(high[column]):
            value = np.float32(high[column])
            if value > high[column]:
                value = np.nextafter(value, np.float32(-np.inf))
        else:
            value = np.float32(low[column])
            if value <= low[column]:
                value = np.nextafter(value, np.float32(np.inf))
        if not low[column] < value <= high[column]:
            return None
        row[column] = value
    return row


def _near(cuts: np.ndarray) -> np.ndarray:
    single = cuts.astype(np.float32)
    return np.concatenate(
        [
            cuts,
            np.nextafter(single, np.float32(-np.inf)),  # float32: made float64 by the concatenation
            np.nextafter(single, np.float32(np.inf)),
            np.nextafter(cuts, -np.inf),
            np.nextafter(cuts, np.inf),
            [np.nan],
        ]
    )


def verified(ensemble: TreeEnsemble, reference: Callable[[np.ndarray], np.ndarray]) -> TreeEnsemble:
    """`ensemble` with its check (the probe and `reference`'s answers), once it has answered the probe exactly as
    `reference` (the model's own predict, on a matrix in the ensemble's column order); NotCompiled with the count
    of rows that differ otherwise."""
    rows = probe(ensemble)
    expected = np.asarray(reference(rows))
    answered = ensemble.predict(rows)
    if not np.array_equal(answered, expected):
        differing = int(np.sum(answered != expected))
        raise NotCompiled(f"the compiled form answered {differing} of {len(rows)} probe rows differently")
    return replace(ensemble, check_rows=rows, check_answers=expected)
