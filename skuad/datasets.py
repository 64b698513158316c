"""Anomaly-detection tasks from data that ships with scikit-learn, and ADBench ``.npz`` files.

Labels follow the ADBench convention: ``y = 1`` marks an anomaly, ``y = 0`` a normal row.
(scikit-learn's detectors predict +1 for inliers; :func:`skuad.datasets.one_class_split`
and the benchmark scripts convert where needed.)

ADBench files are read from disk with :func:`load_adbench`, or downloaded once from ADBench's
public GitHub repository into a local cache, checked against the SHA-256 sums that ship with
skuad, with :func:`fetch_adbench`.
"""

import difflib
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split
from sklearn.utils import Bunch


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


# ---------------------------------------------------------------------------- ADBench download
#: The ADBench commit whose files the shipped checksums describe.
ADBENCH_COMMIT = "3dac8221081e190f157d78e93bfa8867f90d0965"
#: Where files are downloaded from: ``{base_url}/{path in the repository}``. GitHub's ``raw``
#: address serves both plain and Git LFS files.
ADBENCH_BASE_URL = f"https://github.com/Minqi824/ADBench/raw/{ADBENCH_COMMIT}"
#: Environment variables: the data home, a mirror's base URL, and that mirror's checksum file.
DATA_HOME_ENV = "SKUAD_DATA"
ADBENCH_URL_ENV = "SKUAD_ADBENCH_URL"
ADBENCH_MANIFEST_ENV = "SKUAD_ADBENCH_MANIFEST"

_DOWNLOAD_TIMEOUT_S = 60


def get_data_home(data_home=None):
    """The folder where skuad keeps downloaded data; created if missing.

    ``data_home`` when given, else the ``SKUAD_DATA`` environment variable, else
    ``~/skuad_data``. (The same rule as :func:`sklearn.datasets.get_data_home`, with
    skuad's own folder and variable.)

    Parameters
    ----------
    data_home : str or path-like, default=None

    Returns
    -------
    data_home : pathlib.Path
    """
    if data_home is None:
        data_home = os.environ.get(DATA_HOME_ENV, Path("~") / "skuad_data")
    data_home = Path(data_home).expanduser()
    data_home.mkdir(parents=True, exist_ok=True)
    return data_home


def adbench_manifest(manifest=None):
    """The ADBench files skuad can download: ``{repository path: (sha256, size in bytes)}``.

    Parameters
    ----------
    manifest : str or path-like, default=None
        A checksum file in the format of ``sha256sum`` plus a size column
        (``SHA256  SIZE  PATH`` per line, ``#`` comments), for a mirror that holds other
        files. ``None``: the ``SKUAD_ADBENCH_MANIFEST`` environment variable when set, else
        the list that ships with skuad (ADBench at commit :data:`ADBENCH_COMMIT`).

    Returns
    -------
    entries : dict
        Only the ``.npz`` dataset files.
    """
    if manifest is None:
        manifest = os.environ.get(ADBENCH_MANIFEST_ENV)
    if manifest is None:
        text = resources.files("skuad").joinpath("data", "adbench_sha256sums.txt").read_text()
    else:
        text = Path(manifest).read_text()
    entries = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(maxsplit=2)
        if len(fields) != 3 or not fields[1].isdigit() or len(fields[0]) != 64:
            raise ValueError(
                f"{manifest or 'adbench_sha256sums.txt'}, line {number}: expected "
                f"'SHA256  SIZE  PATH', got {line!r}."
            )
        sha256, size, path = fields
        if path.endswith(".npz"):
            entries[path] = (sha256.lower(), int(size))
    return entries


def _find_adbench_entry(name, entries):
    """The manifest path for ``name``: a file stem (``4_breastw``), the stem without its number
    (``breastw``), or a folder-qualified name (``CV_by_ResNet18/MVTec-AD_bottle``)."""
    wanted = str(name).removesuffix(".npz").strip("/").lower()

    def aliases(path):
        stem = path.removesuffix(".npz")
        parts = stem.split("/")
        base = parts[-1]
        names = {base.lower(), "/".join(parts[-2:]).lower(), stem.lower()}
        number, sep, rest = base.partition("_")
        if sep and number.isdigit():
            names.add(rest.lower())
        return names

    matches = [path for path in entries if wanted in aliases(path)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        options = ", ".join("/".join(path.removesuffix(".npz").split("/")[-2:]) for path in matches)
        raise ValueError(f"ADBench dataset {name!r} is ambiguous; name one of: {options}.")
    stems = sorted({Path(path).stem for path in entries})
    close = difflib.get_close_matches(str(name), stems, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"{name!r} is not an ADBench dataset known to skuad.{hint} "
        f"Known datasets: {', '.join(stems)}."
    )


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url, target, sha256, size):
    """Download ``url`` to ``target`` through a temporary file; keep it only if it verifies."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            try:
                with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
                    shutil.copyfileobj(response, file, 1 << 20)
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise OSError(
                    f"Could not download {url} ({reason}). Check the network connection and "
                    f"try again, or download that file by hand and save it as {target}; to use "
                    f"a mirror, set {ADBENCH_URL_ENV} to its base URL."
                ) from exc
        got_size, got_sha256 = os.path.getsize(temporary), _sha256(temporary)
        if got_sha256 != sha256:
            raise OSError(
                f"The file downloaded from {url} ({got_size} bytes, SHA-256 {got_sha256}) does "
                f"not match the expected checksum ({size} bytes, SHA-256 {sha256}); it was "
                "deleted. The download may have been cut short or the server may hold another "
                "version: try again, or use a mirror with matching files."
            )
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def fetch_adbench(
    name,
    *,
    data_home=None,
    download_if_missing=True,
    return_X_y=False,
    base_url=None,
    manifest=None,
):
    """Load an ADBench dataset, downloading it into the local cache on first use.

    The file is downloaded once from ADBench's public GitHub repository (commit
    :data:`ADBENCH_COMMIT`) to ``{data_home}/adbench/{folder}/{file}.npz``, checked against the
    SHA-256 sum shipped with skuad, and read from there afterwards. A file that fails the check
    is deleted and an ``OSError`` raised.

    Parameters
    ----------
    name : str
        The dataset: an ADBench file stem (``'4_breastw'``), the stem without its number
        (``'breastw'``), or, where a name exists in several folders, folder and stem
        (``'CV_by_ResNet18/MVTec-AD_bottle'``). ``'.npz'`` may be appended.
    data_home : str or path-like, default=None
        Cache folder; see :func:`get_data_home` (``SKUAD_DATA`` or ``~/skuad_data``).
    download_if_missing : bool, default=True
        If False, raise ``OSError`` when the file is not in the cache instead of downloading.
    return_X_y : bool, default=False
        Return ``(X, y)`` instead of a :class:`~sklearn.utils.Bunch`.
    base_url : str, default=None
        Where to download from: ``{base_url}/{path in the ADBench repository}``. ``None``:
        the ``SKUAD_ADBENCH_URL`` environment variable when set, else :data:`ADBENCH_BASE_URL`.
    manifest : str or path-like, default=None
        Checksum file of a mirror that holds other files; see :func:`adbench_manifest`.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data`` (X, float64, shape (n_samples, n_features)), ``target`` (y, 1 = anomaly),
        ``filename`` (the cached file), ``url`` and ``name`` (the file stem).
    (X, y) : tuple
        When ``return_X_y=True``.

    Raises
    ------
    ValueError
        For an unknown or ambiguous name (the message lists the known ones).
    OSError
        When the download fails (the message names the URL and what to do), when the file
        does not match its checksum, or when it is missing and ``download_if_missing=False``.

    Examples
    --------
    >>> from skuad.datasets import fetch_adbench
    >>> X, y = fetch_adbench("4_breastw", return_X_y=True)  # doctest: +SKIP
    >>> X.shape, int(y.sum())  # doctest: +SKIP
    ((683, 9), 239)
    """
    entries = adbench_manifest(manifest)
    path_in_repository = _find_adbench_entry(name, entries)
    sha256, size = entries[path_in_repository]
    parts = path_in_repository.split("/")
    target = get_data_home(data_home).joinpath("adbench", *parts[-2:])
    if base_url is None:
        base_url = os.environ.get(ADBENCH_URL_ENV, ADBENCH_BASE_URL)
    url = f"{base_url.rstrip('/')}/{path_in_repository}"
    if not target.is_file():
        if not download_if_missing:
            raise OSError(
                f"ADBench dataset {name!r} is not in the cache ({target}) and "
                "download_if_missing=False."
            )
        _download(url, target, sha256, size)
    X, y = load_adbench(target)
    if return_X_y:
        return X, y
    return Bunch(data=X, target=y, filename=str(target), url=url, name=target.stem)


def resolve_adbench(name, data_dir=None, data_home=None, **fetch_params):
    """Path of an ADBench ``.npz`` file: found locally if there, else fetched into the cache.

    Looks for ``name`` as a path, then as ``{data_dir}/{name}`` and ``{data_dir}/{name}.npz``;
    otherwise calls :func:`fetch_adbench` (which downloads it once into ``data_home``). This is
    what ``skuad bench --datasets NAME`` uses.

    Parameters
    ----------
    name : str or path-like
        A path, a file name or stem in ``data_dir``, or an ADBench name (see
        :func:`fetch_adbench`).
    data_dir : str or path-like, default=None
        A folder of ADBench files to look in first.
    data_home : str or path-like, default=None
        The download cache; see :func:`get_data_home`.
    **fetch_params
        Further keyword arguments of :func:`fetch_adbench` (``download_if_missing``,
        ``base_url``, ``manifest``).

    Returns
    -------
    path : pathlib.Path
    """
    candidates = [Path(name)]
    if data_dir is not None:
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise ValueError(f"data_dir {data_dir}: not a directory.")
        candidates += [data_dir / name, data_dir / f"{name}.npz"]
    for candidate in candidates:
        if candidate.is_file():
            if candidate.suffix != ".npz":
                raise ValueError(
                    f"{name}: only ADBench .npz files holding arrays X and y can be read."
                )
            return candidate
    try:
        bunch = fetch_adbench(name, data_home=data_home, **fetch_params)
    except ValueError as exc:
        where = f" in {data_dir}" if data_dir is not None else ""
        raise ValueError(f"{name}: no such .npz file{where}, and {exc}") from exc
    return Path(bunch.filename)
