"""Behaviour of DeepSVDD: the method itself and the scikit-learn workflows around it."""

import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skuad import DeepSVDD
from skuad.datasets import load_digits_task, one_class_split
from skuad.nn import ConvEncoder

FAST = dict(epochs=5, pretrain=True, pretrain_epochs=3, random_state=0, device="cpu")


def test_pipeline_fits_and_flags_far_points(blobs):
    X, y = blobs
    pipe = make_pipeline(StandardScaler(), DeepSVDD(**FAST)).fit(X[y == 1])
    labels = pipe.predict(X)
    assert set(np.unique(labels)) <= {-1, 1}
    # The far cluster is flagged far more often than the inliers.
    assert (labels[y == -1] == -1).mean() > 0.8
    assert (labels[y == 1] == -1).mean() < 0.3


def test_grid_search_with_roc_auc_picks_a_model(blobs):
    X, y = blobs
    search = GridSearchCV(
        DeepSVDD(**FAST),
        {"representation_dim": [2, 16]},
        scoring="roc_auc",
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    ).fit(X, y)
    assert search.best_params_["representation_dim"] in (2, 16)
    assert search.best_score_ > 0.8
    assert roc_auc_score(y, search.decision_function(X)) > 0.8


def test_same_random_state_gives_identical_scores_and_another_differs(blobs):
    X, _ = blobs
    first = DeepSVDD(**FAST).fit(X).score_samples(X)
    second = DeepSVDD(**FAST).fit(X).score_samples(X)
    other = DeepSVDD(**{**FAST, "random_state": 1}).fit(X).score_samples(X)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other)


def test_fit_does_not_touch_the_global_torch_rng(blobs):
    X, _ = blobs
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    DeepSVDD(**FAST).fit(X)
    np.testing.assert_array_equal(torch.rand(3), expected)


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_persistence_round_trip_is_exact(blobs, tmp_path, dump):
    X, _ = blobs
    detector = DeepSVDD(**FAST).fit(X)
    if dump == "pickle":
        restored = pickle.loads(pickle.dumps(detector))
    else:
        joblib.dump(detector, tmp_path / "model.joblib")
        restored = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(restored.score_samples(X), detector.score_samples(X))
    np.testing.assert_array_equal(restored.predict(X), detector.predict(X))


def test_network_has_no_bias_and_centre_avoids_zero(blobs):
    X, _ = blobs
    detector = DeepSVDD(**{**FAST, "center_eps": 0.1}).fit(X)
    names = [name for name, _ in detector.net_.module_.named_parameters()]
    assert names and not any("bias" in name for name in names)
    assert np.all(np.abs(detector.center_) >= 0.1)


def test_initial_center_moves_near_zero_coordinates_away():
    detector = DeepSVDD(center_eps=0.1)
    outputs = np.array([[0.05, -0.02, 0.0, 2.0], [0.03, -0.04, 0.0, 4.0]])
    np.testing.assert_allclose(detector._initial_center(outputs), [0.1, -0.1, 0.1, 3.0])


def test_one_class_score_is_minus_squared_distance_to_centre(blobs):
    X, _ = blobs
    detector = DeepSVDD(**FAST).fit(X)
    z = detector._forward(detector._scale(X))
    expected = -((z.astype(np.float64) - detector.center_) ** 2).sum(axis=1)
    np.testing.assert_allclose(detector.score_samples(X), expected, rtol=1e-5, atol=1e-6)


def test_soft_boundary_radius_bounds_the_training_outliers(blobs):
    X, _ = blobs
    nu = 0.2
    detector = DeepSVDD(
        objective="soft-boundary", nu=nu, warm_up_epochs=1, **{**FAST, "epochs": 8}
    ).fit(X)
    scores = detector.score_samples(X)
    # score = R^2 - d: outside the sphere means a negative score; the nu-property bounds it.
    outside = (scores < 0).mean()
    assert 0 < outside <= nu + 1.0 / len(X)
    assert detector.radius_ > 0
    # contamination='auto' uses the sphere itself as the threshold.
    assert detector.offset_ == 0.0
    np.testing.assert_array_equal(detector.predict(X) == -1, scores < 0)


@pytest.mark.parametrize("objective", ["one-class", "soft-boundary"])
def test_auto_contamination_flags_about_nu_of_training_data(blobs, objective):
    X, _ = blobs
    detector = DeepSVDD(objective=objective, nu=0.15, warm_up_epochs=1, **FAST).fit(X)
    flagged = (detector.predict(X) == -1).mean()
    assert 0.05 < flagged <= 0.15 + 1.0 / len(X)


def test_float_contamination_sets_offset_to_that_percentile(blobs):
    X, _ = blobs
    detector = DeepSVDD(contamination=0.25, **FAST).fit(X)
    assert detector.offset_ == pytest.approx(np.percentile(detector.score_samples(X), 25))


def test_pretraining_changes_the_starting_point(blobs):
    X, _ = blobs
    with_pretrain = DeepSVDD(**FAST).fit(X)
    without = DeepSVDD(**{**FAST, "pretrain": False}).fit(X)
    assert not np.allclose(with_pretrain.center_, without.center_)


def test_collapse_is_detected_and_reported():
    # Constant training data maps every row to one point: the textbook collapse.
    X = np.ones((30, 3))
    with pytest.warns(UserWarning, match="hypersphere collapse"):
        detector = DeepSVDD(**FAST).fit(X)
    assert detector.collapsed_


@pytest.mark.parametrize("pretrain", [False, True], ids=["default", "conv-autoencoder-pretraining"])
def test_convolutional_network_for_images(pretrain):
    X, y = load_digits_task(normal_digits=(0,))
    X_train, X_test, y_test = one_class_split(X, y, random_state=0)
    detector = DeepSVDD(
        image_shape=(1, 8, 8),
        hidden_layer_sizes=(8, 4),
        epochs=10,
        pretrain=pretrain,
        pretrain_epochs=10,
        random_state=0,
        device="cpu",
    ).fit(X_train)
    assert isinstance(detector.net_.module_, ConvEncoder)
    assert roc_auc_score(y_test, -detector.score_samples(X_test)) > 0.8


def test_early_stopping_holds_out_rows_and_stops(blobs):
    X, _ = blobs
    detector = DeepSVDD(
        early_stopping=True, n_iter_no_change=2, tol=0.5, **{**FAST, "epochs": 50}
    ).fit(X)
    history = detector.net_.history
    assert "valid_loss" in history[-1]
    assert len(history) < 50
