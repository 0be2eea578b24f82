"""Helpers of the cluster tests: launcher settings and SLURM commands."""

from __future__ import annotations

import subprocess
import sys

#: launcher settings for this machine's one CPU node
LAUNCHER = [
    "hydra/launcher=slurm",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=2",
]


def slurm(*args: str, env: dict[str, str]) -> str:
    """Output of a SLURM command (``squeue``, ``scancel`` ...) against the test cluster."""
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{' '.join(args)}: {result.stderr}"
    return result.stdout


def python(*args: str) -> list[str]:
    return [sys.executable, *args]
