"""The ``skuad`` command line (demo, bench) and the benchmark machinery behind it."""

import csv
import inspect
import io
import subprocess
import sys

import numpy as np
import pytest

import skuad
from skuad import benchmark, cli
from skuad.base import BaseDeepDetector
from skuad.cli import demo, main
from skuad.datasets import one_class_split


def _anomaly_table(seed, n_normal=150, n_anomalies=15, n_features=4):
    """Normal rows near the origin, anomalies far away: any sane detector separates them."""
    rng = np.random.RandomState(seed)
    X = np.vstack(
        [
            rng.normal(size=(n_normal, n_features)),
            rng.normal(loc=6.0, size=(n_anomalies, n_features)),
        ]
    )
    y = np.r_[np.zeros(n_normal, dtype=int), np.ones(n_anomalies, dtype=int)]
    return X, y


@pytest.fixture
def adbench_dir(tmp_path):
    data_dir = tmp_path / "adbench"
    data_dir.mkdir()
    for number, name in [(1, "easy"), (2, "wider")]:
        X, y = _anomaly_table(number, n_features=3 + number)
        np.savez(data_dir / f"{number}_{name}.npz", X=X, y=y)
    return data_dir


# ---------------------------------------------------------------------------- demo
def test_demo_runs_every_detector_and_saves_a_figure(tmp_path):
    figure = tmp_path / "roc.png"
    out = io.StringIO()
    results = demo(epochs=1, figure=figure, device="cpu", out=out)
    out = out.getvalue()
    expected = list(benchmark.skuad_detectors()) + ["IsolationForest"]
    for task in ("breast_cancer", "digits"):
        task_results = [r for r in results if r.dataset.startswith(task)]
        assert [r.detector for r in task_results] == expected
        task_lines = [line for line in out.splitlines() if line.startswith(task)]
        assert len(task_lines) == len(expected), out
        for line, result in zip(task_lines, task_results, strict=True):
            assert f" {result.detector} " in line, out
            if not result.error:
                assert f"{result.auroc:6.3f} {result.average_precision:6.3f}" in line
    # Sanity of the demo's split and sign conventions: IsolationForest is strong on both tasks.
    forest = [r for r in results if r.detector == "IsolationForest"]
    assert all(not r.error and r.auroc > 0.9 for r in forest)
    assert f"saved to {figure.resolve()}" in out
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_command_passes_its_options(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "demo", lambda **kwargs: calls.append(kwargs))
    assert main(["demo", "--epochs", "2", "--seed", "5", "--figure", "", "--device", "cpu"]) == 0
    assert main(["demo", "--epochs", "0"]) == 0
    assert main(["demo"]) == 0
    assert calls == [
        {"seed": 5, "epochs": 2, "figure": "", "device": "cpu"},
        {"seed": 0, "epochs": None, "figure": "skuad-demo.png", "device": "auto"},
        {"seed": 0, "epochs": cli.DEMO_EPOCHS, "figure": "skuad-demo.png", "device": "auto"},
    ]


def test_demo_without_matplotlib_says_how_to_get_the_figure(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes "import matplotlib" fail
    assert cli._save_roc_figure([], tmp_path / "roc.png") is None
    assert not (tmp_path / "roc.png").exists()


# ---------------------------------------------------------------------------- bench
def _bench_args(data_dir, out_dir, options=""):
    """``skuad bench`` on ``data_dir`` with ``options`` as typed on a command line.

    It reads every file there unless the options name --datasets.
    """
    extra = options.split()
    selection = [] if "--datasets" in extra else ["--all"]
    return [
        "bench",
        "--data-dir",
        str(data_dir),
        "--output-dir",
        str(out_dir),
        "--no-progress",
        *selection,
        *extra,
    ]


def test_bench_writes_csv_and_markdown(adbench_dir, tmp_path, capsys):
    out_dir = tmp_path / "results"
    args = _bench_args(
        adbench_dir,
        out_dir,
        "--detectors DeepSVDD IsolationForest LocalOutlierFactor KNN"
        " --param DeepSVDD.epochs=1 --param DeepSVDD.pretrain_epochs=1"
        " --seeds 0 1 --protocol one-class unsupervised --device cpu",
    )
    assert main(args) == 0
    with open(out_dir / "bench.csv") as handle:
        rows = list(csv.DictReader(handle))
    # 2 datasets x 2 protocols x 2 seeds x 4 detectors, natural file order.
    detectors = ["DeepSVDD", "IsolationForest", "LocalOutlierFactor", "KNN"]
    assert len(rows) == 32
    assert [r["dataset"] for r in rows[::16]] == ["1_easy", "2_wider"]
    assert {r["protocol"] for r in rows} == {"one-class", "unsupervised"}
    assert {r["detector"] for r in rows} == set(detectors)
    for row in rows:
        assert row["error"] == ""
        assert float(row["fit_seconds"]) >= 0 and float(row["fit_cpu_seconds"]) >= 0
        assert float(row["score_rows_per_second"]) > 0
    one_class = [r for r in rows if r["protocol"] == "one-class"]
    unsupervised = [r for r in rows if r["protocol"] == "unsupervised"]
    # One-class fits on the normal training rows only; unsupervised keeps the anomalies.
    assert all(
        int(a["n_train"]) < int(b["n_train"]) for a, b in zip(one_class, unsupervised, strict=True)
    )
    for name in ("IsolationForest", "KNN"):
        assert all(float(r["auroc"]) > 0.95 for r in rows if r["detector"] == name)
    assert "Running 32 fits: 2 datasets x 2 protocol(s) x 2 seed(s) x 4 detectors" in (
        capsys.readouterr().out
    )

    markdown = (out_dir / "bench.md").read_text()
    assert markdown.startswith("Command: `skuad bench --data-dir")
    assert "DeepSVDD.epochs=1" in markdown
    assert "| dataset | DeepSVDD | IsolationForest | LocalOutlierFactor | KNN |" in markdown
    assert "AUROC % (unsupervised protocol)" in markdown
    assert "| AUROC % | AP % | fit s | fit CPU s | score rows/s |" in markdown

    # The summary CSVs hold numbers: mean AUROC % over seeds, and every metric with its spread.
    def expected(dataset, detector, key="auroc"):
        values = [
            100 * float(r[key])
            for r in one_class
            if r["dataset"] == dataset and r["detector"] == detector
        ]
        return np.mean(values), np.std(values)

    with open(out_dir / "bench_auroc_one-class.csv") as handle:
        auroc = list(csv.reader(handle))
    assert auroc[0] == ["dataset", *detectors]
    assert [row[0] for row in auroc[1:]] == ["1_easy", "2_wider", "mean"]
    cells = np.array([[float(cell) for cell in row[1:]] for row in auroc[1:]])
    for i, dataset in enumerate(("1_easy", "2_wider")):
        for j, detector in enumerate(detectors):
            np.testing.assert_allclose(cells[i, j], expected(dataset, detector)[0], atol=0.051)
    np.testing.assert_allclose(cells[2], cells[:2].mean(axis=0), atol=0.101)  # rounded to 0.1
    with open(out_dir / "bench_metrics.csv") as handle:
        metrics = list(csv.DictReader(handle))
    assert len(metrics) == 2 * 2 * 4
    knn = next(
        row
        for row in metrics
        if (row["dataset"], row["protocol"], row["detector"]) == ("2_wider", "one-class", "KNN")
    )
    mean, std = expected("2_wider", "KNN", "average_precision")
    np.testing.assert_allclose(float(knn["average_precision_pct"]), mean, atol=0.0051)
    np.testing.assert_allclose(float(knn["average_precision_pct_std"]), std, atol=0.0051)
    assert knn["score_rows_per_second"].isdigit()
    assert (knn["runs"], knn["failed"]) == ("2", "0")


def test_bench_datasets_option_selects_files(adbench_dir, tmp_path):
    out_dir = tmp_path / "results"
    args = _bench_args(adbench_dir, out_dir, "--datasets 2_wider --detectors IsolationForest")
    assert main([*args, "--seeds", "3"]) == 0
    with open(out_dir / "bench.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["dataset"], r["seed"], r["n_features"]) for r in rows] == [("2_wider", "3", "5")]


def test_bench_records_a_failing_detector_and_goes_on(adbench_dir, tmp_path):
    out_dir = tmp_path / "results"
    # epochs=0 is invalid: scikit-learn's parameter validation rejects it in fit.
    args = _bench_args(
        adbench_dir,
        out_dir,
        "--detectors DeepSVDD IsolationForest --param DeepSVDD.epochs=0 --seeds 0",
    )
    assert main(args) == 0
    with open(out_dir / "bench.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert all("epochs" in r["error"] for r in rows if r["detector"] == "DeepSVDD")
    assert all(r["error"] == "" for r in rows if r["detector"] == "IsolationForest")
    assert "Failed runs:" in (out_dir / "bench.md").read_text()


@pytest.mark.parametrize(
    "make_bad, message",
    [
        (lambda d: np.savez(d / "3_bad.npz", X=np.ones((5, 2))), "must hold arrays named X and y"),
        (lambda d: (d / "3_bad.npz").write_text("not a zip"), "not a readable .npz"),
        (lambda d: np.savez(d / "3_bad.npz", X=np.ones(5), y=np.zeros(5)), "2-D numeric"),
        (
            lambda d: np.savez(d / "3_bad.npz", X=np.ones((5, 2)), y=np.full(5, 2)),
            "0/1 label",
        ),
    ],
)
def test_bench_refuses_a_bad_npz_before_running(adbench_dir, tmp_path, capsys, make_bad, message):
    make_bad(adbench_dir)
    out_dir = tmp_path / "results"
    assert main(_bench_args(adbench_dir, out_dir, "--detectors IsolationForest")) == 2
    err = capsys.readouterr().err
    assert "3_bad.npz" in err and message in err
    assert not out_dir.exists()  # nothing ran


@pytest.mark.parametrize(
    "extra, message",
    [
        ("--datasets table.csv", "only ADBench .npz files"),
        ("--datasets 9_missing", "no such .npz file"),
        ("--detectors NoSuchDetector", "unknown detector"),
        ("--param epochs=3", "expected DETECTOR.PARAM=VALUE"),
        ("--detectors IsolationForest --param DeepSVDD.epochs=3", "not among"),
        ("--detectors IsolationForest --param IsolationForest.trees=3", "trees"),
    ],
)
def test_bench_refuses_bad_arguments(adbench_dir, tmp_path, capsys, extra, message):
    (adbench_dir / "table.csv").write_text("a,b\n1,2\n")
    assert main(_bench_args(adbench_dir, tmp_path / "results", extra)) == 2
    assert message in capsys.readouterr().err


def test_bench_refuses_a_folder_without_npz(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(_bench_args(tmp_path, tmp_path / "results")) == 2
    assert "no ADBench .npz files" in capsys.readouterr().err


def test_bench_needs_datasets_or_all(adbench_dir, tmp_path, capsys):
    out_dir = tmp_path / "results"
    args = ["bench", "--data-dir", str(adbench_dir), "--output-dir", str(out_dir)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--datasets" in err and "--all" in err
    assert not out_dir.exists()  # nothing ran
    with pytest.raises(SystemExit):  # argparse: the two are mutually exclusive
        main([*args, "--all", "--datasets", "1_easy"])


def test_bench_finds_the_classical_folder_and_the_data_dir_rule(adbench_dir, tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    adbench_dir.rename(root / "classical")
    assert [p.stem for p in benchmark.find_datasets(root)] == ["1_easy", "2_wider"]
    monkeypatch.setenv(benchmark.DATA_DIR_ENV, str(root))
    assert benchmark.adbench_dir() == root
    assert benchmark.adbench_dir(tmp_path) == tmp_path  # an explicit folder wins
    out_dir = tmp_path / "results"
    args = ["bench", "--datasets", "2_wider", "--detectors", "KNN", "--seeds", "0"]
    assert main([*args, "--output-dir", str(out_dir), "--no-progress"]) == 0
    assert (out_dir / "bench.csv").read_text().count("2_wider") == 1


@pytest.mark.parametrize("module", ["skuad", "skuad.cli"])
def test_command_line_entry_point_exit_status(tmp_path, module):
    np.savez(tmp_path / "1_bad.npz", X=np.ones((5, 2)))
    completed = subprocess.run(
        [sys.executable, "-m", module, "bench", "--data-dir", str(tmp_path), "--all"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2
    assert "must hold arrays named X and y" in completed.stderr
    assert "Traceback" not in completed.stderr


def _run_skuad(*arguments, code=""):
    """``python -c``: run the skuad command with ``arguments``, then ``code``."""
    program = (
        "import sys\n"
        "from skuad.cli import main\n"
        "try:\n"
        f"    main({list(arguments)!r})\n"
        "except SystemExit:\n"
        "    pass\n" + code
    )
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120
    )


HEAVY = "print(sorted(m for m in ('torch', 'skorch', 'sklearn') if m in sys.modules))"


@pytest.mark.parametrize(
    "arguments",
    [["--help"], ["bench", "--help"], ["demo", "--help"], ["--version"], ["bench", "--bad"]],
)
def test_help_and_argument_errors_import_no_heavy_library(arguments):
    completed = _run_skuad(*arguments, code=HEAVY)
    assert completed.stdout.strip().splitlines()[-1] == "[]", completed.stdout


def test_version_and_python_m_skuad():
    completed = subprocess.run(
        [sys.executable, "-m", "skuad", "--version"], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0
    assert completed.stdout.strip() == f"skuad {skuad.__version__}"


@pytest.mark.parametrize("command", ["demo", "bench"])
def test_help_is_plain_and_shows_every_default(command):
    text = _run_skuad(command, "--help").stdout
    assert "``" not in text and ":func:" not in text
    assert "(default: auto)" in " ".join(text.split())  # --device, the same in both
    options = [line.split()[0] for line in text.splitlines() if line.startswith("  --")]
    assert options, text
    body = " ".join(text.split())
    # Each option's help ends with its default, in argparse's words or the option's own.
    assert body.count("(default:") >= len(options), text


# ---------------------------------------------------------------------------- benchmark module
def test_skuad_detectors_are_discovered_from_all():
    expected = {
        name
        for name in skuad.__all__
        if inspect.isclass(getattr(skuad, name))
        and issubclass(getattr(skuad, name), BaseDeepDetector)
    }
    assert set(benchmark.skuad_detectors()) == expected
    assert "DeepSVDD" in expected
    assert set(expected) <= set(benchmark.available_detectors())


@pytest.mark.parametrize(
    "text, expected",
    [
        ("DeepSVDD.epochs=20", ("DeepSVDD", "epochs", 20)),
        ("DeepSVDD.lr=1e-3", ("DeepSVDD", "lr", 1e-3)),
        ("DeepSVDD.hidden_layer_sizes=(64, 32)", ("DeepSVDD", "hidden_layer_sizes", (64, 32))),
        ("DeepSVDD.optimizer=adamw", ("DeepSVDD", "optimizer", "adamw")),
        ("IsolationForest.max_features = 0.5", ("IsolationForest", "max_features", 0.5)),
    ],
)
def test_parse_param(text, expected):
    assert benchmark.parse_param(text) == expected


@pytest.mark.parametrize("protocol", benchmark.PROTOCOLS)
def test_split_follows_the_protocol(protocol):
    X, y = _anomaly_table(0, n_normal=200, n_anomalies=20)
    X_fit, X_test, y_test = benchmark.split(X, y, protocol, seed=0)
    assert len(X_test) == len(y_test) == 66  # 30 % of 220
    assert y_test.sum() == 6  # stratified: 30 % of the 20 anomalies
    n_fit_expected = 140 if protocol == "one-class" else 154
    assert len(X_fit) == n_fit_expected
    np.testing.assert_allclose(X_fit.min(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(X_fit.max(axis=0), 1.0, atol=1e-12)


def test_subsample_keeps_class_balance():
    X, y = _anomaly_table(0, n_normal=900, n_anomalies=100)
    X_small, y_small = benchmark.subsample(X, y, 100, seed=0)
    assert len(X_small) == 100 and y_small.sum() == 10
    assert benchmark.subsample(X, y, None)[0] is X


def test_pyod_baselines_use_the_scikit_learn_sign():
    pytest.importorskip("pyod")
    X, y = _anomaly_table(0)
    X_fit, X_test, y_test = benchmark.split(X, y, "one-class", seed=0)
    detector = benchmark.make_detector("PyODAutoEncoder", {"epoch_num": 2}, seed=0, device="cpu")
    result = benchmark.evaluate(detector, X_fit, X_test, y_test)
    assert not result.error and result.auroc > 0.9


def test_one_class_split_is_the_benchmark_protocol():
    X, y = _anomaly_table(3, n_normal=200, n_anomalies=20)
    X_train, X_test, y_test = one_class_split(X, y, random_state=4)
    X_fit, X_test_bench, y_test_bench = benchmark.split(X, y, "one-class", seed=4, scale=False)
    np.testing.assert_array_equal(X_train, X_fit)
    np.testing.assert_array_equal(X_test, X_test_bench)
    np.testing.assert_array_equal(y_test, y_test_bench)
    # Training rows are normal and appear nowhere in the test part.
    assert not set(map(tuple, X_train)) & set(map(tuple, X_test))
    assert len(X_train) == 140 and len(X_test) == 66 and y_test.sum() == 6


def test_knn_scores_minus_the_kth_neighbour_distance():
    rng = np.random.RandomState(0)
    X_train, X_test = rng.normal(size=(40, 3)), rng.normal(size=(7, 3))
    scores = benchmark.make_detector("KNN").fit(X_train).score_samples(X_test)
    distances = np.sort(np.linalg.norm(X_test[:, None] - X_train[None], axis=2), axis=1)
    np.testing.assert_allclose(scores, -distances[:, 4])  # the 5th nearest (PyOD's default)
    np.testing.assert_allclose(
        benchmark.KNNDistance(n_neighbors=1).fit(X_train).score_samples(X_test), -distances[:, 0]
    )


def test_knn_matches_pyod():
    pytest.importorskip("pyod")
    from pyod.models.knn import KNN

    rng = np.random.RandomState(1)
    X_train, X_test = rng.normal(size=(60, 4)), rng.normal(size=(20, 4))
    ours = benchmark.KNNDistance().fit(X_train).score_samples(X_test)
    np.testing.assert_allclose(ours, -KNN().fit(X_train).decision_function(X_test))


def test_knn_refuses_too_few_rows_and_unfitted_use():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(ValueError, match="n_neighbors=5 needs .* n_samples = 3"):
        benchmark.KNNDistance().fit(np.ones((3, 2)))
    with pytest.raises(NotFittedError):
        benchmark.KNNDistance().score_samples(np.ones((3, 2)))


def test_cap_epochs_lowers_every_epoch_parameter_only():
    detector = skuad.DeepSVDD(epochs=50, pretrain_epochs=2, warm_up_epochs=10, lr=0.5)
    benchmark.cap_epochs(detector, 3)
    params = detector.get_params()
    assert (params["epochs"], params["pretrain_epochs"], params["warm_up_epochs"]) == (3, 2, 3)
    assert params["lr"] == 0.5 and params["batch_size"] == 128
