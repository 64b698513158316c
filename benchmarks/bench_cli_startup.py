"""Start-up time of the ``skuad`` command: ``skuad --help`` and an argument error.

Each command runs ``--repeats`` times in a fresh Python process; prints the best and the median
wall time (the best is the start-up cost on an unloaded machine, the median shows the load).
The command is run as ``python -m skuad`` with this checkout first on ``PYTHONPATH``, the same
code the ``skuad`` console script runs.

    python benchmarks/bench_cli_startup.py --repeats 10
"""

import os
import statistics
import subprocess
import sys
import time

import _common

COMMANDS = {
    "skuad --help": ["--help"],
    "skuad bench --help": ["bench", "--help"],
    "skuad bench (argument error)": ["bench", "--no-such-option"],
    "skuad --version": ["--version"],
}


def wall_seconds(arguments):
    """Wall time of one run of ``python -m skuad ARGUMENTS`` in a fresh process."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(_common.REPO_ROOT), *filter(None, [environment.get("PYTHONPATH")])]
    )
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "skuad", *arguments],
        env=environment,
        capture_output=True,
        check=False,
    )
    return time.perf_counter() - start


def main(argv=None):
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="runs per command")
    args = parser.parse_args(argv)
    rows = []
    for name, arguments in COMMANDS.items():
        seconds = [wall_seconds(arguments) for _ in range(args.repeats)]
        rows.append([name, f"{min(seconds):.3f}", f"{statistics.median(seconds):.3f}"])
    print(f"Command: `{_common.command_line()}`\n")
    print(_common.markdown_table(["command", "best wall s", "median wall s"], rows))


if __name__ == "__main__":
    main()
