"""Peak memory of scoring data far larger than a scoring batch: Dask workers and a memory map.

A Deep SVDD fitted on 10,000 rows scores ``--rows`` x 1, 10 and 100 rows of ``--features``
float32 features, three ways:

* ``dask``: a Dask array generated block by block on the workers of a ``LocalCluster`` (two
  worker processes, one thread each; a fresh cluster per size) that import skuad as they
  start (``preload``, as ``dask worker --preload skuad.parallel``), scored with
  :func:`skuad.parallel.score_samples` and written to disk with ``dask.array.to_npy_stack``,
  so that no process ever holds all rows or all scores;
* ``dask-no-preload``: the same, with workers that import skuad and torch only when their
  first task unpickles the detector;
* ``memmap``: a ``.npy`` file opened with ``np.load(mmap_mode="r")`` and passed to
  ``detector.score_samples`` in a fresh process (``score_samples`` scales and scores one batch
  of at most 1,024 rows at a time; the returned scores, 8 bytes a row, are in memory).

Each process measures itself (Linux only): *peak RSS* is the kernel's high-water mark of its
resident memory (``VmHWM``), which counts everything resident, including pages of the
memory-mapped file that were read (page cache, which the kernel can drop at any time); *peak
private* counts anonymous memory only (resident minus file-backed and shared pages, sampled
every 2 ms from ``/proc/self/statm``): what the process itself allocated. For Dask the largest
worker's figures are shown and *CPU s* is summed over the workers. The first block's scores
are checked against in-memory scoring of the same rows. One torch thread per process::

    nice python benchmarks/bench_out_of_core.py --out docs/benchmarks/scaling/out_of_core.csv
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import _common  # noqa: E402
import joblib  # noqa: E402
import numpy as np  # noqa: E402

MIB = 2**20
# CSV columns (the keys of each result) and the headings written for them.
COLUMNS = {
    "source": "data",
    "multiple": "rows multiple",
    "rows": "rows",
    "input_mib": "input MiB",
    "peak_rss_mib": "peak RSS MiB",
    "peak_private_mib": "peak private MiB",
    "output_mib": "scores held MiB",
    "cpu_s": "CPU s",
}
SOURCES = {
    "dask": "Dask array, workers preload skuad",
    "dask-no-preload": "Dask array, workers import skuad in a task",
    "memmap": "memory-mapped .npy",
}


class MemorySampler:
    """Peak private (anonymous) memory of this process, sampled in a thread, and its peak
    resident memory, the kernel's high-water mark (which also catches a peak between two
    samples; ru_maxrss would not do: Linux carries it over from the parent)."""

    def __init__(self, interval=0.002):
        self.interval = interval
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak_private = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        fields = Path("/proc/self/statm").read_text().split()
        resident, shared = int(fields[1]) * self.page, int(fields[2]) * self.page
        self.peak_private = max(self.peak_private, resident - shared)

    def _run(self):
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self):
        self.sample()
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.sample()
        status = Path("/proc/self/status").read_text()
        high_water = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024
        return {"peak_rss_mib": high_water / MIB, "peak_private_mib": self.peak_private / MIB}


# ------------------------------------------------------------------ Dask workers
def _start_worker_sampler(dask_worker):
    import torch

    torch.set_num_threads(1)
    dask_worker._skuad_sampler = MemorySampler().start()
    dask_worker._skuad_cpu = time.process_time()


def _stop_worker_sampler(dask_worker):
    figures = dask_worker._skuad_sampler.stop()
    figures["cpu_s"] = time.process_time() - dask_worker._skuad_cpu
    return figures


def score_on_dask(detector, n_rows, n_features, chunk_rows, workdir, preload):
    import dask.array as da
    from distributed import Client, LocalCluster

    from skuad.parallel import score_samples

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # The figure to watch is the workers' own memory; no limit spills or pauses them.
            memory_limit=0,
            # Workers that import skuad (and torch) as they start, as ``dask worker --preload
            # skuad.parallel`` does, rather than while running their first task.
            preload=["skuad.parallel"] if preload else [],
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(_start_worker_sampler)
        rows = da.random.RandomState(0).standard_normal(
            (n_rows, n_features), chunks=(chunk_rows, n_features)
        )
        rows = rows.astype(np.float32)
        out = tempfile.mkdtemp(dir=workdir)
        da.to_npy_stack(out, score_samples(detector, rows))
        figures = client.run(_stop_worker_sampler).values()
        first_block = rows[:chunk_rows].compute()
    stored = np.load(Path(out) / "0.npy")
    np.testing.assert_array_equal(stored, detector.score_samples(first_block))
    return {
        "peak_rss_mib": max(f["peak_rss_mib"] for f in figures),
        "peak_private_mib": max(f["peak_private_mib"] for f in figures),
        "cpu_s": sum(f["cpu_s"] for f in figures),
        "output_mib": 0.0,  # written to disk by the workers, never gathered
    }


# ------------------------------------------------------------------ memory map
def write_npy(path, n_rows, n_features, chunk_rows):
    """A float32 .npy file of standard-normal rows, written a chunk at a time."""
    rng = np.random.RandomState(0)
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, n_features))
    for start in range(0, n_rows, chunk_rows):
        stop = min(start + chunk_rows, n_rows)
        array[start:stop] = rng.standard_normal((stop - start, n_features))
    array.flush()
    del array


def score_memmap_in_this_process(detector_path, npy_path):
    """Run in a fresh process: score the memory-mapped file, print the figures as JSON."""
    import torch

    torch.set_num_threads(1)
    detector = joblib.load(detector_path)
    X = np.load(npy_path, mmap_mode="r")
    detector.score_samples(np.asarray(X[:2048]))  # warm-up: lazy imports, allocator pools
    sampler = MemorySampler().start()
    start = time.process_time()
    scores = detector.score_samples(X)
    cpu = time.process_time() - start
    figures = sampler.stop()
    np.testing.assert_array_equal(scores[:1000], detector.score_samples(np.asarray(X[:1000])))
    figures.update(cpu_s=cpu, output_mib=scores.nbytes / MIB)
    print(json.dumps(figures))


def score_memmap(detector_path, npy_path):
    completed = subprocess.run(
        [sys.executable, __file__, "_score-memmap", str(detector_path), str(npy_path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ driver
def fit_detector(n_features):
    import torch

    from skuad import DeepSVDD

    torch.set_num_threads(1)
    X = np.random.RandomState(1).standard_normal((10_000, n_features)).astype(np.float32)
    return DeepSVDD(epochs=2, pretrain_epochs=1, random_state=0, device="cpu").fit(X)


def main(argv=None):
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "_score-memmap":
        return score_memmap_in_this_process(*sys.argv[2:4])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows at 1x")
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--chunk-rows", type=int, default=50_000, help="rows per Dask block")
    parser.add_argument("--multiples", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument(
        "--sources",
        nargs="+",
        choices=list(SOURCES),
        default=["dask", "dask-no-preload", "memmap"],
    )
    parser.add_argument("--out", type=Path, help="CSV file to write")
    args = parser.parse_args(argv)

    detector = fit_detector(args.features)
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        detector_path = Path(workdir) / "detector.joblib"
        joblib.dump(detector, detector_path)
        for multiple in args.multiples:
            n_rows = args.rows * multiple
            input_mib = n_rows * args.features * 4 / MIB
            for source in args.sources:
                if source.startswith("dask"):
                    preload = source == "dask"
                    figures = score_on_dask(
                        detector, n_rows, args.features, args.chunk_rows, workdir, preload
                    )
                else:
                    npy_path = Path(workdir) / "rows.npy"
                    write_npy(npy_path, n_rows, args.features, args.chunk_rows)
                    figures = score_memmap(detector_path, npy_path)
                    npy_path.unlink()
                row = {
                    "source": source,
                    "multiple": multiple,
                    "rows": n_rows,
                    "input_mib": input_mib,
                    **figures,
                }
                results.append(row)
                print(
                    "  ".join(
                        f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in row.items()
                    ),
                    flush=True,
                )
    _common.write_csv(
        [{COLUMNS[key]: _cell(key, row[key]) for key in COLUMNS} for row in results], args.out
    )


def _cell(key, value):
    if key == "source":
        return SOURCES[value]
    return f"{value:.1f}" if isinstance(value, float) else value


if __name__ == "__main__":
    main()
