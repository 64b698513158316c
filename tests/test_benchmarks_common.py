"""benchmarks/_common.py: what every benchmark script shares (it is not part of the package)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "_common.py"


@pytest.fixture(scope="module")
def common():
    spec = importlib.util.spec_from_file_location("benchmarks_common", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peak_rss_sees_a_large_allocation(common):
    with common.PeakRSS() as memory:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        del block
    if np.isnan(memory.peak_mib):
        pytest.skip("/proc/self/status or clear_refs is not available on this platform")
    assert 60 < memory.peak_mib < 80  # the block's 64 MiB, however briefly it was held


def test_auroc_takes_normality_scores_and_anomaly_labels(common):
    y = np.array([0, 0, 0, 1])
    assert common.auroc(y, [0.9, 0.8, 0.7, 0.1]) == 1.0  # the anomaly scores lowest
    assert common.auroc(y, [0.1, 0.2, 0.3, 0.9]) == 0.0


def test_baselines_are_those_of_skuad_bench(common):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    X_test = np.vstack([rng.normal(size=(20, 3)), rng.normal(loc=8.0, size=(5, 3))])
    y_test = np.r_[np.zeros(20, dtype=int), np.ones(5, dtype=int)]
    assert common.BASELINES == ("IsolationForest", "LocalOutlierFactor", "KNN")
    for name in common.BASELINES:
        detector = common.baseline(name, seed=0).fit(X)
        assert common.auroc(y_test, detector.score_samples(X_test)) == 1.0, name


def test_data_dir_rule_and_refusal(common, tmp_path, monkeypatch):
    assert common.data_dir(tmp_path) == tmp_path
    monkeypatch.setenv("SKUAD_DATA_DIR", str(tmp_path))
    assert common.data_dir() == tmp_path
    with pytest.raises(SystemExit, match="pass --data-dir or set \\$SKUAD_DATA_DIR"):
        common.data_dir(tmp_path / "missing")


def test_classical_sets_reads_the_classical_folder(common, tmp_path):
    (tmp_path / "classical").mkdir()
    for number in (10, 2):
        X = np.arange(12.0).reshape(6, 2) * number
        np.savez(tmp_path / "classical" / f"{number}_set.npz", X=X, y=np.r_[0, 0, 0, 0, 1, 1])
    sets = list(common.classical_sets(tmp_path))
    assert [name for name, _, _ in sets] == ["2_set", "10_set"]  # ADBench's numeric order
    assert [name for name, *_ in common.classical_sets(tmp_path, exclude={"2_set"})] == ["10_set"]
    np.testing.assert_array_equal(sets[1][1][:, 1], np.arange(1, 12, 2) * 10.0)


def test_tables(common):
    assert common.markdown_table(["a", "b"], [[1, "x"]]) == "| a | b |\n|---|---|\n| 1 | x |"
    assert common.rst_table(["a", "bb"], [["ccc", 1]]).splitlines() == [
        "===  ==",
        "a    bb",
        "===  ==",
        "ccc  1 ",
        "===  ==",
    ]
