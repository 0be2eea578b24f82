"""Learning-rate schedules that span a whole run (``conf/scheduler/*.yaml``).

A schedule whose constructor takes a keyword-only ``total_steps`` gets the run's number of
optimiser steps from :meth:`ser.module.SERModule.configure_optimizers`
(``trainer.estimated_stepping_batches``: ``trainer.max_steps``, or ``trainer.max_epochs``
times the optimiser steps per epoch after ``limit_train_batches`` and
``accumulate_grad_batches``, whichever ends first). The config leaves ``total_steps`` out,
so one schedule fits step- and epoch-based runs alike.
"""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


class CosineDecay(LRScheduler):
    """Cosine decay of each group's learning rate to ``eta_min`` over ``total_steps`` steps.

    After ``k`` steps a group starting at ``lr`` uses
    ``eta_min + (lr - eta_min) * (1 + cos(pi * k / total_steps)) / 2``: ``lr`` at the first
    step, ``eta_min`` after the last, and ``eta_min`` for any step beyond (it never rises
    again, unlike ``CosineAnnealingLR`` past ``T_max``). Step it once per optimiser step
    (``scheduler_interval: step``).

    Resuming from a checkpoint keeps this run's ``total_steps`` and ``eta_min`` (the
    checkpoint gives the step count): a run resumed with a larger ``trainer.max_epochs``
    continues on the cosine of the new length.

    >>> import torch
    >>> optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> scheduler = CosineDecay(optimizer, total_steps=4)
    >>> lrs = []
    >>> for _ in range(6):
    ...     lrs.append(round(optimizer.param_groups[0]["lr"], 4))
    ...     optimizer.step()
    ...     scheduler.step()
    >>> lrs
    [1.0, 0.8536, 0.5, 0.1464, 0.0, 0.0]
    """

    def __init__(
        self, optimizer: Optimizer, *, total_steps: int, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        if total_steps < 1:
            raise ValueError(f"CosineDecay: total_steps={total_steps}: needs at least 1 step")
        self.total_steps = int(total_steps)
        self.eta_min = float(eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        progress = min(self.last_epoch, self.total_steps) / self.total_steps
        factor = (1 + math.cos(math.pi * progress)) / 2
        return [self.eta_min + (base - self.eta_min) * factor for base in self.base_lrs]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load the step count (and base rates) but keep this run's length and floor."""
        total_steps, eta_min = self.total_steps, self.eta_min
        super().load_state_dict(state_dict)
        self.total_steps, self.eta_min = total_steps, eta_min
