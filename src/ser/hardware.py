"""What the machine a run lands on can do, checked where the run trains, and what it had.

A sweep is often submitted from a machine without the hardware its runs need (a cluster's
login node), so nothing here runs while a config is composed or a sweep is planned for
SLURM: :func:`check_hardware` runs at the start of each run, on its compute node, and
:func:`device_record` describes the device the run actually used, for ``results.json``.
Nothing here changes a config: a run's settings come from its command, never its host.

torch is imported inside the functions: the entry points and the launcher plugins import
this module and must start without it.
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ser.errors import ConfigError

log = logging.getLogger(__name__)

#: CPU flags (``/proc/cpuinfo``) of native bf16 arithmetic, where bf16 autocast pays off
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")

#: ``trainer.accelerator`` values that mean a GPU
GPU_ACCELERATORS = ("gpu", "cuda")


def gpu_count() -> int:
    """CUDA GPUs this process can use (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def usable_cpus() -> int:
    """The cores this process may run on: its CPU affinity where the OS has one (Linux; a
    SLURM job's ``--cpus-per-task``), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo``; empty where it cannot be read."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()}


def cpu_supports_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX); False where unknown.

    Elsewhere, bf16 autocast on the CPU is emulated and slower than fp32.

    Example:
        >>> cpu_supports_bf16("/no/such/cpuinfo")
        False
    """
    return any(flag in cpu_flags(cpuinfo) for flag in BF16_CPU_FLAGS)


def cpu_name(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def requested_gpus(devices: Any) -> int | None:
    """How many GPUs ``trainer.devices`` asks for; ``None`` for "every visible one".

    Example:
        >>> requested_gpus(2), requested_gpus("0,1,3"), requested_gpus([0, 2]), requested_gpus(-1)
        (2, 3, 2, None)
    """
    if devices in (None, "auto", -1, "-1"):
        return None
    if isinstance(devices, int):
        return devices
    if isinstance(devices, str):
        parts = [p for p in devices.split(",") if p.strip()]
        return int(parts[0]) if len(parts) == 1 and "," not in devices else len(parts)
    return len(list(devices))


def on_gpu(accelerator: str) -> bool:
    """Whether a run with ``trainer.accelerator=accelerator`` trains on a GPU here."""
    return accelerator in GPU_ACCELERATORS or (accelerator == "auto" and gpu_count() > 0)


def check_hardware(trainer: Mapping[str, Any], *, host: str | None = None) -> None:
    """Fail with one :class:`~ser.errors.ConfigError` when this machine cannot run the
    ``trainer`` config: a GPU run without a GPU, more GPUs than it has, or a precision its
    device cannot compute. bf16 on a CPU without native bf16 runs, with a warning (it is
    emulated, slower than fp32).

    Called at the start of every run, on the machine that trains it.

    Example:
        >>> check_hardware({"accelerator": "cpu", "devices": 1, "precision": "32-true"})
        >>> check_hardware({"accelerator": "cpu", "precision": "16-mixed"}, host="login1")
        Traceback (most recent call last):
        ...
        ser.errors.ConfigError: trainer.precision=16-mixed: fp16 autocast runs on GPUs only...
    """
    host = host or platform.node()
    accelerator = str(trainer.get("accelerator") or "auto")
    precision = str(trainer.get("precision") or "32-true")
    if accelerator in GPU_ACCELERATORS:
        count = gpu_count()
        if count == 0:
            raise ConfigError(
                f"hardware=gpu/ddp needs a GPU but none is visible on {host} "
                "(torch.cuda.is_available() is False; check CUDA_VISIBLE_DEVICES, the driver "
                "and, on a cluster, that the job asked for GPUs: hydra.launcher.gpus_per_node); "
                "use hardware=cpu or hardware=auto"
            )
        wanted = requested_gpus(trainer.get("devices"))
        if wanted is not None and wanted > count:
            raise ConfigError(
                f"trainer.devices={trainer.get('devices')} asks for {wanted} GPUs but {host} "
                f"has {count} visible: lower trainer.devices (-1: every visible GPU) or ask "
                "the scheduler for more (hydra.launcher.gpus_per_node)"
            )
    gpu = on_gpu(accelerator)
    if precision in ("16-mixed", "16", "16-true", "fp16") and not gpu:
        raise ConfigError(
            f"trainer.precision={precision}: fp16 autocast runs on GPUs only, and this run "
            f"trains on the CPU of {host}; use precision=fp32, or precision=bf16 on a CPU "
            "with AVX512-BF16 or AMX"
        )
    if precision.startswith("bf16") and gpu:
        import torch

        if not torch.cuda.is_bf16_supported(including_emulation=False):
            raise ConfigError(
                f"trainer.precision={precision}: {torch.cuda.get_device_name(0)} on {host} "
                "cannot compute in bf16 (compute capability below 8.0); use precision=fp16 "
                "or precision=fp32"
            )
    elif precision.startswith("bf16") and not cpu_supports_bf16():
        log.warning(
            "trainer.precision=%s on a CPU without native bf16 (%s): it is emulated and "
            "slower than fp32 (precision=fp32)", precision, cpu_name(),
        )  # fmt: skip


def device_record(trainer: Any) -> dict[str, Any]:
    """The hardware a run had, for ``results.json``: device kind and name, device count and
    the precision it trained in (``trainer``: the fitted :class:`lightning.Trainer`)."""
    import torch

    root = trainer.strategy.root_device
    name = torch.cuda.get_device_name(root) if root.type == "cuda" else cpu_name()
    return {
        "device_kind": root.type,
        "device_name": name,
        "devices": trainer.num_devices,
        "precision": str(trainer.precision),
    }


def hardware_label(results: Mapping[str, Any]) -> str:
    """``cpu 32-true``: a run's device kind and precision from its ``results.json``, for
    tables that must say when their runs differ in either.

    A record without the device kind is labelled from Lightning's accelerator class.

    Example:
        >>> hardware_label({"environment": {"accelerator": "CUDAAccelerator",
        ...                                 "precision": "bf16-mixed"}})
        'cuda bf16-mixed'
    """
    environment = results.get("environment") or {}
    kind = environment.get("device_kind")
    if kind is None:
        accelerator = str(environment.get("accelerator") or "unknown")
        kind = accelerator.removesuffix("Accelerator").lower() or "unknown"
    return f"{kind} {environment.get('precision', 'unknown')}"


def hardware_text(counts: Mapping[str, int]) -> str:
    """``cpu 32-true``, or ``cpu 32-true (8), cuda bf16-mixed (2)`` when runs differ
    (``counts``: :func:`hardware_label` -> number of runs).

    Example:
        >>> hardware_text({"cpu 32-true": 3})
        'cpu 32-true'
    """
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{label} ({n})" for label, n in sorted(counts.items()))


def slurm_tasks_per_node(environ: Mapping[str, str] = os.environ) -> int | None:
    """Tasks SLURM starts on each node of this job step, ``None`` outside SLURM.

    ``SLURM_NTASKS_PER_NODE`` is set only with ``--ntasks-per-node``; ``SLURM_TASKS_PER_NODE``
    always (``2``, ``2(x3)``, or uneven as ``2,1``: refused, DDP needs the same number of
    processes on every node).

    Example:
        >>> slurm_tasks_per_node({"SLURM_NTASKS": "6", "SLURM_TASKS_PER_NODE": "2(x3)"})
        2
        >>> slurm_tasks_per_node({}) is None
        True
    """
    if "SLURM_NTASKS_PER_NODE" in environ:
        return int(environ["SLURM_NTASKS_PER_NODE"])
    per_node = environ.get("SLURM_TASKS_PER_NODE")
    if not per_node or "SLURM_NTASKS" not in environ:
        return None
    counts = {int(part.split("(")[0]) for part in per_node.split(",")}
    if len(counts) > 1:
        raise ConfigError(
            f"SLURM starts an uneven number of tasks per node (SLURM_TASKS_PER_NODE={per_node}): "
            "DDP needs the same number on every node; use srun --ntasks-per-node=N"
        )
    return counts.pop()
