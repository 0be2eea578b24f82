"""Learning-rate schedules that span a whole run (``conf/scheduler/*.yaml``).

A schedule whose constructor takes a keyword-only ``total_steps`` gets the run's number of
optimiser steps from :meth:`ser.module.SERModule.configure_optimizers`
(``trainer.estimated_stepping_batches``: ``trainer.max_steps``, or ``trainer.max_epochs``
times the optimiser steps per epoch after ``limit_train_batches`` and
``accumulate_grad_batches``, whichever ends first). The config leaves ``total_steps`` out,
so one schedule fits step- and epoch-based runs alike.

Resuming from a checkpoint keeps this run's length (and the schedule's other settings); the
checkpoint gives the step count, so a run resumed with a larger ``trainer.max_steps``
continues on the schedule of the new length.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, OneCycleLR

from ser.errors import ConfigError


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

    #: what this run sets itself and a checkpoint's state does not override
    run_settings: tuple[str, ...] = ("total_steps", "eta_min")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load the step count (and base rates) but keep this run's length and floor."""
        _load_keeping(self, super().load_state_dict, state_dict)


class WarmupCosine(CosineDecay):
    """Linear warm-up to each group's learning rate, then cosine decay to ``eta_min``.

    ``w = round(warmup_fraction * total_steps)`` warm-up steps (at most ``total_steps - 1``):
    step ``k < w`` uses ``lr * (k + 1) / (w + 1)``, step ``w`` the full ``lr``, and the cosine
    of :class:`CosineDecay` runs over the remaining ``total_steps - w`` steps (``eta_min``
    after the last). No warm-up (``warmup_fraction=0``) is :class:`CosineDecay`. Step it once
    per optimiser step (``scheduler_interval: step``).

    >>> import torch
    >>> optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> scheduler = WarmupCosine(optimizer, total_steps=6, warmup_fraction=0.34)
    >>> lrs = []
    >>> for _ in range(7):
    ...     lrs.append(round(optimizer.param_groups[0]["lr"], 4))
    ...     optimizer.step()
    ...     scheduler.step()
    >>> lrs
    [0.3333, 0.6667, 1.0, 0.8536, 0.5, 0.1464, 0.0]
    """

    run_settings = (*CosineDecay.run_settings, "warmup_steps")

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        total_steps: int,
        warmup_fraction: float = 0.05,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if not 0.0 <= warmup_fraction < 1.0:
            raise ConfigError(
                f"model.scheduler.warmup_fraction={warmup_fraction}: give the share of the run "
                "spent warming up, in [0, 1)"
            )
        self.warmup_steps = min(round(warmup_fraction * total_steps), max(total_steps - 1, 0))
        super().__init__(optimizer, total_steps=total_steps, eta_min=eta_min, last_epoch=last_epoch)

    def get_lr(self) -> list[float]:
        step, warmup = self.last_epoch, self.warmup_steps
        if step < warmup:
            return [base * (step + 1) / (warmup + 1) for base in self.base_lrs]
        decay = self.total_steps - warmup
        factor = (1 + math.cos(math.pi * min(step - warmup, decay) / decay)) / 2
        return [self.eta_min + (base - self.eta_min) * factor for base in self.base_lrs]


class OneCycle(OneCycleLR):
    """torch's one-cycle policy (Smith & Topin 2019) peaking at each group's learning rate.

    ``torch.optim.lr_scheduler.OneCycleLR`` with ``max_lr`` taken from the optimiser's
    groups (``optimizer.lr``; the center-loss group keeps its own) and ``total_steps`` from
    the run: from ``lr / div_factor`` up to ``lr`` over the first ``pct_start`` of the run,
    then annealed to ``lr / (div_factor * final_div_factor)``. ``cycle_momentum`` is off by
    default, so the optimiser's momentum (Adam's ``betas``, the seed's 0.5) is kept; torch's
    default would cycle beta1 between 0.85 and 0.95. Step it once per optimiser step.

    >>> import torch
    >>> optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> scheduler = OneCycle(optimizer, total_steps=10, pct_start=0.3)
    >>> lrs = []
    >>> for _ in range(10):
    ...     lrs.append(optimizer.param_groups[0]["lr"])
    ...     optimizer.step()
    ...     scheduler.step()
    >>> lrs.index(max(lrs)), round(lrs[0], 6), optimizer.param_groups[0]["betas"]
    (2, 0.04, (0.9, 0.999))
    """

    run_settings = ("total_steps", "_schedule_phases")  # the phases follow from total_steps

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        total_steps: int,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = False,
        last_epoch: int = -1,
    ) -> None:
        if not 0.0 <= pct_start <= 1.0:
            raise ConfigError(
                f"model.scheduler.pct_start={pct_start}: give the share of the run spent "
                "rising, in [0, 1]"
            )
        super().__init__(
            optimizer,
            max_lr=[group["lr"] for group in optimizer.param_groups],
            total_steps=int(total_steps),
            pct_start=float(pct_start),
            anneal_strategy=anneal_strategy,
            cycle_momentum=cycle_momentum,
            div_factor=div_factor,
            final_div_factor=final_div_factor,
            last_epoch=last_epoch,
        )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load the step count but keep this run's length."""
        _load_keeping(self, super().load_state_dict, state_dict)


def _load_keeping(
    scheduler: LRScheduler, load: Callable[[dict[str, Any]], None], state_dict: dict[str, Any]
) -> None:
    """``load(state_dict)``, keeping the attributes of ``scheduler.run_settings``."""
    kept = {name: getattr(scheduler, name) for name in scheduler.run_settings}
    load(state_dict)
    vars(scheduler).update(kept)
