"""GPU out-of-memory errors, however CUDA's libraries report them, as one user error that
names the settings to lower."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from omegaconf import DictConfig

from ser.errors import OutOfMemoryError

#: how cuDNN, cuBLAS and the CUDA runtime report an allocation that failed: as a plain
#: RuntimeError, not as the caching allocator's torch.OutOfMemoryError
OUT_OF_MEMORY_MARKS = (
    "CUDNN_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_ALLOC_FAILED", "CUDA error: out of memory",
)  # fmt: skip


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says the GPU ran out of memory.

    Example:
        >>> is_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"))
        True
        >>> is_out_of_memory(RuntimeError("CUDA error: an illegal memory access"))
        False
    """
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and any(mark in str(err) for mark in OUT_OF_MEMORY_MARKS)


@contextmanager
def out_of_memory_advice(cfg: DictConfig) -> Iterator[None]:
    """Turn CUDA's out-of-memory errors (the allocator's, cuDNN's, cuBLAS's) into one
    :class:`~ser.errors.OutOfMemoryError` that names the settings to lower."""
    try:
        yield
    except RuntimeError as err:
        if isinstance(err, OutOfMemoryError) or not is_out_of_memory(err):
            raise
        first_line = (str(err).strip().splitlines() or ["CUDA out of memory"])[0]
        raise OutOfMemoryError(
            f"out of GPU memory ({first_line}). Lower datamodule.batch_size (now "
            f"{cfg.datamodule.batch_size}) or datamodule.eval_batch_size (now "
            f"{cfg.datamodule.get('eval_batch_size')}), train at width=small or with "
            "trainer.precision=bf16-mixed, or, in a ser_local sweep, run fewer jobs per GPU "
            "(hydra.launcher.runs_per_gpu)"
        ) from err
