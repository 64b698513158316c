"""The code on docs/pyod_migration.rst runs, and its claims about PyOD's parameters hold."""

import inspect
import re
import textwrap
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "pyod_migration.rst"


def _code_blocks(text):
    """The bodies of the page's ``.. code-block:: python`` directives, dedented."""
    blocks = []
    for match in re.finditer(r"^\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", text, re.M):
        blocks.append(textwrap.dedent(match.group(1)))
    return blocks


def _run(blocks):
    namespace = {}
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), namespace)  # noqa: S102
    return namespace


def test_the_skuad_code_on_the_page_runs(capsys):
    blocks = [block for block in _code_blocks(PAGE.read_text()) if "from pyod" not in block]
    assert len(blocks) >= 2
    namespace = _run(blocks)
    # contamination carried over: PyOD's 10 % of the training rows are flagged
    assert namespace["det"].contamination == namespace["ae"].contamination == 0.1
    assert "AUROC" in capsys.readouterr().out


def test_the_pyod_code_on_the_page_runs_and_agrees_with_skuad():
    pytest.importorskip("pyod")
    namespace = _run(_code_blocks(PAGE.read_text()))
    clf, det = namespace["clf"], namespace["det"]
    X_train, X_test = namespace["X_train"], namespace["X_test"]
    # The conventions the page maps, checked on the PyOD model it fitted.
    assert clf.contamination == det.contamination
    assert (clf.decision_scores_ > clf.threshold_).mean() == pytest.approx(
        (det.predict(X_train) == -1).mean(), abs=0.01
    )
    assert set(clf.predict(X_test)) <= {0, 1} and set(det.predict(X_test)) <= {-1, 1}


def test_the_parameter_map_names_every_pyod_parameter():
    pyod_deep_svdd = pytest.importorskip("pyod.models.deep_svdd")
    pyod_auto_encoder = pytest.importorskip("pyod.models.auto_encoder")
    text = PAGE.read_text()
    for cls in (pyod_deep_svdd.DeepSVDD, pyod_auto_encoder.AutoEncoder):
        for name in inspect.signature(cls).parameters:
            assert f"``{name}" in text, f"{cls.__name__}({name}=...) is not in the map"
    # the names the ported code failed on
    for name in ["hidden_neurons", "n_features", "learning_rate", "epoch_num", "dropout_rate",
                 "preprocessing", "validation_size", "batch_norm", "optimizer_params"]:  # fmt: skip
        assert f"``{name}" in text


def test_the_page_states_the_defaults_it_claims():
    from skuad import DeepSVDD, LAMPAutoencoderDetector

    text = PAGE.read_text()
    assert LAMPAutoencoderDetector().amplification == 0
    assert "default ``amplification=0`` is the plain autoencoder" in text
    assert type(LAMPAutoencoderDetector()._make_scaler()).__name__ == "MinMaxScaler"
    assert type(DeepSVDD()._make_scaler()).__name__ == "StandardScaler"
    assert "min-max scales to [0, 1]" in text
