"""
Grid-searching LAMP's amplification factor without test labels
==============================================================

:class:`skuad.LAMPAutoencoderDetector` trains an autoencoder with an amplified reconstruction
loss; ``amplification=0`` is the plain autoencoder. The factor is a hyper-parameter to search,
but under the one-class protocol the training data hold no anomalies, and the test labels must
not be used for selection. This example builds an honest search from the training rows alone:

* :func:`skuad.model_selection.with_synthetic_outliers` appends reference outliers drawn from
  the product of the training features' marginals;
* :class:`skuad.model_selection.InlierKFold` trains each fold on inliers only and tests it on
  held-out inliers plus reference outliers;
* :func:`skuad.metrics.make_outlier_scorer` scores the ranking (AUROC) with an explicit label
  convention.
"""

# %%
# A one-class task: benign tumours are normal
# -------------------------------------------
# ``y = 1`` marks a malignant (anomalous) tumour. Train on 70 % of the benign rows; test on the
# other benign rows and every malignant one.
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skuad import LAMPAutoencoderDetector
from skuad.datasets import load_breast_cancer_task, one_class_split
from skuad.metrics import make_outlier_scorer, outlier_roc_auc_score
from skuad.model_selection import InlierKFold, with_synthetic_outliers

X, y = load_breast_cancer_task()
X_train, X_test, y_test = one_class_split(X, y, random_state=0)

# %%
# Search the factor on training rows only
# ---------------------------------------
# The synthetic rows are labelled -1 (scikit-learn's outlier label) and only ever land in test
# folds. ``refit=False``: the final model is refitted below on the real training rows only.
X_select, y_select = with_synthetic_outliers(X_train, random_state=0)
pipeline = Pipeline(
    [
        ("scale", StandardScaler()),
        ("lamp", LAMPAutoencoderDetector(epochs=20, random_state=0, device="cpu")),
    ]
)
search = GridSearchCV(
    pipeline,
    {"lamp__amplification": [0.0, 1.0, 10.0, 100.0]},
    scoring=make_outlier_scorer("roc_auc"),
    cv=InlierKFold(3, shuffle=True, random_state=0),
    refit=False,
).fit(X_select, y_select)
for factor, score in zip(
    search.cv_results_["param_lamp__amplification"],
    search.cv_results_["mean_test_score"],
    strict=True,
):
    print(f"amplification {factor:6g}: inlier-vs-reference AUROC {score:.3f}")
best_factor = search.best_params_["lamp__amplification"]
print(f"best amplification: {best_factor:g}")

# %%
# Refit on the training inliers and evaluate once on the test set
# ---------------------------------------------------------------
# The test labels follow the 1 = anomaly convention, said explicitly.
model = clone(pipeline).set_params(lamp__amplification=best_factor).fit(X_train)
auroc = outlier_roc_auc_score(y_test, model.score_samples(X_test), y_convention="anomaly")
print(f"test AUROC: {auroc:.3f}")
