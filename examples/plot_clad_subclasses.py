"""
CLAD on normal data made of hidden sub-classes
==============================================

The normal data here are four well-separated groups (latent sub-classes nobody labelled).
A one-class detector draws one boundary around all of them, and the empty space between the
groups falls inside it. :class:`skuad.CLADDetector` clusters the data, trains a classifier on
the clusters and scores a point by the classifier's confidence: between the groups the
classifier is unsure, so those points score as anomalous.

Two kinds of anomalies are scored separately: points in the gaps between the groups, where
CLAD's idea applies, and points far outside all groups. With the paper's linear last layer
(``classifier_head='linear'``) CLAD fails on the second kind -- a ReLU classifier's logits
grow linearly away from the data, so its confidence there tends to 1 (Hein et al., CVPR
2019). skuad's default head for feature vectors, ``'student_t'`` (logits = log Student-t
kernels to learned prototypes), has a confidence that falls to ``1 / K`` far from the data.
Deep SVDD, a distance to one centre, handles the far anomalies but not the gaps.
The plot shows CLAD's self-labels (colours) and the decision boundaries
(``decision_function = 0``).
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_blobs
from sklearn.metrics import roc_auc_score

from skuad import CLADDetector, DeepSVDD

centers = [[-4, -4], [-4, 4], [4, -4], [4, 4]]
X_train, _ = make_blobs(n_samples=400, centers=centers, cluster_std=0.7, random_state=0)
X_normal, _ = make_blobs(n_samples=200, centers=centers, cluster_std=0.7, random_state=1)
rng = np.random.RandomState(2)
candidates = rng.uniform(-6, 6, size=(2000, 2))
in_gap = np.min(np.abs(candidates), axis=1) < 1.5  # between the groups, inside their hull
X_gap = candidates[in_gap][:100]
angle = rng.uniform(0, 2 * np.pi, size=100)
X_far = np.c_[np.cos(angle), np.sin(angle)] * rng.uniform(9, 12, size=(100, 1))

# One DEC cluster per group, in a 2-D latent space; a short training schedule for each stage.
settings = dict(n_clusters=4, latent_dim=2, temperature=1.0, device="cpu", random_state=0)
settings.update(pretrain_epochs=20, dec_epochs=10, epochs=20)
clad = CLADDetector(**settings).fit(X_train)  # Student-t head (default for vectors)
clad_linear = CLADDetector(classifier_head="linear", **settings).fit(X_train)
svdd = DeepSVDD(epochs=20, device="cpu", random_state=0).fit(X_train)
detectors = [("CLAD (Student-t head)", clad), ("CLAD (linear head)", clad_linear)]
detectors.append(("DeepSVDD", svdd))

for name, detector in detectors:
    for kind, X_anomalies in [("gap", X_gap), ("far", X_far)]:
        X_test = np.vstack([X_normal, X_anomalies])
        y_test = np.r_[np.zeros(len(X_normal)), np.ones(len(X_anomalies))]  # 1 = anomaly
        auroc = roc_auc_score(y_test, -detector.score_samples(X_test))
        print(f"{name:22s} AUROC on {kind} anomalies {auroc:.3f}")
print("CLAD self-labels per cluster:", np.bincount(clad.labels_))

xx, yy = np.meshgrid(np.linspace(-12, 12, 120), np.linspace(-12, 12, 120))
grid = np.c_[xx.ravel(), yy.ravel()]
fig, axes = plt.subplots(1, 3, figsize=(13, 4.5), sharey=True)
for ax, (name, detector) in zip(axes, detectors, strict=True):
    decision = detector.decision_function(grid).reshape(xx.shape)
    ax.contourf(xx, yy, decision, levels=20, cmap="Blues_r", alpha=0.6)
    ax.contour(xx, yy, decision, levels=[0], colors="k")
    colours = detector.labels_ if name.startswith("CLAD") else np.zeros(len(X_train))
    ax.scatter(X_train[:, 0], X_train[:, 1], c=colours, cmap="tab10", s=6)
    for X_anomalies, marker in [(X_gap, "x"), (X_far, "+")]:
        ax.scatter(X_anomalies[:, 0], X_anomalies[:, 1], c="tab:red", marker=marker, s=10)
    ax.set_title(name)
fig.tight_layout()
plt.show()
