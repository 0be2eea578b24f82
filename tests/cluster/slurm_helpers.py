"""Helpers of the cluster tests: launcher settings and SLURM commands."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

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


#: CPU flags of native bf16, whose presence once chose a run's precision (and its hash)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def as_other_cpu(command: list[str], folder: Path) -> list[str]:
    """``command`` run as on a host whose CPU differs from this one in its bf16 flags: in a
    private mount namespace whose ``/proc/cpuinfo`` has them removed (this CPU has them) or
    added (it has not). Needs root, as the cluster tests do."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    has_bf16 = any(flag in line.split() for line in lines if line.startswith("flags")
                   for flag in BF16_FLAGS)  # fmt: skip
    changed = []
    for line in lines:
        if line.startswith("flags"):
            flags = [f for f in line.split(":", 1)[1].split() if f not in BF16_FLAGS]
            line = "flags\t\t: " + " ".join(flags if has_bf16 else [*flags, *BF16_FLAGS])
        changed.append(line)
    cpuinfo = folder / "cpuinfo"
    cpuinfo.write_text("\n".join(changed) + "\n")
    script = f'mount --bind {cpuinfo} /proc/cpuinfo && exec "$@"'
    return ["unshare", "--mount", "bash", "-c", script, "as-other-cpu", *command]
