"""
Saving and loading a fitted detector
====================================

A fitted skuad detector is a plain Python object: save it with :func:`joblib.dump` (or
``pickle``) and load it with :func:`joblib.load`, alone or inside a pipeline. The loaded model
gives the same scores and needs no training data. As with scikit-learn models, load it with the
same versions of skuad, scikit-learn and torch that saved it.
"""

# %%
# Fit, save, load
# ---------------
import tempfile
from pathlib import Path

import joblib
import numpy as np
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skuad import DeepSVDD
from skuad.datasets import load_breast_cancer_task, one_class_split

X, y = load_breast_cancer_task()
X_train, X_test, y_test = one_class_split(X, y, random_state=0)

model = make_pipeline(StandardScaler(), DeepSVDD(epochs=10, random_state=0, device="cpu"))
model.fit(X_train)

with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "detector.joblib"
    joblib.dump(model, path)
    print(f"saved {path.name}: {path.stat().st_size / 1024:.0f} KiB")
    loaded = joblib.load(path)

# %%
# The loaded model scores exactly as the original
# -----------------------------------------------
before = model.score_samples(X_test)
after = loaded.score_samples(X_test)
print("identical scores:", np.array_equal(before, after))
print("identical labels:", np.array_equal(model.predict(X_test), loaded.predict(X_test)))
print("threshold (offset_):", loaded[-1].offset_)

# %%
# A saved model is still an estimator
# -----------------------------------
# Its parameters can be read and it can be refitted, e.g. on new normal data.
print(loaded[-1].get_params()["epochs"])
loaded.fit(X_train[:200])
print("refitted on 200 rows; offset_ now", round(loaded[-1].offset_, 4))
