"""
Deep detectors in a scikit-learn pipeline
=========================================

A skuad detector is the last step of a :class:`~sklearn.pipeline.Pipeline` like any
scikit-learn outlier detector: the pipeline's ``score_samples``, ``decision_function`` and
``predict`` run the transforms and then the detector. Here PCA compresses 8x8 digit images to
16 components and :class:`skuad.DeepSVDD` learns what the digit 0 looks like; every other digit
is an anomaly.
"""

# %%
# A one-class task from data that ships with scikit-learn
# --------------------------------------------------------
# ``y = 1`` marks an anomaly (any digit but 0). ``one_class_split`` splits the rows 70/30,
# stratified by ``y``; the detector is trained on the normal rows of the 70 %, and the test set
# is the 30 %, normal rows and anomalies.
import matplotlib.pyplot as plt
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from skuad import DeepSVDD
from skuad.datasets import load_digits_task, one_class_split

X, y = load_digits_task(normal_digits=(0,))
X_train, X_test, y_test = one_class_split(X, y, random_state=0)
print(f"train: {len(X_train)} normal rows; test: {len(X_test)} rows, {y_test.sum()} anomalies")

# %%
# Build and fit the pipeline
# --------------------------
# Few epochs keep the example fast; the defaults train longer.
pipeline = make_pipeline(
    MinMaxScaler(),
    PCA(n_components=16, random_state=0),
    DeepSVDD(epochs=10, random_state=0, device="cpu"),
)
pipeline.fit(X_train)

scores = pipeline.score_samples(X_test)  # higher = more normal
labels = pipeline.predict(X_test)  # +1 inlier, -1 outlier
print(f"AUROC: {roc_auc_score(y_test, -scores):.3f}")
print(f"flagged as outliers: {(labels == -1).mean():.0%} of the test rows")

# %%
# Parameters are reachable through the pipeline
# ---------------------------------------------
# ``get_params``/``set_params`` use the ``<step>__<param>`` names, so ``clone`` and
# ``GridSearchCV`` work on the whole pipeline.
soft = clone(pipeline).set_params(deepsvdd__objective="soft-boundary", deepsvdd__nu=0.05)
soft.fit(X_train)
print(f"soft-boundary AUROC: {roc_auc_score(y_test, -soft.score_samples(X_test)):.3f}")

# %%
# Score distributions
# -------------------
# ``decision_function`` is ``score_samples - offset_``: the threshold sits at 0.
decision = pipeline.decision_function(X_test)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.hist(decision[y_test == 0], bins=30, alpha=0.6, label="normal (digit 0)")
ax.hist(decision[y_test == 1], bins=30, alpha=0.6, label="anomalies (other digits)")
ax.axvline(0, color="black", linestyle="--", label="threshold")
ax.set(xlabel="decision_function", ylabel="test rows")
ax.legend()
fig.tight_layout()
plt.show()
