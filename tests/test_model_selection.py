"""InlierKFold, FitOnInliers and synthetic reference outliers: one-class model selection."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import IsolationForest
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    StratifiedKFold,
    cross_val_score,
    validation_curve,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import check_estimator

from skuad import LAMPAutoencoderDetector
from skuad.metrics import make_outlier_scorer
from skuad.model_selection import FitOnInliers, InlierKFold, with_synthetic_outliers
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


class RecordingForest(IsolationForest):
    """IsolationForest that keeps a copy of the rows it was fitted on (for the tests only)."""

    def fit(self, X, y=None, sample_weight=None):
        self.fitted_rows_ = np.array(X, copy=True)
        return super().fit(X, y, sample_weight=sample_weight)


def _rows_seen(fitted_rows, X):
    """Which rows of X are among the fitted rows."""
    return np.array([(fitted_rows == row).all(axis=1).any() for row in X])


def test_grid_search_refit_on_every_row_unless_the_detector_fits_on_inliers(blobs):
    X, y = blobs
    search_options = {
        "scoring": make_outlier_scorer("roc_auc"),
        "cv": InlierKFold(3, shuffle=True, random_state=0),
    }
    grid = {"n_estimators": [10, 20]}
    bare = GridSearchCV(RecordingForest(random_state=0), grid, **search_options).fit(X, y)
    assert _rows_seen(bare.best_estimator_.fitted_rows_, X[y == -1]).all()  # the trap

    grid = {"detector__n_estimators": [10, 20]}
    safe = GridSearchCV(FitOnInliers(RecordingForest(random_state=0)), grid, **search_options)
    safe.fit(X, y)
    fitted_rows = safe.best_estimator_.detector_.fitted_rows_
    assert not _rows_seen(fitted_rows, X[y == -1]).any()  # never saw an outlier
    assert _rows_seen(fitted_rows, X[y == 1]).all() and len(fitted_rows) == (y == 1).sum()
    assert safe.best_estimator_.n_inliers_fit_ == 200
    # The folds' scores are the bare detector's: the splitter already kept outliers out.
    assert np.array_equal(safe.cv_results_["mean_test_score"], bare.cv_results_["mean_test_score"])


def test_refitted_lamp_equals_a_fit_on_the_inliers(blobs):
    X, y = blobs
    search = GridSearchCV(
        FitOnInliers(LAMPAutoencoderDetector(epochs=2, random_state=0, device="cpu")),
        {"detector__amplification": [0.0, 5.0]},
        scoring=make_outlier_scorer("roc_auc"),
        cv=InlierKFold(2, shuffle=True, random_state=0),
    ).fit(X, y)
    best = search.best_params_["detector__amplification"]
    direct = LAMPAutoencoderDetector(amplification=best, epochs=2, random_state=0, device="cpu")
    direct.fit(X[y == 1])
    assert np.allclose(search.best_estimator_.score_samples(X), direct.score_samples(X))
    assert search.best_estimator_.offset_ == pytest.approx(direct.offset_)
    assert np.array_equal(search.predict(X), direct.predict(X))


def test_stratified_folds_with_fit_on_inliers_match_inlier_kfold(blobs):
    X, y = blobs
    scorer = make_outlier_scorer("roc_auc")
    forest = IsolationForest(n_estimators=20, random_state=0)
    with_splitter = cross_val_score(forest, X, y, cv=InlierKFold(4), scoring=scorer)
    with_wrapper = cross_val_score(
        FitOnInliers(forest), X, y, cv=StratifiedKFold(4), scoring=scorer
    )
    assert np.array_equal(with_splitter, with_wrapper)


def test_validation_curve_and_halving_search_are_quiet_and_correct(blobs):
    X, y = blobs
    scorer = make_outlier_scorer("roc_auc")
    forest = IsolationForest(random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Inlier-only training folds: a ranking of one class is undefined, so train scores
        # are nan (quietly); the test scores are computed.
        train, test = validation_curve(
            forest, X, y, param_name="n_estimators", param_range=[5, 20],
            cv=InlierKFold(3), scoring=scorer,
        )  # fmt: skip
        assert np.isnan(train).all() and np.isfinite(test).all() and test.min() > 0.9
        # Fitted on the inliers of stratified folds, the training folds' outliers make the
        # train scores defined.
        train, test = validation_curve(
            FitOnInliers(forest), X, y, param_name="detector__n_estimators",
            param_range=[5, 20], cv=StratifiedKFold(3), scoring=scorer,
        )  # fmt: skip
        assert np.isfinite(train).all() and np.isfinite(test).all()
        search = HalvingGridSearchCV(
            FitOnInliers(RecordingForest(random_state=0)),
            {"detector__n_estimators": [5, 10, 20, 40]},
            cv=StratifiedKFold(3), scoring=scorer, random_state=0,
        ).fit(X, y)  # fmt: skip
        assert np.isfinite(search.cv_results_["mean_train_score"]).all()
        assert not _rows_seen(search.best_estimator_.detector_.fitted_rows_, X[y == -1]).any()
        search = HalvingGridSearchCV(
            forest, {"n_estimators": [5, 10, 20, 40]}, cv=InlierKFold(3), scoring=scorer,
            return_train_score=False, refit=False, random_state=0,
        ).fit(X, y)  # fmt: skip
        assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_fit_on_inliers_reads_labels_safely(blobs):
    X, y = blobs
    y_anomaly = (y == -1).astype(int)
    forest = IsolationForest(n_estimators=10, random_state=0)
    reference = clone(forest).fit(X[y == 1]).score_samples(X)
    model = FitOnInliers(forest, y_convention="anomaly").fit(X, y_anomaly)
    assert np.array_equal(model.score_samples(X), reference)
    assert np.array_equal(FitOnInliers(forest).fit(X, y).decision_function(X),
                          clone(forest).fit(X[y == 1]).decision_function(X))  # fmt: skip
    assert FitOnInliers(forest).fit(X).n_inliers_fit_ == len(X)  # y=None: every row
    assert FitOnInliers(forest).fit(X[y == 1], y[y == 1]).n_inliers_fit_ == 200  # all +1
    with pytest.raises(ValueError, match="Cannot tell which label"):
        FitOnInliers(forest).fit(X, y_anomaly)  # {0, 1} is never guessed
    with pytest.raises(ValueError, match="no row as an inlier"):
        FitOnInliers(forest).fit(X[y == -1], y[y == -1])
    with pytest.raises(ValueError, match="one outlier label per row"):
        FitOnInliers(forest).fit(X, y[:-1])
    with pytest.raises(ValueError, match="y_convention"):
        FitOnInliers(forest, y_convention="pyod").fit(X, y)


def test_fit_on_inliers_subsets_per_row_fit_params_and_nests_params(blobs):
    X, y = blobs
    weights = np.random.RandomState(0).uniform(0.5, 2.0, size=len(X))
    forest = IsolationForest(n_estimators=10, random_state=0)
    model = FitOnInliers(forest).fit(X, y, sample_weight=weights)
    reference = clone(forest).fit(X[y == 1], sample_weight=weights[y == 1])
    assert np.array_equal(model.score_samples(X), reference.score_samples(X))

    model = FitOnInliers(make_pipeline(MinMaxScaler(), forest))
    model.set_params(detector__isolationforest__n_estimators=3)
    assert model.get_params()["detector__isolationforest__n_estimators"] == 3
    assert len(model.fit(X, y).detector_[-1].estimators_) == 3
    assert not hasattr(forest, "estimators_")  # the given detector is cloned, never fitted


class _LabelsWithheld(FitOnInliers):
    """FitOnInliers as scikit-learn's checks see it when they pass no outlier labels."""

    def fit(self, X, y=None, **fit_params):
        return super().fit(X, **fit_params)


@pytest.mark.parametrize(
    "detector",
    [IsolationForest(n_estimators=10, random_state=0), FAST_DETECTORS[2]],
    ids=["IsolationForest", "LAMPAutoencoderDetector"],
)
def test_fit_on_inliers_passes_the_sklearn_checks_when_labels_are_withheld(detector):
    """scikit-learn's checks pass classification targets (0, 1, 2, ...) as ``y``, which
    FitOnInliers refuses as outlier labels by design; every other behaviour is checked."""
    results = check_estimator(_LabelsWithheld(detector), on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert not failed
