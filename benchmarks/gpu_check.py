"""skuad on a CUDA device: CUDA tests, every detector on CUDA, a CUDA model scored on CPU, speed.

What it does, in one process (plus two subprocesses):

1. runs the tests that skip without CUDA (``pytest tests/test_base.py
   tests/test_persistence.py tests/test_features.py -k cuda``);
2. fits and scores every detector on the device, on a table (``--rows`` x 32 standard-normal
   features) and on 28x28 images (scikit-learn's 8x8 digits upscaled to 28x28 with noise,
   ``--images`` of them; convolutional networks through ``image_shape=(1, 28, 28)``, ResAD on
   the flattened pixels since it takes feature vectors only);
3. saves each fitted detector with ``joblib``, loads it in a fresh process that sees no GPU
   (``CUDA_VISIBLE_DEVICES=""``), scores the same rows there, and compares: the largest
   difference divided by the largest score magnitude must stay below ``CPU_TOLERANCE``
   (1e-3: cuDNN runs float32 convolutions in TF32 by default, which rounds to about 1e-3;
   fully connected networks agree far closer);
4. fits and scores the same detectors on the CPU (all cores torch sees) and reports rows per
   second, fit and score, on both devices. Times are wall-clock seconds, the device
   synchronised before each reading. On CUDA it also reports the most GPU memory that scoring
   allocated beyond the fitted model (``score_peak_device_mib``), which batching bounds.

Figures are printed and written to ``--out`` (``gpu_check.csv``, ``pytest.log``,
``summary.json``). The exit status is non-zero when a test fails or a CPU score is out of
tolerance.

On a CUDA machine, from the repository root (skorch is the one dependency an image with torch
and scikit-learn may lack; carry its wheel)::

    python benchmarks/gpu_check.py --out gpu_check

The same on the CPU, small, to show the script runs end to end (no device needed; the CUDA
tests skip)::

    python benchmarks/gpu_check.py --device cpu --rows 2000 --images 300 --out /tmp/gpu_check
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common
import joblib
import numpy as np
import torch
from sklearn.base import clone

REPO = _common.REPO_ROOT
CPU_TOLERANCE = 1e-3
FIELDS = [
    "detector",
    "data",
    "role",
    "device",
    "rows",
    "fit_s",
    "fit_rows_per_s",
    "score_s",
    "score_rows_per_s",
    "cpu_rescore_max_rel_diff",
    "score_peak_device_mib",
]


def make_table(n_rows, seed=0):
    return np.random.RandomState(seed).standard_normal((n_rows, 32)).astype(np.float32)


def make_images(n_images, seed=0):
    """Digits upscaled from 8x8 to 28x28 (bilinear), repeated with noise to ``n_images``."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits().images / 16.0
    upscaled = zoom(digits, (1, 28 / 8, 28 / 8), order=1).reshape(len(digits), -1)
    rng = np.random.RandomState(seed)
    rows = upscaled[rng.randint(len(upscaled), size=n_images)]
    rows = rows + rng.normal(scale=0.05, size=rows.shape)
    return np.clip(rows, 0, 1).astype(np.float32)


def detectors(data_kind, device, epochs):
    """Every skuad detector, configured for ``data_kind`` ('table' or 'images')."""
    from skuad import CLADDetector, DeepSVDD, LAMPAutoencoderDetector, ResADDetector

    image_shape = (1, 28, 28) if data_kind == "images" else None
    common = {"epochs": epochs, "random_state": 0, "device": device}
    return [
        DeepSVDD(pretrain_epochs=epochs, image_shape=image_shape, **common),
        LAMPAutoencoderDetector(image_shape=image_shape, **common),
        CLADDetector(
            n_clusters=5,
            pretrain_epochs=epochs,
            dec_epochs=epochs,
            image_shape=image_shape,
            **common,
        ),
        # ResAD takes feature vectors only: flattened pixels for the images.
        ResADDetector(**common),
    ]


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(device, function, *args):
    synchronize(device)
    start = time.perf_counter()
    result = function(*args)
    synchronize(device)
    return result, time.perf_counter() - start


def fit_and_score(detector, X, device):
    """Fit and score ``X``; also the peak GPU memory scoring added (MiB; None on the CPU)."""
    detector, fit_s = timed(device, detector.fit, X)
    on_cuda = torch.device(device).type == "cuda"
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    scores, score_s = timed(device, detector.score_samples, X)
    peak_mib = (torch.cuda.max_memory_allocated(device) - before) / 2**20 if on_cuda else None
    return detector, scores, fit_s, score_s, peak_mib


def run_cuda_tests(out_dir):
    """The tests that skip without CUDA; returns (return code, summary line)."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/test_base.py",
            "tests/test_persistence.py",
            "tests/test_features.py",
            "-k",
            "cuda",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=child_environment(),
    )
    log = completed.stdout + completed.stderr
    (out_dir / "pytest.log").write_text(log)
    summary = [line for line in log.splitlines() if re.search(r"\d+ (passed|skipped|failed)", line)]
    return completed.returncode, summary[-1] if summary else "no pytest summary"


def rescore_on_cpu(model_dir):
    """Load every saved model in a process that sees no GPU and score its rows there."""
    code = (
        "import sys, joblib, numpy as np, torch\n"
        "from pathlib import Path\n"
        "assert not torch.cuda.is_available()\n"
        "for path in sorted(Path(sys.argv[1]).glob('*.joblib')):\n"
        "    detector = joblib.load(path)\n"
        "    X = np.load(path.with_suffix('.npy'))\n"
        "    np.save(path.with_suffix('.cpu_scores.npy'), detector.score_samples(X))\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(model_dir)],
        check=True,
        cwd=REPO,
        env=child_environment(CUDA_VISIBLE_DEVICES=""),
    )


def child_environment(**overrides):
    """This process's environment, with this checkout first on PYTHONPATH."""
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **overrides}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="'cuda' (default) or 'cpu' (dry run)")
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the table")
    parser.add_argument("--images", type=int, default=5_000, help="number of 28x28 images")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of every training stage")
    parser.add_argument("--skip-tests", action="store_true", help="do not run the CUDA tests")
    parser.add_argument("--out", type=Path, default=Path("gpu_check"), help="output folder")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("CUDA is not available here; use --device cpu for a dry run.")
    args.out.mkdir(parents=True, exist_ok=True)
    environment = {
        "device": args.device,
        "device_name": torch.cuda.get_device_name(args.device)
        if args.device.startswith("cuda")
        else "cpu",
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
    }
    print(json.dumps(environment), flush=True)

    failures = []
    if args.skip_tests:
        tests = (None, "not run")
    else:
        tests = run_cuda_tests(args.out)
        print(f"CUDA tests: {tests[1]} (exit status {tests[0]})", flush=True)
        if tests[0] != 0:
            failures.append(f"CUDA tests: {tests[1]}")

    datasets = {"table": make_table(args.rows), "images": make_images(args.images)}
    # Untimed warm-up on both devices: lazy imports, CUDA context and kernel caches.
    for device in dict.fromkeys([args.device, "cpu"]):
        for detector in detectors("table", device, epochs=1):
            detector.fit(make_table(256, seed=1))
    rows = []
    with tempfile.TemporaryDirectory() as model_dir:
        model_dir = Path(model_dir)
        device_scores = {}
        for data_kind, X in datasets.items():
            for detector in detectors(data_kind, args.device, args.epochs):
                name = type(detector).__name__
                fitted, scores, fit_s, score_s, peak_mib = fit_and_score(detector, X, args.device)
                stem = f"{name}_{data_kind}"
                joblib.dump(fitted, model_dir / f"{stem}.joblib")
                np.save(model_dir / f"{stem}.npy", X)
                device_scores[stem] = scores
                rows.append(
                    {
                        "detector": name,
                        "data": data_kind,
                        "role": "device run",
                        "device": args.device,
                        "rows": len(X),
                        "fit_s": fit_s,
                        "score_s": score_s,
                        "score_peak_device_mib": peak_mib,
                    }
                )
                print(f"{stem} on {args.device}: fit {fit_s:.2f} s, score {score_s:.3f} s")
                cpu_detector = clone(detector).set_params(device="cpu")
                _, _, cpu_fit_s, cpu_score_s, _ = fit_and_score(cpu_detector, X, "cpu")
                rows.append(
                    {
                        "detector": name,
                        "data": data_kind,
                        "role": "CPU reference",
                        "device": "cpu",
                        "rows": len(X),
                        "fit_s": cpu_fit_s,
                        "score_s": cpu_score_s,
                    }
                )
                print(f"{stem} on cpu: fit {cpu_fit_s:.2f} s, score {cpu_score_s:.3f} s")
        rescore_on_cpu(model_dir)
        for row in rows:
            if row["role"] != "device run":
                continue
            stem = f"{row['detector']}_{row['data']}"
            on_device = device_scores[stem]
            on_cpu = np.load(model_dir / f"{stem}.cpu_scores.npy")
            scale = max(np.abs(on_cpu).max(), np.finfo(np.float64).tiny)
            row["cpu_rescore_max_rel_diff"] = float(np.abs(on_device - on_cpu).max() / scale)
            if not row["cpu_rescore_max_rel_diff"] <= CPU_TOLERANCE:
                failures.append(
                    f"{stem}: CPU scores differ by {row['cpu_rescore_max_rel_diff']:.2e} "
                    f"of the largest score (tolerance {CPU_TOLERANCE:g})"
                )

    for row in rows:
        row["fit_rows_per_s"] = row["rows"] / row["fit_s"]
        row["score_rows_per_s"] = row["rows"] / row["score_s"]

    def cell(value):
        return f"{value:.4g}" if isinstance(value, float) else value

    table = [{field: cell(row.get(field, "")) for field in FIELDS} for row in rows]
    _common.write_csv(table, args.out / "gpu_check.csv")
    summary = {
        "environment": environment,
        "epochs": args.epochs,
        "cuda_tests": tests[1],
        "cpu_tolerance": CPU_TOLERANCE,
        "failures": failures,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(
        f"{'detector':25s} {'data':7s} {'role':13s} {'fit rows/s':>12s} {'score rows/s':>13s} "
        f"{'CPU rescore diff':>16s} {'score peak GPU MiB':>18s}"
    )
    for row in rows:
        diff = row.get("cpu_rescore_max_rel_diff")
        peak = row.get("score_peak_device_mib")
        print(
            f"{row['detector']:25s} {row['data']:7s} {row['role']:13s} "
            f"{row['fit_rows_per_s']:12,.0f} {row['score_rows_per_s']:13,.0f} "
            f"{'' if diff is None else f'{diff:.2e}':>16s} "
            f"{'' if peak is None else f'{peak:.1f}':>18s}"
        )
    print("FAILED: " + "; ".join(failures) if failures else "All checks passed.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
