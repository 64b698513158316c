"""What users reach for around ``fit``: sparse input, callbacks and per-stage history,
``sample_weight``, channels-last image shapes, and parameter checks that run before fitting."""

import io
import re
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from skorch.callbacks import Callback, EarlyStopping, LRScheduler

from skuad import CLADDetector, DeepSVDD, LAMPAutoencoderDetector, ResADDetector
from skuad.base import _MAX_SCORING_ROWS, BaseDeepDetector, ScaledRows
from tests.conftest import FAST_DETECTORS, detector_id

registry = pytest.mark.parametrize("estimator", FAST_DETECTORS, ids=detector_id)

# The training stages of each detector, as ``history_`` and ``n_iter_`` name them.
STAGES = {
    DeepSVDD: {"pretrain", "svdd"},
    LAMPAutoencoderDetector: {"autoencoder"},
    CLADDetector: {"autoencoder", "dec", "classifier"},
    ResADDetector: {"flow"},
}


def mixed_table(n_rows=120, seed=0):
    """A table with two numeric columns and one categorical column."""
    rng = np.random.RandomState(seed)
    numeric = rng.normal(size=(n_rows, 2))
    colour = rng.choice(["red", "green", "blue"], size=(n_rows, 1))
    return np.hstack([numeric, colour]).astype(object)


# ------------------------------------------------------------------ sparse input
def sparse_table(n_rows, n_features=6, seed=0):
    """Rows with about 60 % zeros, a few of them repeated."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_rows, n_features)) * (rng.uniform(size=(n_rows, n_features)) < 0.4)
    X[: n_rows // 10] = X[0]
    return X


def fitted_values(detector):
    """The detector's fitted numbers and arrays, by attribute name."""
    return {
        name: value
        for name, value in vars(detector).items()
        if name.endswith("_") and isinstance(value, (float, int, np.ndarray))
    }


@registry
def test_sparse_rows_fit_and_score_as_the_same_dense_rows_bit_for_bit(estimator):
    # Several training batches, and (ResAD) a reference pool thinned by k-centre selection.
    X = sparse_table(300)
    estimator = clone(estimator).set_params(batch_size=64)
    if isinstance(estimator, ResADDetector):
        estimator.set_params(max_references=100)
    dense = clone(estimator).fit(X)
    sparse = clone(estimator).fit(sp.csr_matrix(X))
    np.testing.assert_array_equal(sparse.score_samples(sp.csr_matrix(X)), dense.score_samples(X))
    np.testing.assert_array_equal(sparse.score_samples(sp.csc_matrix(X)), dense.score_samples(X))
    dense_values, sparse_values = fitted_values(dense), fitted_values(sparse)
    assert "offset_" in dense_values and dense_values.keys() == sparse_values.keys()
    for name, value in dense_values.items():
        np.testing.assert_array_equal(sparse_values[name], value, err_msg=name)


def test_scaled_rows_are_indexed_as_the_scaled_dense_array():
    X = sparse_table(50)
    detector = DeepSVDD(epochs=1, random_state=0, device="cpu").fit(X)
    scaled = detector._scale(X)
    rows = ScaledRows(sp.csr_matrix(X), detector._network_input)
    assert len(rows) == 50 and rows.shape == X.shape
    for index in (slice(3, 20), np.array([4, 4, 0, 49]), np.array([[1, 2], [3, 4]]), 7):
        np.testing.assert_array_equal(rows[index], scaled[index])
        assert rows[index].dtype == np.float32
    np.testing.assert_array_equal(rows.subset(np.array([5, 1]))[0:2], scaled[[5, 1]])


@registry
def test_fit_on_sparse_rows_densifies_a_bounded_number_of_rows_at_a_time(estimator, monkeypatch):
    # Every dense block made from the sparse training rows (scaled for the network,
    # densified for the scaler, or given to a training stage) holds at most one chunk of
    # rows, never the whole set.
    X = sp.csr_matrix(sparse_table(3 * _MAX_SCORING_ROWS))
    densified = []
    network_input = BaseDeepDetector._network_input
    toarray = sp.csr_matrix.toarray
    train = BaseDeepDetector._train

    def record_network_input(self, rows):
        scaled = network_input(self, rows)
        if sp.issparse(rows):
            densified.append(len(scaled))
        return scaled

    def record_toarray(self, *args, **kwargs):
        dense = toarray(self, *args, **kwargs)
        densified.append(len(dense))
        return dense

    def record_train(self, module, criterion, rows, *args, **kwargs):
        if isinstance(rows, np.ndarray):
            densified.append(len(rows))
        return train(self, module, criterion, rows, *args, **kwargs)

    monkeypatch.setattr(BaseDeepDetector, "_network_input", record_network_input)
    monkeypatch.setattr(BaseDeepDetector, "_train", record_train)
    monkeypatch.setattr(sp.csr_matrix, "toarray", record_toarray)
    estimator = clone(estimator).set_params(epochs=1, batch_size=256)
    if isinstance(estimator, ResADDetector):
        # The pool it keeps is one chunk of rows at most: a coreset of the training rows.
        estimator.set_params(max_references=200)
    estimator.fit(X)
    assert densified and max(densified) <= _MAX_SCORING_ROWS


def test_one_hot_encoded_columns_feed_a_detector_in_a_pipeline():
    X = mixed_table()
    encode = ColumnTransformer(
        [("colour", OneHotEncoder(), [2])], remainder="passthrough", sparse_threshold=1.0
    )
    assert sp.issparse(encode.fit_transform(X))
    pipeline = make_pipeline(encode, DeepSVDD(epochs=2, pretrain=False, random_state=0))
    scores = pipeline.fit(X).score_samples(X)
    assert scores.shape == (len(X),) and np.all(np.isfinite(scores))
    assert set(pipeline.predict(X)) <= {-1, 1}


def test_sparse_references_are_densified():
    X = np.random.RandomState(0).normal(size=(60, 4))
    detector = ResADDetector(n_coupling_blocks=2, epochs=2, random_state=0).fit(X)
    dense = detector.set_reference(X[:4]).score_samples(X)
    sparse = detector.set_reference(sp.csr_matrix(X[:4])).score_samples(X)
    np.testing.assert_array_equal(sparse, dense)


# ------------------------------------------------------------------ training hooks
class RecordEpochs(Callback):
    """Counts the epochs it sees and writes a metric of its own into the history."""

    def initialize(self):
        self.epochs_seen_ = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        self.epochs_seen_ += 1
        net.history.record("my_metric", float(self.epochs_seen_))


@registry
def test_every_stage_gets_the_callbacks_and_keeps_its_history(estimator):
    X = np.random.RandomState(0).normal(size=(60, 4))
    detector = clone(estimator).set_params(callbacks=[RecordEpochs()]).fit(X)
    stages = STAGES[type(detector)]
    if isinstance(detector, DeepSVDD) and not detector.pretrain:
        stages = stages - {"pretrain"}
    assert set(detector.history_) == stages
    assert detector.n_iter_ == {stage: len(detector.history_[stage]) for stage in stages}
    for stage in stages:
        history = detector.history_[stage]
        # The user's callback ran in this stage: its metric counts this stage's epochs.
        assert history[:, "my_metric"] == [float(i + 1) for i in range(len(history))]
    # The estimator's own callback object is not mutated (each stage gets a copy).
    assert not hasattr(detector.callbacks[0], "epochs_seen_")


def test_early_stopping_on_a_custom_metric_ends_the_stage_not_the_fit():
    class Plateau(Callback):
        def on_epoch_end(self, net, **kwargs):
            net.history.record("plateau", 1.0)

    X = np.random.RandomState(0).normal(size=(60, 4))
    stop = EarlyStopping(monitor="plateau", patience=2, load_best=False)
    detector = LAMPAutoencoderDetector(epochs=30, callbacks=[Plateau(), stop], random_state=0).fit(
        X
    )
    assert detector.n_iter_["autoencoder"] == 3  # the first epoch, then patience 2
    assert np.all(np.isfinite(detector.score_samples(X)))


def test_a_learning_rate_schedule_reaches_the_optimizer():
    X = np.random.RandomState(0).normal(size=(60, 4))
    schedule = LRScheduler(policy="StepLR", step_size=1, gamma=0.5)
    detector = LAMPAutoencoderDetector(epochs=3, lr=0.01, callbacks=[schedule], random_state=0)
    detector.fit(X)
    group = detector.net_.optimizer_.param_groups[0]
    assert group["lr"] == pytest.approx(0.01 * 0.5**3)


def test_verbose_output_names_each_stage_and_has_no_colour_codes_off_a_terminal(monkeypatch):
    captured = io.StringIO()
    monkeypatch.setattr(sys, "stdout", captured)
    X = np.random.RandomState(0).normal(size=(60, 4))
    DeepSVDD(epochs=2, pretrain=True, pretrain_epochs=2, verbose=1, random_state=0).fit(X)
    text = captured.getvalue()
    assert "DeepSVDD: pretrain" in text and "DeepSVDD: svdd" in text
    assert text.index("DeepSVDD: pretrain") < text.index("DeepSVDD: svdd")
    assert not re.search(r"\x1b\[", text)


# ------------------------------------------------------------------ refused clearly
@registry
def test_sample_weight_is_refused_with_a_value_error(estimator):
    X = np.random.RandomState(0).normal(size=(30, 3))
    with pytest.raises(ValueError, match="does not support sample_weight"):
        clone(estimator).fit(X, sample_weight=np.ones(len(X)))
    with pytest.raises(ValueError, match="unexpected argument"):
        clone(estimator).fit(X, sample_wieght=np.ones(len(X)))


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 3), (32, 32, 4)])
def test_channels_last_image_shape_is_refused_with_the_fix(shape):
    X = np.zeros((10, int(np.prod(shape))))
    with pytest.raises(
        ValueError, match=re.escape(f"image_shape={(shape[2], shape[0], shape[1])}")
    ):
        DeepSVDD(image_shape=shape).fit(X)


def test_channels_first_shapes_of_the_same_size_are_accepted():
    X, _ = load_digits(return_X_y=True)
    detector = DeepSVDD(image_shape=(1, 8, 8), epochs=1, pretrain=False, random_state=0)
    assert detector.fit(X[:50]).score_samples(X[:5]).shape == (5,)


@pytest.mark.parametrize(
    "detector, message",
    [
        (DeepSVDD(hidden_layer_sizes=(0,)), "hidden_layer_sizes"),
        (LAMPAutoencoderDetector(hidden_layer_sizes=()), "hidden_layer_sizes"),
        (CLADDetector(classifier_hidden=(16, -1)), "classifier_hidden"),
        (LAMPAutoencoderDetector(reconstruction_error="ssim"), "needs image_shape"),
        (ResADDetector(image_shape=(1, 2, 2)), "works on feature vectors"),
        (DeepSVDD(image_shape=(1, 2)), "image_shape"),
    ],
)
def test_bad_parameters_are_refused_before_anything_is_fitted(detector, message, monkeypatch):
    def no_scaling(self, X):
        raise AssertionError("the scaler was fitted before the parameters were checked")

    monkeypatch.setattr(type(detector), "_fit_scaler", no_scaling)
    with pytest.raises(ValueError, match=message):
        detector.fit(np.random.RandomState(0).normal(size=(20, 4)))
    assert not hasattr(detector, "n_features_in_")
