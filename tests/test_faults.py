"""Faults during fit: diverging training and KeyboardInterrupt, over every registry estimator.

A fit that fails must leave the estimator exactly as it was: unfitted if it was unfitted, and
with its previous, still working fit otherwise.
"""

import numpy as np
import pytest
from sklearn.base import clone

from skuad import DeepSVDD, TrainingDivergedError
from skuad._training import InterruptibleNet
from tests.conftest import FAST_DETECTORS, detector_id

registry = pytest.mark.parametrize("estimator", FAST_DETECTORS, ids=detector_id)


@pytest.fixture
def X():
    return np.random.RandomState(0).normal(size=(30, 4))


def patch_training_step(monkeypatch, after_steps, effect):
    """Let ``after_steps`` training steps run normally, then apply ``effect`` to each step.

    Every skuad net derives from ``InterruptibleNet``, so this reaches every detector's
    training, whatever its network or loss.
    """
    original = InterruptibleNet.train_step_single
    calls = {"n": 0}

    def step(self, batch, **fit_params):
        calls["n"] += 1
        result = original(self, batch, **fit_params)
        return effect(result) if calls["n"] > after_steps else result

    monkeypatch.setattr(InterruptibleNet, "train_step_single", step)
    return calls


def nan_loss(step):
    step["loss"] = step["loss"] * float("nan")
    return step


def interrupt(step):
    raise KeyboardInterrupt


def assert_state_kept(detector, state_before, X, scores_before):
    assert vars(detector).keys() == state_before.keys()
    for name, value in state_before.items():
        assert vars(detector)[name] is value, name
    if scores_before is not None:
        np.testing.assert_array_equal(detector.score_samples(X), scores_before)


def clone_and_snapshot(estimator, fitted_before, X):
    """A clone (fitted on ``X`` first when ``fitted_before``), its scores then (or None) and a
    copy of its state, for checking that a failed fit leaves both as they were."""
    detector = clone(estimator)
    scores = detector.fit(X).score_samples(X) if fitted_before else None
    return detector, scores, dict(vars(detector))


def fitted_attributes(detector):
    return [name for name in vars(detector) if name.endswith("_") and not name.startswith("_")]


@registry
@pytest.mark.parametrize("fitted_before", [False, True], ids=["unfitted", "refit"])
def test_diverging_training_raises_and_keeps_the_previous_state(
    estimator, fitted_before, X, monkeypatch
):
    detector, scores, state = clone_and_snapshot(estimator, fitted_before, X)
    patch_training_step(monkeypatch, after_steps=1, effect=nan_loss)
    with pytest.raises(TrainingDivergedError, match=r"diverged.*loss became nan.*smaller.*`lr`"):
        detector.fit(X)
    assert_state_kept(detector, state, X, scores)
    if not fitted_before:
        assert fitted_attributes(detector) == []
        monkeypatch.undo()
        # The failure left nothing behind that stops a later fit.
        assert np.all(np.isfinite(detector.fit(X).score_samples(X)))


def test_a_huge_learning_rate_really_diverges_and_says_what_to_try(X):
    detector = DeepSVDD(optimizer="sgd", lr=1e12, pretrain=False, epochs=5, device="cpu")
    with pytest.raises(TrainingDivergedError, match="Try a smaller learning rate"):
        detector.fit(X)
    assert fitted_attributes(detector) == []
    # It is a FloatingPointError, so code catching arithmetic failures catches it too.
    assert issubclass(TrainingDivergedError, FloatingPointError)


@registry
@pytest.mark.parametrize("fitted_before", [False, True], ids=["unfitted", "refit"])
def test_keyboard_interrupt_stops_fit_and_keeps_the_previous_state(
    estimator, fitted_before, X, monkeypatch
):
    detector, scores, state = clone_and_snapshot(estimator, fitted_before, X)
    calls = patch_training_step(monkeypatch, after_steps=1, effect=interrupt)
    # skorch on its own swallows the interrupt and carries on as if training had finished.
    with pytest.raises(KeyboardInterrupt):
        detector.fit(X)
    assert calls["n"] == 2, "training went on after the interrupt"
    assert_state_kept(detector, state, X, scores)
    if not fitted_before:
        assert fitted_attributes(detector) == []
