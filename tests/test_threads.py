"""Importing skuad before torch makes OpenMP threads wait passively, unless the user chose."""

import os
import subprocess
import sys

import pytest

REPORT = "import os; {imports}; print(os.environ.get('OMP_WAIT_POLICY'))"


@pytest.mark.parametrize(
    "imports, preset, expected",
    [
        ("import skuad, torch", None, "PASSIVE"),
        ("import torch, skuad", None, "None"),  # too late: OpenMP has read its settings
        ("import skuad, torch", "ACTIVE", "ACTIVE"),  # the user's choice stands
    ],
)
def test_wait_policy_is_passive_only_when_skuad_comes_first_and_the_user_did_not_choose(
    imports, preset, expected
):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset is not None:
        env["OMP_WAIT_POLICY"] = preset
    completed = subprocess.run(
        [sys.executable, "-c", REPORT.format(imports=imports)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert completed.stdout.strip() == expected
