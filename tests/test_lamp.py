"""LAMPAutoencoderDetector and the loss amplification it trains with."""

import math
import pickle
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils import check_random_state
from torch import nn

from skuad import LAMPAutoencoderDetector
from skuad._training import TrainingOptions, seeded, train_module
from skuad.datasets import load_digits_task
from skuad.losses import (
    AmplifiedReconstructionLoss,
    ReconstructionLoss,
    amplify_loss,
    reconstruction_error,
    reconstruction_error_map,
    ssim_map,
)
from skuad.nn import build_autoencoder


def _state(detector):
    return {k: v.detach().clone() for k, v in detector.net_.module_.state_dict().items()}


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def table():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 6))
    X[:, 3] = X[:, 0] + 0.1 * X[:, 1]  # some structure for the bottleneck to learn
    return X


# ----------------------------------------------------------------------------- amplify_loss
def test_amplification_zero_is_the_identity_in_every_mode():
    loss = torch.rand(50)
    for mode in ("log", "linear", "power"):
        assert torch.equal(amplify_loss(loss, 0.0, mode), loss)


def test_amplification_one_is_the_lmse_transform():
    loss = torch.linspace(0, 0.9, 20, dtype=torch.float64)
    assert torch.allclose(amplify_loss(loss, 1.0), -torch.log(1 - loss))


def test_log_amplification_has_unit_slope_at_zero_and_grows_with_the_factor():
    loss = torch.tensor([1e-6, 0.05], dtype=torch.float64)
    small = [amplify_loss(loss, a)[0].item() for a in (0.5, 1.0, 10.0)]
    assert np.allclose(small, 1e-6, rtol=1e-4)
    large = [amplify_loss(loss, a)[1].item() for a in (0.0, 1.0, 10.0)]
    assert large[0] < large[1] < large[2]


def test_linear_extension_is_continuous_with_a_capped_finite_gradient():
    delta, a = 1e-3, 10.0
    pole = (1 - delta) / a
    loss = torch.tensor([pole - 1e-9, pole + 1e-9, 5.0], dtype=torch.float64, requires_grad=True)
    value = amplify_loss(loss, a, delta=delta)
    assert value[0].item() == pytest.approx(value[1].item(), abs=1e-5)
    value.sum().backward()
    assert torch.all(torch.isfinite(loss.grad))
    # Beyond the pole the weight stays at its cap 1 / delta instead of dropping to 0 (a clamp).
    assert loss.grad[2].item() == pytest.approx(1 / delta)
    assert loss.grad[1].item() == pytest.approx(1 / delta, rel=1e-3)


def test_amplified_loss_at_zero_equals_the_plain_reconstruction_loss():
    x, x_hat = torch.rand(16, 10), torch.rand(16, 10)
    plain = ReconstructionLoss("mse")(x_hat, x)
    for per in ("element", "sample"):
        amplified = AmplifiedReconstructionLoss("mse", amplification=0.0, per=per)(x_hat, x)
        assert torch.allclose(amplified, plain)


# ----------------------------------------------------------------------------- ssim
def test_ssim_of_an_image_with_itself_is_one_and_worse_for_noise():
    images = torch.rand(3, 1 * 8 * 8, dtype=torch.float64)
    assert torch.allclose(
        ssim_map(images, images, (1, 8, 8)), torch.ones(3, 1, 8, 8, dtype=torch.float64)
    )
    noisy = (images + 0.3 * torch.randn_like(images)).clamp(0, 1)
    errors = reconstruction_error(images, noisy, "ssim", image_shape=(1, 8, 8))
    assert errors.shape == (3,) and torch.all(errors > 0) and torch.all(errors <= 1)


def test_ssim_map_has_one_value_per_pixel_and_channel():
    x = torch.rand(2, 3 * 5 * 7)
    assert reconstruction_error_map(x, x.flip(0), "ssim", (3, 5, 7)).shape == (2, 3 * 5 * 7)


def test_ssim_without_image_shape_is_a_clear_error(table):
    with pytest.raises(ValueError, match="image_shape"):
        LAMPAutoencoderDetector(reconstruction_error="ssim", epochs=1).fit(table)


# ----------------------------------------------------------------------------- the detector
def test_two_factors_learn_different_weights_and_scores(table):
    fits = [
        LAMPAutoencoderDetector(amplification=a, epochs=3, random_state=0, device="cpu").fit(table)
        for a in (0.0, 20.0)
    ]
    assert not _same_weights(_state(fits[0]), _state(fits[1]))
    scores = [fit.score_samples(table) for fit in fits]
    assert np.max(np.abs(scores[0] - scores[1])) > 1e-6


def test_same_factor_and_seed_give_identical_weights(table):
    fits = [
        LAMPAutoencoderDetector(amplification=5.0, epochs=3, random_state=1, device="cpu").fit(
            table
        )
        for _ in range(2)
    ]
    assert _same_weights(_state(fits[0]), _state(fits[1]))


@pytest.mark.parametrize("amplify_per", ["element", "sample"])
def test_plain_setting_equals_an_unamplified_autoencoder_trained_the_same_way(table, amplify_per):
    epochs, random_state = 4, 3
    detector = LAMPAutoencoderDetector(
        amplification=0.0,
        amplify_per=amplify_per,
        epochs=epochs,
        random_state=random_state,
        device="cpu",  # compared with CPU training below, bit for bit
    ).fit(table)

    # The same autoencoder and schedule, trained by hand with the ordinary MSE criterion.
    seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    X = MinMaxScaler().fit_transform(table).astype(np.float32)
    with seeded(seed):
        module = nn.Sequential(build_autoencoder(6, (64, 32), 6), nn.Sigmoid())
        options = TrainingOptions(epochs=epochs, batch_size=64, lr=1e-3)
        train_module(
            module, ReconstructionLoss("mse"), X, options, seed=seed, device=torch.device("cpu")
        )
    reference = {k: v.detach() for k, v in module.state_dict().items()}
    assert _same_weights(_state(detector), reference)


def test_score_is_minus_the_plain_error_in_scaled_space_without_clipping(table):
    detector = LAMPAutoencoderDetector(
        amplification=10.0, epochs=3, random_state=0, device="cpu"
    ).fit(table)
    X = np.vstack([table[:5], table[:1] + 50.0])  # the last row is far outside [0, 1]
    scaled = torch.as_tensor(detector.scaler_.transform(X))
    module = detector.net_.module_.double().eval()
    with torch.no_grad():
        expected = -((module(scaled) - scaled) ** 2).mean(dim=1).numpy()
    np.testing.assert_allclose(detector.score_samples(X), expected, rtol=1e-6)
    assert detector.score_samples(X)[-1] < -10  # unclipped: far rows score far lower


def test_l1_metric_scores_with_the_absolute_error(table):
    detector = LAMPAutoencoderDetector(
        reconstruction_error="l1", epochs=2, random_state=0, device="cpu"
    ).fit(table)
    scaled = torch.as_tensor(detector.scaler_.transform(table))
    with torch.no_grad():
        expected = -(detector.net_.module_.double()(scaled) - scaled).abs().mean(dim=1).numpy()
    np.testing.assert_allclose(detector.score_samples(table), expected, rtol=1e-6)


def test_diagnostics_after_fit(table):
    detector = LAMPAutoencoderDetector(amplification=100.0, epochs=4, random_state=0).fit(table)
    assert detector.loss_curve_.shape == (4,)
    assert np.all(np.isfinite(detector.loss_curve_))
    assert 0.0 <= detector.frac_extended_ <= 1.0
    plain = LAMPAutoencoderDetector(amplification=0.0, epochs=1, random_state=0).fit(table)
    assert plain.frac_extended_ == 0.0


def test_latent_dim_is_clipped_to_the_number_of_features():
    X = np.random.RandomState(0).normal(size=(40, 2))
    detector = LAMPAutoencoderDetector(latent_dim=8, epochs=1, random_state=0).fit(X)
    linears = [m for m in detector.net_.module_.modules() if isinstance(m, nn.Linear)]
    assert min(m.out_features for m in linears) == 2


def test_images_use_a_convolutional_autoencoder_and_separate_digits():
    X, y = load_digits_task(normal_digits=(0,))
    normal = np.flatnonzero(y == 0)
    train, others = normal[:80], np.r_[normal[80:120], np.flatnonzero(y == 1)[:40]]
    detector = LAMPAutoencoderDetector(
        image_shape=(1, 8, 8),
        hidden_layer_sizes=(4, 8),
        epochs=20,
        batch_size=40,
        lr=3e-3,
        random_state=0,
        device="cpu",
    ).fit(X[train])
    assert any(isinstance(m, nn.Conv2d) for m in detector.net_.module_.modules())
    scores = detector.score_samples(X[others])
    # Held-out zeros reconstruct better than other digits on average.
    assert scores[:40].mean() > scores[40:].mean()


def test_ssim_detector_scores_with_the_plain_per_sample_ssim_error():
    X, _ = load_digits_task()
    detector = LAMPAutoencoderDetector(
        image_shape=(1, 8, 8),
        hidden_layer_sizes=(4,),
        reconstruction_error="ssim",
        amplification=5.0,
        epochs=2,
        random_state=0,
        device="cpu",
    ).fit(X[:60])
    scaled = torch.as_tensor(detector.scaler_.transform(X[:10].reshape(-1, 1)).reshape(10, 64))
    with torch.no_grad():
        reconstruction = detector.net_.module_.double().eval()(scaled)
    expected = -((1 - ssim_map(scaled, reconstruction, (1, 8, 8))) / 2).mean(dim=(1, 2, 3))
    np.testing.assert_allclose(detector.score_samples(X[:10]), expected.numpy(), rtol=1e-6)


def test_pickle_round_trip_keeps_scores(table):
    detector = LAMPAutoencoderDetector(epochs=2, random_state=0).fit(table)
    restored = pickle.loads(pickle.dumps(detector))
    np.testing.assert_array_equal(restored.score_samples(table), detector.score_samples(table))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"amplification": -1.0}, "amplification"),
        ({"amplification_mode": "square"}, "amplification_mode"),
        ({"amplify_per": "batch"}, "amplify_per"),
        ({"extension_delta": 1.0}, "extension_delta"),
        ({"reconstruction_error": "mae"}, "reconstruction_error"),
        ({"hidden_layer_sizes": ()}, "hidden_layer_sizes"),
    ],
)
def test_bad_parameters_raise_a_value_error_naming_them(table, params, message):
    with pytest.raises(ValueError, match=message):
        LAMPAutoencoderDetector(epochs=1, **params).fit(table)


def test_amplification_is_not_a_constant_factor_under_adam(table):
    # A global factor (mode 'linear') is what Adam normalises away: its fit stays much closer
    # to the plain one than the log amplification's does.
    def fit(**params):
        return LAMPAutoencoderDetector(epochs=5, random_state=0, **params).fit(table)

    plain = fit(amplification=0.0).score_samples(table)
    linear = fit(amplification=9.0, amplification_mode="linear").score_samples(table)
    log = fit(amplification=50.0).score_samples(table)
    assert math.isfinite(np.abs(plain - linear).max())
    assert np.abs(plain - linear).max() < np.abs(plain - log).max()


def test_grid_search_example_runs_and_reports(capsys):
    example = Path(__file__).resolve().parents[1] / "examples" / "plot_lamp_grid_search.py"
    runpy.run_path(str(example), run_name="__main__")
    out = capsys.readouterr().out
    best = [line for line in out.splitlines() if line.startswith("best amplification:")]
    assert len(best) == 1 and float(best[0].split(":")[1]) in (0.0, 1.0, 10.0, 100.0)
    auroc = float(out.split("test AUROC:")[1])
    assert 0.5 < auroc <= 1.0
