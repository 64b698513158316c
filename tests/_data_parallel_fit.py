"""One detector fit, recorded batch by batch: run in each process of a data-parallel launch by
tests/test_accelerate.py, and imported by it for the single-process fit it compares with.

    CUDA_VISIBLE_DEVICES= ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 \\
        tests/_data_parallel_fit.py OUT_DIR
"""

import contextlib
import sys
from pathlib import Path

import joblib
import numpy as np

from skuad import DeepSVDD, ResADDetector
from skuad._training import DetectorNet

N_ROWS = 512  # a multiple of the batch size: every batch is full, none is padded
GLOBAL_BATCH_SIZE = 64


def training_data():
    rng = np.random.RandomState(0)
    return rng.normal(size=(N_ROWS, 6))


def make_detector():
    return DeepSVDD(
        hidden_layer_sizes=(16,),
        representation_dim=8,
        pretrain=True,  # two training stages: pre-training's autoencoder, then the SVDD net
        pretrain_epochs=2,
        epochs=3,
        batch_size=GLOBAL_BATCH_SIZE,
        lr=1e-3,
        random_state=0,
        device="cpu",
    )


def make_batchnorm_detector():
    """A network with BatchNorm (ResAD's constraintor), whose running statistics are buffers."""
    return ResADDetector(
        constraintor="on",
        constraintor_width=8,
        n_coupling_blocks=2,
        epochs=2,
        batch_size=GLOBAL_BATCH_SIZE,
        random_state=0,
        device="cpu",
    )


@contextlib.contextmanager
def recorded_training_batches():
    """Yield a list that receives a copy of every training batch's input rows, in step order."""
    batches = []
    get_loss = DetectorNet.get_loss

    def recording_get_loss(self, y_pred, y_true, X=None, training=False):
        if training:
            batches.append(X.detach().cpu().numpy().copy())
        return get_loss(self, y_pred, y_true, X=X, training=training)

    DetectorNet.get_loss = recording_get_loss
    try:
        yield batches
    finally:
        DetectorNet.get_loss = get_loss


def main(out_dir):
    from skuad.parallel import data_parallel

    out_dir = Path(out_dir)
    X = training_data()
    with data_parallel() as accelerator:
        with recorded_training_batches() as batches:
            detector = make_detector().fit(X)
        batchnorm_detector = make_batchnorm_detector().fit(X)
    rank = accelerator.process_index
    np.savez(out_dir / f"batches_rank{rank}.npz", *batches)
    np.save(out_dir / f"scores_rank{rank}.npy", detector.score_samples(X))
    np.save(out_dir / f"batchnorm_scores_rank{rank}.npy", batchnorm_detector.score_samples(X))
    if accelerator.is_main_process:
        joblib.dump(detector, out_dir / "detector.joblib")
        (out_dir / "n_processes.txt").write_text(str(accelerator.num_processes))


if __name__ == "__main__":
    main(sys.argv[1])
