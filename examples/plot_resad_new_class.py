"""
Scoring a class never seen in training, from four normal references
====================================================================

:class:`skuad.ResADDetector` learns what *residuals* of normal rows look like — a row minus
its nearest normal reference of the same class — on several known classes. Residuals vary
far less from class to class than the rows themselves, so the trained model scores a new
class from a handful of its normal rows, with no retraining.

Here the classes are handwritten digits (8x8 images as 64 pixel features). ResAD is trained
on the digits 0 to 5, one class each. Digit 7 is then the new class: four images of a 7 serve
as references, and the task is to tell the other 7s (normal) from images of 9s and 4s
(anomalies, digits the model has not seen either or saw as another class).
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

from skuad import ResADDetector

digits = load_digits()
X, digit = digits.data, digits.target
rng = np.random.RandomState(0)

# %%
# Train on six known classes; ``groups`` tells ResAD which rows belong together, so that
# every training row is matched only with references of its own digit.
known = digit <= 5
detector = ResADDetector(n_reference=4, n_coupling_blocks=4, epochs=5, random_state=0, device="cpu")
detector.fit(X[known], groups=digit[known])

# %%
# A new class: four normal references, no retraining.
sevens = np.flatnonzero(digit == 7)
references = rng.choice(sevens, size=4, replace=False)
detector.set_reference(X[references])

test_normal = np.setdiff1d(sevens, references)
test_anomalous = np.flatnonzero(np.isin(digit, (9, 4)))
X_test = X[np.r_[test_normal, test_anomalous]]
is_anomaly = np.r_[np.zeros(len(test_normal)), np.ones(len(test_anomalous))]

scores = detector.score_samples(X_test)  # higher = more normal
auroc = roc_auc_score(is_anomaly, -scores)

# The simplest few-shot baseline: distance to the nearest of the same four references.
distance = np.min(((X_test[:, None, :] - X[references][None]) ** 2).sum(axis=2), axis=1)
print(f"ResAD, 4 references of a new class:   AUROC {auroc:.3f}")
print(f"distance to the nearest reference:    AUROC {roc_auc_score(is_anomaly, distance):.3f}")
