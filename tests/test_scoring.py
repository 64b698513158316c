"""Scoring: float32, bit-for-bit independent of which rows are scored together, memory-sized.

Scores are computed in float32 at one fixed batch shape (the last batch padded), so a row's
score must be exactly the same whether it is scored alone, in a subset, in another order, or
split across batches. Each case below fails if batches are sent at their natural size.
"""

import numpy as np
import pytest
import sklearn
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from torch.overrides import TorchFunctionMode

from skuad import CLADDetector, DeepSVDD, LAMPAutoencoderDetector, ResADDetector, _training
from skuad._training import RowIndependentProducts, _OutputBytes
from skuad.base import _transform_to_float32

IMAGE = (1, 8, 8)

# (detector, uses image_shape): the MLP and convolutional networks of every detector; ResAD
# takes feature vectors only. CLAD is scored both by plain confidence and by ODIN's
# input-gradient step.
DETECTORS = [
    DeepSVDD(epochs=2, pretrain_epochs=1),
    DeepSVDD(epochs=2, pretrain=False, image_shape=IMAGE),
    DeepSVDD(objective="soft-boundary", warm_up_epochs=1, epochs=2, pretrain=False),
    LAMPAutoencoderDetector(amplification=1.0, epochs=2),
    LAMPAutoencoderDetector(epochs=2, image_shape=IMAGE),
    LAMPAutoencoderDetector(epochs=2, reconstruction_error="ssim", image_shape=IMAGE),
    CLADDetector(n_clusters=3, pretrain_epochs=1, dec_epochs=1, epochs=2),
    CLADDetector(
        n_clusters=3, pretrain_epochs=1, dec_epochs=1, epochs=2, temperature=1.0, epsilon=0.01
    ),
    CLADDetector(
        n_clusters=3,
        pretrain_epochs=1,
        dec_epochs=1,
        epochs=2,
        classifier_hidden=(4, 8),
        image_shape=IMAGE,
    ),
    ResADDetector(n_coupling_blocks=2, epochs=2),
]


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits(return_X_y=True)
    return X[:120].astype(np.float64)


def _fitted(detector, X, working_memory):
    return (
        sklearn.clone(detector)
        .set_params(random_state=0, device="cpu", working_memory=working_memory)
        .fit(X)
    )


@pytest.mark.parametrize("detector", DETECTORS, ids=lambda d: type(d).__name__)
@pytest.mark.parametrize("working_memory", [64, "small"])
def test_scores_do_not_depend_on_the_other_rows_bit_for_bit(detector, working_memory, digits):
    X = digits
    small = working_memory == "small"
    if small:
        # A budget of a dozen rows, so that rows move between batches and batch positions.
        probe = _fitted(detector, X, 64)
        working_memory = 12 * probe._scoring_row_bytes(probe._scoring_module, scored=True) / 2**20
    fitted = _fitted(detector, X, working_memory)
    if small:
        assert 8 <= fitted._scoring_batch_rows(fitted._scoring_module, scored=True) < len(X)
    full = fitted.score_samples(X)
    assert full.dtype == np.float64
    rng = np.random.RandomState(0)
    for size in (1, 2, 3, 7, 33, len(X)):
        rows = rng.permutation(len(X))[:size]
        np.testing.assert_array_equal(fitted.score_samples(X[rows]), full[rows])
    for i in (0, 5, len(X) - 1):
        np.testing.assert_array_equal(fitted.score_samples(X[i : i + 1]), full[i : i + 1])


# Narrow layers (few output columns, an input width that is not a multiple of 4): BLAS may
# vectorize such products across the rows of the batch, so that a row's last bits depend on
# its position in the batch even at a fixed shape.
NARROW = [
    ResADDetector(n_coupling_blocks=2, epochs=2),
    LAMPAutoencoderDetector(hidden_layer_sizes=(10,), latent_dim=3, epochs=2),
    DeepSVDD(hidden_layer_sizes=(7,), representation_dim=5, epochs=2),
    CLADDetector(
        n_clusters=3, latent_dim=3, hidden_layer_sizes=(9,), classifier_hidden=(7, 6), epochs=2
    ),
]


@pytest.mark.parametrize("detector", NARROW, ids=lambda d: type(d).__name__)
def test_narrow_networks_score_each_row_independently_of_its_position(detector):
    X = np.random.RandomState(0).normal(size=(300, 6))
    fitted = _fitted(detector, X, 64)
    full = fitted.score_samples(X)
    rng = np.random.RandomState(1)
    for _ in range(3):
        rows = rng.permutation(len(X))
        np.testing.assert_array_equal(fitted.score_samples(X[rows]), full[rows])


class _LargestTensor(TorchFunctionMode):
    """Records the size of the largest tensor (not a view) a torch function returns while
    active."""

    nbytes = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if isinstance(result, torch.Tensor) and result._base is None:
            self.nbytes = max(self.nbytes, result.numel() * result.element_size())
        return result


@pytest.mark.parametrize(
    "product",
    [
        lambda x, w: torch.nn.functional.linear(x, w),
        lambda x, w: torch.nn.functional.linear(x.reshape(50, 4, -1), w).reshape(200, -1),
        lambda x, w: x @ w.T,
    ],
    ids=["linear", "linear-3d", "matmul"],
)
def test_narrow_products_in_row_pieces_equal_the_whole_and_bound_temporaries(product, monkeypatch):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 24, generator=generator)
    w = torch.randn(6, 24, generator=generator)
    with torch.no_grad(), RowIndependentProducts():
        whole = product(x, w)
    piece_bytes = 4 * 6 * 24 * 8  # temporaries of 8 rows at a time
    monkeypatch.setattr(_training, "_PRODUCT_PIECE_BYTES", piece_bytes)
    with torch.no_grad(), _LargestTensor() as largest, RowIndependentProducts():
        pieces = product(x, w)
    torch.testing.assert_close(pieces, whole, rtol=0, atol=0)
    # Nothing larger than a piece's temporary or the result; whole, the temporary would be
    # 200 x 6 x 24 values.
    assert largest.nbytes <= max(piece_bytes, whole.numel() * whole.element_size())


def _torch_bytes_while(function):
    """Bytes of every tensor that torch functions return while ``function()`` runs."""
    with _OutputBytes() as counter:
        function()
    return counter.total


@pytest.mark.parametrize("detector", DETECTORS, ids=lambda d: type(d).__name__)
def test_one_scoring_batch_stays_within_working_memory(detector, digits):
    # What one more batch costs: scoring two batches minus scoring one (the batch-size
    # probes and any per-call constant cancel out). Every tensor counts as if all were alive
    # at once, so this bounds the batch's peak from above, score arithmetic included.
    budget_mib = 0.25
    fitted = _fitted(detector, digits, budget_mib)
    rows = fitted._scoring_batch_rows(fitted._scoring_module, scored=True)
    X = np.tile(digits, (-(-2 * rows // len(digits)), 1))
    one = _torch_bytes_while(lambda: fitted.score_samples(X[:rows]))
    two = _torch_bytes_while(lambda: fitted.score_samples(X[: 2 * rows]))
    centred_copy = rows * X.shape[1] * 8  # the one NumPy copy torch does not see
    assert two - one + centred_copy <= budget_mib * 2**20


def test_a_conv_net_gets_fewer_rows_per_batch_than_an_mlp_within_the_same_budget(digits):
    mlp = _fitted(LAMPAutoencoderDetector(epochs=1), digits, 1)
    conv = _fitted(LAMPAutoencoderDetector(epochs=1, image_shape=IMAGE), digits, 1)
    mlp_rows = mlp._scoring_batch_rows(mlp._scoring_module)
    conv_rows = conv._scoring_batch_rows(conv._scoring_module)
    assert 1 <= conv_rows < mlp_rows <= 1024


def test_working_memory_sets_the_batch_and_none_follows_scikit_learn(digits):
    detector = _fitted(LAMPAutoencoderDetector(epochs=1, image_shape=IMAGE), digits, 1)
    module = detector._scoring_module
    one_mib = detector._scoring_batch_rows(module)
    detector.set_params(working_memory=4)
    assert detector._scoring_batch_rows(module) > one_mib
    detector.set_params(working_memory=None)
    with sklearn.config_context(working_memory=1):
        assert detector._scoring_batch_rows(module) == one_mib


def test_a_budget_below_one_row_scores_one_row_at_a_time_with_a_warning(digits):
    detector = _fitted(LAMPAutoencoderDetector(epochs=1, image_shape=IMAGE), digits, 64)
    expected = detector.score_samples(digits[:5])
    detector.set_params(working_memory=1e-6)
    with pytest.warns(UserWarning, match="working_memory"):
        scores = detector.score_samples(digits[:5])
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


@pytest.mark.parametrize("scaler", [StandardScaler(), MinMaxScaler()], ids=type)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_scaling_is_bit_for_bit_scikit_learns_transform_in_float32(scaler, dtype):
    rng = np.random.RandomState(0)
    X = (rng.normal(size=(200, 6)) * rng.uniform(0, 100, size=6)).astype(dtype)
    X[:, 2] = 5.0  # a constant column: scale 1
    scaler.fit(X)
    scaled = _transform_to_float32(scaler, X)
    expected = scaler.transform(X).astype(np.float32)
    assert scaled.dtype == np.float32
    np.testing.assert_array_equal(scaled, expected)
