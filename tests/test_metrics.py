"""Outlier scores and scorers: label conventions are explicit, never guessed."""

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skuad.metrics import (
    is_outlier,
    make_outlier_scorer,
    outlier_average_precision_score,
    outlier_roc_auc_score,
)

# Normality scores (higher = more normal) and the truth in both conventions.
SCORES = np.array([0.9, 0.8, 0.7, 0.4, 0.6, 0.1])
Y_SKLEARN = np.array([1, 1, 1, -1, 1, -1])
Y_ANOMALY = np.array([0, 0, 0, 1, 0, 1])


def test_both_conventions_give_the_same_outlier_mask_and_scores():
    assert np.array_equal(is_outlier(Y_SKLEARN, "sklearn"), is_outlier(Y_ANOMALY, "anomaly"))
    assert np.array_equal(is_outlier(Y_SKLEARN), Y_SKLEARN == -1)
    for metric in (outlier_roc_auc_score, outlier_average_precision_score):
        assert metric(Y_SKLEARN, SCORES) == metric(Y_ANOMALY, SCORES, y_convention="anomaly")


def test_values_match_scikit_learn_with_outliers_as_positives():
    expected_auc = roc_auc_score(Y_ANOMALY, -SCORES)
    expected_ap = average_precision_score(Y_ANOMALY, -SCORES)
    assert outlier_roc_auc_score(Y_SKLEARN, SCORES) == pytest.approx(expected_auc)
    assert outlier_average_precision_score(Y_SKLEARN, SCORES) == pytest.approx(expected_ap)
    # Both outliers (0.4, 0.1) score below all four inliers.
    assert expected_auc == 1.0


def test_a_ranking_error_lowers_the_score():
    scores = SCORES.copy()
    scores[3] = 0.75  # an outlier now scores above two inliers
    assert outlier_roc_auc_score(Y_SKLEARN, scores) == pytest.approx(6 / 8)


@pytest.mark.parametrize("y", [Y_ANOMALY, np.ones(6, dtype=int), np.array([0, 0, 1, 1, 2, 2])])
def test_auto_refuses_labels_that_could_be_read_either_way(y):
    with pytest.raises(ValueError, match="y_convention"):
        outlier_roc_auc_score(y, SCORES)


@pytest.mark.parametrize(
    "y, convention",
    [(Y_ANOMALY, "sklearn"), (Y_SKLEARN, "anomaly"), (np.array([0, 1, 2, 0, 1, 2]), "anomaly")],
)
def test_labels_outside_the_named_convention_raise(y, convention):
    with pytest.raises(ValueError, match="expects labels"):
        outlier_roc_auc_score(y, SCORES, y_convention=convention)


def test_one_class_only_raises_instead_of_returning_nan():
    with pytest.raises(ValueError, match="both inliers and outliers"):
        outlier_roc_auc_score(np.zeros(6, dtype=int), SCORES, y_convention="anomaly")


def test_length_mismatch_and_unknown_options_raise():
    with pytest.raises(ValueError, match="labels but there are"):
        outlier_roc_auc_score(Y_SKLEARN, SCORES[:5])
    with pytest.raises(ValueError, match="y_convention must be"):
        outlier_roc_auc_score(Y_SKLEARN, SCORES, y_convention="pyod")
    with pytest.raises(ValueError, match="metric must be"):
        make_outlier_scorer("f1")
    with pytest.raises(ValueError, match="required"):
        is_outlier(None)


@pytest.fixture
def labelled(blobs):
    X, y_sklearn = blobs
    return X, y_sklearn, (y_sklearn == -1).astype(int)


def test_scorer_on_an_estimator_and_a_pipeline(labelled):
    X, y_sklearn, y_anomaly = labelled
    forest = IsolationForest(random_state=0).fit(X)
    expected = roc_auc_score(y_anomaly, -forest.score_samples(X))
    assert make_outlier_scorer()(forest, X, y_sklearn) == pytest.approx(expected)
    scorer = make_outlier_scorer("roc_auc", y_convention="anomaly")
    assert scorer(forest, X, y_anomaly) == pytest.approx(expected)
    pipeline = make_pipeline(StandardScaler(), IsolationForest(random_state=0)).fit(X)
    assert scorer(pipeline, X, y_anomaly) > 0.9
    ap = make_outlier_scorer("average_precision", y_convention="anomaly")(forest, X, y_anomaly)
    assert ap == pytest.approx(average_precision_score(y_anomaly, -forest.score_samples(X)))


def test_scorer_with_zero_one_labels_and_auto_convention_raises(labelled):
    X, _, y_anomaly = labelled
    forest = IsolationForest(random_state=0).fit(X)
    with pytest.raises(ValueError, match="y_convention='anomaly'"):
        make_outlier_scorer()(forest, X, y_anomaly)


def test_scorer_needs_normality_scores(labelled):
    X, y_sklearn, _ = labelled

    class Predictor:
        def predict(self, X):
            return np.ones(len(X))

    with pytest.raises(ValueError, match="score_samples nor decision_function"):
        make_outlier_scorer()(Predictor(), X, y_sklearn)
    assert "y_convention='auto'" in repr(make_outlier_scorer())
