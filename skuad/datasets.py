"""Anomaly-detection tasks from data that ships with scikit-learn, and ADBench ``.npz`` files.

Labels follow the ADBench convention: ``y = 1`` marks an anomaly, ``y = 0`` a normal row.
(scikit-learn's detectors predict +1 for inliers; :func:`skuad.datasets.one_class_split`
and the benchmark scripts convert where needed.)
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split


def load_digits_task(normal_digits=(0,)):
    """8x8 digit images as an anomaly task: the given digits are normal, all others anomalies.

    Returns
    -------
    X : ndarray of shape (1797, 64)
        Flattened 8x8 images, pixel values 0..16 (use ``image_shape=(1, 8, 8)``).
    y : ndarray of shape (1797,)
        1 for anomalies (digits not in ``normal_digits``), 0 for normal rows.
    """
    digits = load_digits()
    y = (~np.isin(digits.target, normal_digits)).astype(int)
    return digits.data.astype(np.float64), y


def load_breast_cancer_task():
    """Breast cancer table as an anomaly task: benign tumours normal, malignant anomalies.

    Returns
    -------
    X : ndarray of shape (569, 30)
    y : ndarray of shape (569,)
        1 for malignant (anomaly), 0 for benign.
    """
    data = load_breast_cancer()
    return data.data, (data.target == 0).astype(int)


def load_adbench(path):
    """Load one ADBench ``.npz`` file; returns ``(X, y)`` with y = 1 for anomalies.

    Raises ``ValueError`` naming the problem for anything that is not an ``.npz`` with a 2-D
    numeric ``X`` and a matching 0/1 ``y``.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"{path}: expected an ADBench .npz file with arrays X and y.")
    try:
        # np.load also reads .npy and pickles; a ValueError here is its "pickled data" refusal.
        data = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc}).") from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: not a readable .npz file (it holds a single .npy array).")
    with data:
        if "X" not in data or "y" not in data:
            raise ValueError(
                f"{path}: the .npz file must hold arrays named X and y, found {sorted(data.files)}."
            )
        X, y = data["X"], data["y"]
    if X.ndim != 2 or not np.issubdtype(X.dtype, np.number):
        raise ValueError(
            f"{path}: X must be a 2-D numeric array, got {X.dtype} of shape {X.shape}."
        )
    y = np.asarray(y).ravel()
    if len(y) != len(X) or not np.isin(y, (0, 1)).all():
        raise ValueError(f"{path}: y must hold one 0/1 label per row of X.")
    return X.astype(np.float64), y.astype(int)


def one_class_split(X, y, *, test_size=0.3, random_state=None):
    """The one-class protocol of ADBench: train on the normal rows of a stratified split.

    ``X, y`` are split into a training and a test part, stratified by ``y`` (as ADBench does);
    the detector is trained on the normal rows of the training part and tested on the whole
    test part, which keeps the anomaly rate of ``y``. The anomalies of the training part are
    not used. ``skuad bench`` and the scripts in ``benchmarks/`` use this split.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        1 for anomalies, 0 for normal rows.
    test_size : float, default=0.3
        Fraction of the rows (of each label) in the test part.
    random_state : int, RandomState instance or None
        Seeds the split.

    Returns
    -------
    X_train : ndarray
        The normal rows of the training part.
    X_test : ndarray
        The test part: ``test_size`` of the normal rows and of the anomalies.
    y_test : ndarray
        1 for anomalies, 0 for normal rows, aligned with ``X_test``.
    """
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, stratify=y, random_state=random_state
    )
    return X_train[y_train == 0], X_test, y_test
