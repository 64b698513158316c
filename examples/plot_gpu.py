"""
Running on a GPU (or not)
=========================

``device='auto'``, the default, trains on CUDA when ``torch.cuda.is_available()`` and on the
CPU otherwise: the same script runs on a laptop and on a GPU server. ``device='cpu'`` forces the
CPU; ``'cuda'`` or ``'cuda:1'`` ask for a GPU and raise a ``ValueError`` where there is none.
Scores are computed in bounded-memory batches on the training device.
"""

# %%
# Fit with ``device='auto'``
# --------------------------
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from skuad import DeepSVDD
from skuad.datasets import load_breast_cancer_task, one_class_split

print(f"CUDA available: {torch.cuda.is_available()}")

X, y = load_breast_cancer_task()
X_train, X_test, y_test = one_class_split(X, y, random_state=0)

detector = DeepSVDD(epochs=10, random_state=0, device="auto")
start = time.perf_counter()
detector.fit(X_train)
print(f"fit in {time.perf_counter() - start:.1f} s")
trained_on = next(detector.net_.module_.parameters()).device
print(f"trained on: {trained_on}")
print(f"AUROC: {roc_auc_score(y_test, -detector.score_samples(X_test)):.3f}")

# %%
# Asking for CUDA on a machine without it
# ---------------------------------------
# The error names the problem and the fix instead of failing deep inside torch.
if not torch.cuda.is_available():
    try:
        DeepSVDD(device="cuda", epochs=1).fit(X_train)
    except ValueError as exc:
        print(f"ValueError: {exc}")

# %%
# CPU results are reproducible
# ----------------------------
# On the CPU a fixed ``random_state`` gives identical fits (CUDA kernels may not be
# deterministic, which is why the detectors declare themselves non-deterministic there).
a = DeepSVDD(epochs=5, random_state=0, device="cpu").fit(X_train)
b = DeepSVDD(epochs=5, random_state=0, device="cpu").fit(X_train)
print("identical CPU fits:", np.array_equal(a.score_samples(X_test), b.score_samples(X_test)))
