"""Several skuad fits sharing the cores: torch's thread settings against one thread per fit.

Two fits of ``CLADDetector()`` (its defaults) on 300 two-dimensional points run at the same
time, as two processes or as ``joblib.Parallel(n_jobs=2)``, under each setting:

* ``torch imported first``: torch loaded before skuad, so OpenMP keeps its own default wait
  (GNU OpenMP: threads spin on their core for a while between parallel regions, then sleep);
* ``skuad default``: skuad imported first, which sets ``OMP_WAIT_POLICY=PASSIVE`` unless the
  user set it (threads sleep between parallel regions);
* ``one thread``: ``OMP_NUM_THREADS=1``, one torch thread per process.

Every figure is the mean over the two fits of their own wall and CPU seconds, from one run::

    python benchmarks/bench_threads.py --output docs/benchmarks/threads.csv

The machine's other load changes the wall seconds; compare the rows of one run.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import _common

REPOSITORY = Path(__file__).resolve().parent.parent

FIT = """
import json, os, time
import numpy as np
if os.environ.get("BENCH_TORCH_FIRST"):
    import torch
import skuad, torch
X = np.random.RandomState(0).normal(size=(300, 2))
wall, cpu = time.perf_counter(), time.process_time()
skuad.CLADDetector(random_state=0, device="cpu").fit(X)
print(json.dumps({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                  "threads": torch.get_num_threads()}))
"""

JOBLIB = """
import json, sys, time
import numpy as np
from joblib import Parallel, delayed

def fit(seed):
    import os
    if os.environ.get("BENCH_TORCH_FIRST"):
        import torch
    import skuad, torch
    X = np.random.RandomState(seed).normal(size=(300, 2))
    wall, cpu = time.perf_counter(), time.process_time()
    skuad.CLADDetector(random_state=0, device="cpu").fit(X)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
            "threads": torch.get_num_threads()}

print(json.dumps(Parallel(n_jobs=2, backend=sys.argv[1])(delayed(fit)(s) for s in (0, 1))))
"""

SETTINGS = {
    "torch imported first": {"BENCH_TORCH_FIRST": "1"},
    "skuad default": {},
    "one thread": {"OMP_NUM_THREADS": "1"},
}


def environment(setting):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    return {**env, "PYTHONPATH": str(REPOSITORY), **SETTINGS[setting]}


def two_processes(setting):
    env = environment(setting)
    children = [
        subprocess.Popen([sys.executable, "-c", FIT], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    return [json.loads(child.communicate()[0]) for child in children]


def joblib_workers(setting, backend):
    completed = subprocess.run(
        [sys.executable, "-c", JOBLIB, backend],
        env=environment(setting),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", help="CSV file to write")
    args = parser.parse_args(argv)
    rows = []
    runs = [("two processes", two_processes)]
    runs += [
        (f"joblib n_jobs=2 ({backend})", lambda s, b=backend: joblib_workers(s, b))
        for backend in ("loky", "threading")
    ]
    for how, run in runs:
        for setting in SETTINGS:
            fits = run(setting)
            row = {
                "how": how,
                "setting": setting,
                "torch_threads_per_fit": fits[0]["threads"],
                "wall_s_per_fit": round(sum(f["wall_s"] for f in fits) / len(fits), 1),
                "cpu_s_per_fit": round(sum(f["cpu_s"] for f in fits) / len(fits), 1),
            }
            rows.append(row)
            print(row, flush=True)
    _common.write_csv(rows, args.output)


if __name__ == "__main__":
    main()
