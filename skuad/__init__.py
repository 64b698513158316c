"""skuad: deep anomaly detectors that behave like scikit-learn estimators."""

import importlib
import os
import sys

# OpenMP threads that wait actively spin on a core between parallel regions. When other
# processes share the cores (several skuad processes, a test runner, a notebook beside a job)
# they spin against each other: a small network's fit then took 15-20x the CPU time and wall
# time of a one-thread fit. Passive waiting removes that (docs/performance.rst). OpenMP reads
# the setting once, when torch loads it, so it is set only if torch is not loaded yet, and
# never over the user's own choice.
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

# Public names and the module that defines each. They are imported on first use (PEP 562), so
# that `import skuad` -- and with it the `skuad` command's --help -- does not load torch.
_SOURCES = {
    "CLADDetector": "skuad.clad",
    "DeepSVDD": "skuad.deep_svdd",
    "LAMPAutoencoderDetector": "skuad.lamp",
    "ResADDetector": "skuad.resad",
    "SkuadVersionWarning": "skuad.base",
    "TrainingDivergedError": "skuad._training",
}

__all__ = [*_SOURCES, "__version__"]


def __getattr__(name):
    if name in _SOURCES:
        value = getattr(importlib.import_module(_SOURCES[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'skuad' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
