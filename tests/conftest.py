"""Shared fixtures: small, fast detector configurations and data."""

import os

# scikit-learn's check_array_api_input runs only when SciPy's array-API mode is on, and SciPy
# reads this variable once, at import: set it before anything imports SciPy.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
# The tests train tiny networks, for which one thread is several times faster than two on a
# busy 2-core machine; examples run in subprocesses inherit this too.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

from skuad import CLADDetector, DeepSVDD, LAMPAutoencoderDetector, ResADDetector  # noqa: E402

# The two CLAD entries of the registry differ only in their classifier head.
_SMALL_CLAD = dict(
    n_clusters=3, pretrain_epochs=2, dec_epochs=2, epochs=3, random_state=0, device="cpu"
)

# The single registry of skuad estimators under test: small, fast, CPU, seeded configurations.
# A new detector joins the scikit-learn checks (and the shared behaviour tests) by being added here.
FAST_DETECTORS = [
    DeepSVDD(epochs=3, pretrain=True, pretrain_epochs=2, random_state=0, device="cpu"),
    DeepSVDD(
        objective="soft-boundary",
        warm_up_epochs=1,
        epochs=3,
        pretrain=False,
        random_state=0,
        device="cpu",
    ),
    LAMPAutoencoderDetector(amplification=1.0, epochs=3, random_state=0, device="cpu"),
    LAMPAutoencoderDetector(
        amplification=5.0, amplify_per="sample", epochs=3, random_state=0, device="cpu"
    ),
    CLADDetector(**_SMALL_CLAD),
    CLADDetector(**_SMALL_CLAD, temperature=1.0, epsilon=0.01, classifier_head="linear"),
    ResADDetector(n_coupling_blocks=2, epochs=3, random_state=0, device="cpu"),
    ResADDetector(
        reference_pool="few-shot",
        n_reference=2,
        constraintor="on",
        constraintor_width=8,
        n_coupling_blocks=2,
        epochs=3,
        random_state=0,
        device="cpu",
    ),
]


def detector_id(est):
    params = est.get_params()
    return f"{type(est).__name__}-{params.get('objective', '')}".rstrip("-")


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@pytest.fixture
def blobs():
    """Inliers around the origin plus a few far outliers, labels +1/-1."""
    rng = np.random.RandomState(0)
    inliers = rng.normal(size=(200, 5))
    outliers = rng.uniform(4, 6, size=(20, 5)) * rng.choice([-1, 1], size=(20, 5))
    X = np.vstack([inliers, outliers])
    y = np.r_[np.ones(200, dtype=int), -np.ones(20, dtype=int)]
    return X, y
