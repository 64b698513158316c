"""InlierKFold and synthetic reference outliers: one-class grid search without test labels."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import IsolationForest
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from skuad import LAMPAutoencoderDetector
from skuad.metrics import make_outlier_scorer
from skuad.model_selection import InlierKFold, with_synthetic_outliers
from tests.conftest import FAST_DETECTORS, detector_id


def _labels(n_inliers=40, n_outliers=9, seed=0):
    y = np.r_[np.ones(n_inliers, dtype=int), -np.ones(n_outliers, dtype=int)]
    return np.random.RandomState(seed).permutation(y)


@pytest.mark.parametrize("shuffle", [False, True])
def test_fold_contents(shuffle):
    y = _labels()
    X = np.zeros((len(y), 2))
    folds = list(InlierKFold(3, shuffle=shuffle, random_state=0).split(X, y))
    assert len(folds) == InlierKFold(3).get_n_splits() == 3
    tested = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(tested), np.arange(len(y)))  # every row tested exactly once
    for train, test in folds:
        assert np.all(y[train] == 1)  # training folds: inliers only
        assert (y[test] == 1).any() and (y[test] == -1).any()  # test folds: both
        assert not np.intersect1d(train, test).size
        # every inlier outside the test fold is trained on
        assert np.array_equal(np.sort(np.r_[train, test[y[test] == 1]]), np.flatnonzero(y == 1))
        assert abs((y[test] == -1).sum() - 3) <= 1  # outliers spread evenly


def test_anomaly_convention_gives_the_same_folds_and_auto_refuses_it():
    y = _labels()
    X = np.zeros((len(y), 1))
    y_anomaly = (y == -1).astype(int)
    sk = list(InlierKFold(4).split(X, y))
    an = list(InlierKFold(4, y_convention="anomaly").split(X, y_anomaly))
    for (a, b), (c, d) in zip(sk, an, strict=True):
        assert np.array_equal(a, c) and np.array_equal(b, d)
    with pytest.raises(ValueError, match="y_convention"):
        list(InlierKFold(4).split(X, y_anomaly))


def test_too_few_outliers_or_bad_input_raise():
    y = _labels(n_outliers=2)
    X = np.zeros((len(y), 1))
    with pytest.raises(ValueError, match="at least 3 inliers and 3 outliers"):
        list(InlierKFold(3).split(X, y))
    with pytest.raises(ValueError, match="n_splits"):
        list(InlierKFold(1).split(X, y))
    with pytest.raises(ValueError, match="required"):
        list(InlierKFold(2).split(X))
    with pytest.raises(ValueError, match="rows but y has"):
        list(InlierKFold(2).split(X[:-1], y))


def test_synthetic_outliers():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 3))
    X_aug, y_aug = with_synthetic_outliers(X, 30, random_state=0)
    assert X_aug.shape == (110, 3) and np.array_equal(X_aug[:80], X)
    assert np.array_equal(y_aug, np.r_[np.ones(80), -np.ones(30)])
    synthetic = X_aug[80:]
    for j in range(3):  # product of marginals: every value is one of that column's values
        assert np.isin(synthetic[:, j], X[:, j]).all()
    assert not any((synthetic == row).all(axis=1).any() for row in X[:5])  # rows recombined
    again, _ = with_synthetic_outliers(X, 30, random_state=0)
    assert np.array_equal(again, X_aug)
    box, _ = with_synthetic_outliers(X, kind="uniform", margin=0.5, random_state=0)
    low, high = X.min(axis=0), X.max(axis=0)
    assert len(box) == 100
    assert np.all(box[80:] >= low - 0.5 * (high - low)) and np.all(
        box[80:] <= high + 0.5 * (high - low)
    )
    with pytest.raises(ValueError, match="kind"):
        with_synthetic_outliers(X, kind="gaussian")


def test_grid_search_over_amplification_in_a_pipeline(blobs):
    X, y = blobs
    inliers = X[y == 1]
    X_select, y_select = with_synthetic_outliers(inliers, random_state=0)
    pipeline = Pipeline(
        [("scale", MinMaxScaler()), ("lamp", LAMPAutoencoderDetector(epochs=2, random_state=0))]
    )
    search = GridSearchCV(
        pipeline,
        {"lamp__amplification": [0.0, 10.0]},
        scoring=make_outlier_scorer("roc_auc"),
        cv=InlierKFold(2, shuffle=True, random_state=0),
        refit=False,  # the synthetic rows must not be trained on; refit on inliers instead
    ).fit(X_select, y_select)
    assert search.best_params_["lamp__amplification"] in (0.0, 10.0)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


# One configuration per skuad detector class (the first in the registry), plus scikit-learn's own.
ONE_PER_CLASS = list({type(est): est for est in reversed(FAST_DETECTORS)}.values())


@pytest.mark.parametrize(
    "estimator",
    [IsolationForest(n_estimators=10, random_state=0), *ONE_PER_CLASS],
    ids=lambda est: detector_id(est) if hasattr(est, "image_shape") else type(est).__name__,
)
def test_every_detector_cross_validates_with_the_splitter_and_scorer(estimator, blobs):
    X, y = blobs
    scores = cross_val_score(
        clone(estimator),
        X,
        y,
        cv=InlierKFold(2, shuffle=True, random_state=0),
        scoring=make_outlier_scorer("roc_auc"),
        error_score="raise",
    )
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
