"""Data-parallel training through Accelerate (skuad.parallel.data_parallel).

The two-process test starts the documented command, ``accelerate launch --multi_gpu
--num_processes 2``, on CPU (``ACCELERATE_USE_CPU=1``: gloo backend, no GPU or MPI needed; GPUs
hidden with ``CUDA_VISIBLE_DEVICES=""``).
"""

import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone

from skuad._training import DetectorNet
from tests import _data_parallel_fit as fit_script
from tests.conftest import FAST_DETECTORS, detector_id

pytest.importorskip("accelerate")

from accelerate import Accelerator  # noqa: E402

from skuad.parallel import data_parallel  # noqa: E402


@pytest.fixture(autouse=True)
def accelerate_on_the_cpu(monkeypatch):
    # These fits are compared with CPU fits; on a machine with a GPU, the default accelerator
    # would train on it (its device replaces the detectors').
    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")


REPO = Path(__file__).resolve().parents[1]
# Both fits train in float32; the two processes average their gradients (each the mean over
# half a batch) where one process takes the mean over the whole batch, so the weights differ by
# rounding only. Observed: 4.0e-7 relative on the scores after 40 steps.
SCORE_RTOL = 1e-5


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_two_processes(out_dir, home):
    env = {
        **os.environ,
        "ACCELERATE_USE_CPU": "1",
        # On a machine with GPUs too: Accelerate's barrier would ask for one GPU per process.
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
        # No accelerate config of the user's (~/.cache/huggingface) is read.
        "HF_HOME": str(home),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes=2",
        "--num_machines=1",
        "--mixed_precision=no",
        "--dynamo_backend=no",
        f"--main_process_port={free_port()}",
        str(Path(fit_script.__file__)),
        str(out_dir),
    ]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


def load_batches(path):
    with np.load(path) as stored:
        return [stored[f"arr_{i}"] for i in range(len(stored.files))]


def test_two_process_fit_sees_the_same_batches_and_scores_like_a_single_process_fit(tmp_path):
    completed = launch_two_processes(tmp_path, tmp_path / "hf_home")
    assert completed.returncode == 0, completed.stderr[-6000:]
    assert (tmp_path / "n_processes.txt").read_text() == "2"

    X = fit_script.training_data()
    with fit_script.recorded_training_batches() as single_batches:
        single = fit_script.make_detector().fit(X)

    # Same data per step: each process took one half of the single-process batch, in order.
    rank0 = load_batches(tmp_path / "batches_rank0.npz")
    rank1 = load_batches(tmp_path / "batches_rank1.npz")
    assert len(rank0) == len(rank1) == len(single_batches)
    half = fit_script.GLOBAL_BATCH_SIZE // 2
    for step, (first, second, whole) in enumerate(zip(rank0, rank1, single_batches, strict=True)):
        assert len(first) == len(second) == half, step
        np.testing.assert_array_equal(np.vstack([first, second]), whole, err_msg=f"step {step}")

    # Gradients were averaged: both processes ended with the same network, BatchNorm's
    # running statistics included.
    for name in ("scores", "batchnorm_scores"):
        np.testing.assert_array_equal(
            np.load(tmp_path / f"{name}_rank0.npy"), np.load(tmp_path / f"{name}_rank1.npy")
        )
    # The saved model is a plain detector: it loads and scores in this single CPU process.
    parallel = joblib.load(tmp_path / "detector.joblib")
    assert type(parallel.net_) is DetectorNet
    assert not hasattr(parallel.net_, "accelerator")
    np.testing.assert_array_equal(parallel.score_samples(X), np.load(tmp_path / "scores_rank0.npy"))
    np.testing.assert_allclose(parallel.score_samples(X), single.score_samples(X), rtol=SCORE_RTOL)
    assert parallel.offset_ == pytest.approx(single.offset_, rel=SCORE_RTOL)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("detector", FAST_DETECTORS, ids=detector_id)
def test_data_parallel_on_one_process_fits_exactly_as_without(detector, blobs, sparse, monkeypatch):
    # One process: no gradient averaging, the same batches from a DataLoader as from skuad's
    # own loader, so anything the Accelerate path changes beyond that shows as a difference.
    # Sparse rows reach the DataLoader one row at a time, densified on demand.
    X, _ = blobs
    X = sp.csr_matrix(X) if sparse else X
    plain = clone(detector).fit(X)
    prepared = []
    prepare = Accelerator.prepare

    def recording_prepare(self, *args, **kwargs):
        prepared.append(len(args))
        return prepare(self, *args, **kwargs)

    monkeypatch.setattr(Accelerator, "prepare", recording_prepare)
    with data_parallel():
        accelerated = clone(detector).fit(X)
    assert prepared, "the fit did not go through Accelerate"
    assert type(accelerated.net_) is type(plain.net_)
    np.testing.assert_array_equal(accelerated.score_samples(X), plain.score_samples(X))
    saved = io.BytesIO()
    joblib.dump(accelerated, saved)
    saved.seek(0)
    np.testing.assert_array_equal(joblib.load(saved).score_samples(X), plain.score_samples(X))


def test_data_parallel_refuses_what_is_not_an_accelerator():
    with pytest.raises(ValueError, match="accelerate.Accelerator"):
        with data_parallel("cuda"):
            pass
