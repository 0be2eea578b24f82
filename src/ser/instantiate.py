"""Building a run's objects from its config: callbacks, loggers and the trainer."""

from __future__ import annotations

import os
from typing import Any

import hydra
import lightning as L
from hydra.errors import InstantiationException
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig

from ser.errors import ConfigError, SERError
from ser.hardware import slurm_tasks_per_node
from ser.quiet import quiet_library_notices


def instantiate_dict(cfg: DictConfig | None, **kwargs: Any) -> list[Any]:
    """Instantiate every non-null entry of a ``{name: {_target_: ...}}`` config node."""
    return [hydra.utils.instantiate(node, **kwargs) for node in (cfg or {}).values() if node]


def instantiate_trainer(cfg: DictConfig, **kwargs: Any) -> L.Trainer:
    """The Lightning trainer of ``cfg`` (the ``trainer`` node) with ``kwargs`` added.

    Lightning checks its arguments in the constructor and names the bad one in a
    ``ValueError``, ``TypeError`` or ``MisconfigurationException`` (``trainer.precision=16x``,
    ``trainer.devices=0``). Those are option values set in the config, so they become a
    :class:`ConfigError`. A user error raised inside (``hardware=gpu`` without a GPU) stays
    as it is, and anything else keeps its traceback.

    Under ``srun --ntasks=N`` (without ``--ntasks-per-node``) Lightning's SLURM check wants
    ``SLURM_NTASKS_PER_NODE``; it is filled in from ``SLURM_TASKS_PER_NODE``. Library
    notices that do not apply to the run stay out of its log (:mod:`ser.quiet`).
    """
    quiet_library_notices()
    per_node = slurm_tasks_per_node()
    if per_node is not None:
        os.environ.setdefault("SLURM_NTASKS_PER_NODE", str(per_node))
    try:
        return hydra.utils.instantiate(cfg, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, SERError) or not isinstance(
            cause, ValueError | TypeError | MisconfigurationException
        ):
            raise
        raise ConfigError(f"trainer: {cause}") from err
