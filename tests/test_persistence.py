"""Saving and loading every registry estimator: exact round trips, versions, devices."""

import copy
import io
import pickle
import re
import warnings

import joblib
import numpy as np
import pytest
import skorch.net
import torch
from sklearn.base import clone
from skorch import NeuralNet
from skorch.callbacks import Callback

import skuad
from skuad import SkuadVersionWarning
from tests.conftest import FAST_DETECTORS, detector_id, no_cuda, requires_cuda

registry = pytest.mark.parametrize("estimator", FAST_DETECTORS, ids=detector_id)


@pytest.fixture
def X():
    return np.random.RandomState(0).normal(size=(30, 4))


_FITTED = {}


def fitted_copy(estimator, X):
    """A fresh copy of ``estimator`` fitted on ``X`` (one fit per registry entry per session)."""
    if id(estimator) not in _FITTED:
        _FITTED[id(estimator)] = clone(estimator).fit(X)
    return copy.deepcopy(_FITTED[id(estimator)])


def skorch_nets(detector):
    return [value for value in vars(detector).values() if isinstance(value, NeuralNet)]


@registry
def test_pickle_and_joblib_round_trips_score_identically(estimator, X, tmp_path):
    detector = fitted_copy(estimator, X)
    X_new = np.random.RandomState(1).normal(size=(7, 4))
    joblib.dump(detector, tmp_path / "model.joblib")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same version: loading must not warn
        restored = [pickle.loads(pickle.dumps(detector)), joblib.load(tmp_path / "model.joblib")]
    for loaded in restored:
        assert "_skuad_version" not in vars(loaded)
        np.testing.assert_array_equal(loaded.score_samples(X_new), detector.score_samples(X_new))
        np.testing.assert_array_equal(loaded.predict(X_new), detector.predict(X_new))
        assert loaded.offset_ == detector.offset_


@registry
def test_a_saved_model_records_the_skuad_version_and_warns_under_another(estimator, X, monkeypatch):
    detector = fitted_copy(estimator, X)
    assert detector.__getstate__()["_skuad_version"] == skuad.__version__
    saved = pickle.dumps(detector)
    message = f"saved with skuad {re.escape(skuad.__version__)} under skuad 99\\.0"
    monkeypatch.setattr(skuad, "__version__", "99.0")
    with pytest.warns(SkuadVersionWarning, match=message):
        restored = pickle.loads(saved)
    # The warning is advice: the model still loads and scores as before.
    np.testing.assert_array_equal(restored.score_samples(X), detector.score_samples(X))


def test_a_state_without_a_version_warns_as_unknown(X):
    detector = fitted_copy(FAST_DETECTORS[0], X)
    state = detector.__getstate__()
    del state["_skuad_version"]
    blank = type(detector).__new__(type(detector))
    with pytest.warns(SkuadVersionWarning, match="saved with skuad unknown"):
        blank.__setstate__(state)


@no_cuda
@registry
def test_a_model_saved_for_cuda_loads_and_scores_on_a_cpu_only_machine(estimator, X):
    # Without a GPU the CUDA path is simulated: the nets are marked as living on 'cuda' when
    # saved, so loading goes through skorch's map_location fallback to the CPU exactly as a
    # CUDA-trained model does. Tensors really stored on a GPU are covered by the test below.
    detector = fitted_copy(estimator, X)
    expected = detector.score_samples(X)
    nets = skorch_nets(detector)
    assert nets, "expected the fitted networks to be held in skorch nets"
    for net in nets:
        net.device = "cuda"
    saved = pickle.dumps(detector)
    with pytest.warns(Warning, match="no CUDA devices are available"):
        restored = pickle.loads(saved)
    for net in skorch_nets(restored):
        assert torch.device(net.device).type == "cpu"
        assert all(p.device.type == "cpu" for p in net.module_.parameters())
    np.testing.assert_allclose(restored.score_samples(X), expected, rtol=1e-6)


class _TensorFinder(pickle.Pickler):
    """Pickles to nowhere, recording the shape of every tensor it meets itself.

    CPU generators are passed over: their state is a CPU tensor, which loads on any machine
    (and must stay one, so it cannot go through a device map).
    """

    def __init__(self):
        super().__init__(io.BytesIO())
        self.tensor_shapes = []

    def reducer_override(self, obj):
        if isinstance(obj, torch.Generator):
            assert obj.device.type == "cpu"
            return object, ()
        if isinstance(obj, torch.Tensor):
            self.tensor_shapes.append(tuple(obj.shape))
        return NotImplemented


class _KeepsAWeight(Callback):
    """A user's callback that keeps a tensor: a copy of the first weight after training."""

    def on_train_end(self, net, **kwargs):
        self.first_weight = next(net.module_.parameters()).detach().clone()


@registry
def test_every_tensor_of_a_net_is_pickled_where_skorch_maps_its_device(estimator, X):
    # skorch pickles a few attributes of a net apart and loads them with a device map (to the
    # CPU when CUDA is missing); a tensor pickled anywhere else keeps its device, so a model
    # trained on a GPU would not load without one. Pickling a fitted net must therefore meet
    # no tensor itself, whatever holds it: the module, the criterion, a callback.
    detector = clone(estimator).set_params(callbacks=[_KeepsAWeight()]).fit(X)
    nets = skorch_nets(detector)
    assert nets, "expected the fitted networks to be held in skorch nets"
    for net in nets:
        finder = _TensorFinder()
        finder.dump(net)
        assert finder.tensor_shapes == []


@registry
def test_loading_with_a_device_map_moves_the_tensors_and_keeps_the_generator_on_the_cpu(
    estimator, X, monkeypatch
):
    # What loading on another device does, simulated with torch's 'meta' device as the
    # target of skorch's device map (on a CUDA machine it is 'cuda'): every tensor of a net
    # goes there, but the seeded shuffling generator must stay a CPU generator, whose state
    # cannot be loaded from a tensor on another device.
    saved = pickle.dumps(fitted_copy(estimator, X))
    monkeypatch.setattr(skorch.net, "get_map_location", lambda *args: torch.device("meta"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skorch warns that the net's device changed
        restored = pickle.loads(saved)
    for net in skorch_nets(restored):
        for module in (net.module_, net.criterion_):
            assert all(t.device.type == "meta" for t in [*module.parameters(), *module.buffers()])
        assert net.iterator_train__generator.device.type == "cpu"


@requires_cuda
@registry
def test_a_model_trained_on_cuda_loads_and_scores_without_cuda(estimator, X, monkeypatch):
    detector = clone(estimator).set_params(device="cuda").fit(X)
    expected = detector.score_samples(X)
    saved = pickle.dumps(detector)
    # Load as a machine without CUDA would: every CUDA tensor must be mapped to the CPU.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        restored = pickle.loads(saved)
    for net in skorch_nets(restored):
        assert all(p.device.type == "cpu" for p in net.module_.parameters())
    np.testing.assert_allclose(restored.score_samples(X), expected, rtol=1e-4, atol=1e-5)
