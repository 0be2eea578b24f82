"""Helpers of the cluster tests: launcher settings and SLURM commands."""

from __future__ import annotations

import subprocess
import sys
import time

import lightning as L

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


class SlowEpochs(L.Callback):
    """Makes every epoch last at least ``seconds``: a run whose length does not depend on
    how fast this machine trains (so that it reliably outlasts a SLURM time limit)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.started = time.monotonic()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        time.sleep(max(0.0, self.seconds - (time.monotonic() - self.started)))
