"""The shared spine: input validation, devices, batching — run through DeepSVDD."""

import numpy as np
import pytest
import torch

from skuad import DeepSVDD
from skuad._training import forward_in_batches, resolve_device
from tests.conftest import no_cuda, requires_cuda

FAST = dict(epochs=2, pretrain=True, pretrain_epochs=1, random_state=0, device="cpu")


@pytest.fixture
def fitted(blobs):
    X, _ = blobs
    return DeepSVDD(**FAST).fit(X)


@pytest.mark.parametrize(
    "X, message",
    [
        (np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]), "NaN"),
        (np.array([[0.0, np.inf], [1.0, 2.0], [3.0, 4.0]]), "infinity"),
        (np.arange(10.0), "Expected 2D array"),
        (np.ones((1, 3)), "1 sample"),
        (np.empty((0, 3)), "0 sample"),
        (np.array([["a", "b"], ["c", "d"]]), "could not convert"),
        (np.array([[1 + 1j, 2], [3, 4]]), "Complex data not supported"),
        (np.array([[1e300, 1.0], [-1e300, 2.0], [5e299, 3.0], [0.0, 4.0]]), "too large"),
    ],
)
def test_bad_training_input_raises_a_clear_value_error(X, message):
    with pytest.raises(ValueError, match=message):
        DeepSVDD(**FAST).fit(X)


def test_wrong_number_of_features_at_predict(fitted):
    with pytest.raises(ValueError, match="features"):
        fitted.predict(np.ones((3, 2)))


@pytest.mark.parametrize(
    "image_shape, message",
    [((1, 8, 7), "holds 56 values per image"), ((8, 8), "image_shape. parameter")],
)
def test_image_shape_must_match_the_rows(image_shape, message):
    with pytest.raises(ValueError, match=message):
        DeepSVDD(image_shape=image_shape, **FAST).fit(np.ones((10, 64)))


def test_unfitted_detector_raises_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        DeepSVDD().score_samples(np.ones((2, 2)))


@no_cuda
def test_cuda_request_without_cuda_is_a_clear_error(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="CUDA is not available"):
        DeepSVDD(**{**FAST, "device": "cuda"}).fit(X)


def test_unknown_device_is_a_clear_error(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="device='tpu7'"):
        DeepSVDD(**{**FAST, "device": "tpu7"}).fit(X)


def test_auto_device_follows_cuda_availability():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@requires_cuda
def test_cuda_training_and_cpu_scoring_agree(blobs):
    X, _ = blobs
    gpu = DeepSVDD(**{**FAST, "device": "cuda"}).fit(X)
    assert next(gpu.net_.module_.parameters()).is_cuda
    scores = gpu.score_samples(X)
    assert np.all(np.isfinite(scores))


def test_failed_fit_leaves_a_previous_fit_intact(blobs):
    X, _ = blobs
    detector = DeepSVDD(**FAST).fit(X)
    before = detector.score_samples(X)
    with pytest.raises(ValueError):
        detector.fit(np.full((4, 5), np.nan))
    np.testing.assert_array_equal(detector.score_samples(X), before)
    assert detector.n_features_in_ == X.shape[1]


class BatchSizeRecorder(torch.nn.Linear):
    """A linear layer that records the number of rows of every batch it sees."""

    def __init__(self, *args):
        super().__init__(*args)
        self.seen = []

    def forward(self, x):
        self.seen.append(len(x))
        return super().forward(x)


def test_scoring_never_sends_more_than_one_batch_to_the_network():
    network = BatchSizeRecorder(3, 2)
    outputs = list(forward_in_batches(network, np.ones((2500, 3)), 1024))
    assert network.seen == [1024, 1024, 452]
    assert [n_rows for n_rows, _, _ in outputs] == [1024, 1024, 452]
    assert sum(len(out) for _, _, out in outputs) == 2500


def test_fixed_shape_batches_pad_the_last_batch_and_count_its_real_rows():
    network = BatchSizeRecorder(3, 2)
    X = np.arange(15.0).reshape(5, 3)
    outputs = list(forward_in_batches(network, X, 4, fixed_shape=True))
    assert network.seen == [4, 4]
    assert [n_rows for n_rows, _, _ in outputs] == [4, 1]
    # The padding repeats the batch's first row; the real rows come first, unchanged.
    np.testing.assert_array_equal(outputs[1][1].numpy(), np.repeat(X[4:5], 4, axis=0))


def test_decision_function_and_predict_agree(fitted, blobs):
    X, _ = blobs
    decision = fitted.decision_function(X)
    np.testing.assert_allclose(decision, fitted.score_samples(X) - fitted.offset_)
    np.testing.assert_array_equal(fitted.predict(X), np.where(decision >= 0, 1, -1))
    assert fitted.predict(X).dtype.kind == "i"


def test_verbose_prints_training_progress_and_quiet_prints_nothing(blobs, capsys):
    X, _ = blobs
    DeepSVDD(**FAST).fit(X)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    DeepSVDD(**{**FAST, "verbose": 1}).fit(X)
    captured = capsys.readouterr()
    assert "train_loss" in captured.out + captured.err


def test_fits_in_parallel_threads_are_as_reproducible_as_sequential_ones(blobs):
    # Threads share torch's global generator; concurrent fits must not mix their draws.
    from concurrent.futures import ThreadPoolExecutor

    X, _ = blobs
    expected = DeepSVDD(**FAST).fit(X).score_samples(X)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: DeepSVDD(**FAST).fit(X).score_samples(X), range(8)))
    for scores in results:
        np.testing.assert_array_equal(scores, expected)
