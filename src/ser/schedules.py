"""Learning-rate schedules that span a whole run (``conf/scheduler/*.yaml``): torch's
schedulers, given the run's length.

A schedule whose constructor takes ``total_steps`` or ``T_max`` (:data:`RUN_LENGTH`) gets
the run's number of optimiser steps from :meth:`ser.module.SERModule.configure_optimizers`
(``trainer.estimated_stepping_batches``: ``trainer.max_steps``, or ``trainer.max_epochs``
times the optimiser steps per epoch after ``limit_train_batches`` and
``accumulate_grad_batches``, whichever ends first). The config leaves it out, so one
schedule fits step- and epoch-based runs alike:

- ``scheduler=cosine``: ``torch.optim.lr_scheduler.CosineAnnealingLR``;
- ``scheduler=warmup_cosine``: :func:`warmup_cosine` (``LinearLR`` then
  ``CosineAnnealingLR``, in a ``SequentialLR``);
- ``scheduler=onecycle``: :func:`one_cycle` (``OneCycleLR`` peaking at each group's rate).

A resumed run must keep its length: torch's schedulers restore theirs from the checkpoint,
so :class:`~ser.module.SERModule` refuses to resume with another one.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    OneCycleLR,
    SequentialLR,
)

from ser.errors import ConfigError

#: the keyword arguments under which torch's schedulers take the run's length in steps
RUN_LENGTH = ("total_steps", "T_max")


def warmup_cosine(
    optimizer: Optimizer, *, total_steps: int, warmup_fraction: float = 0.05, eta_min: float = 0.0
) -> LRScheduler:
    """Linear warm-up to each group's learning rate, then cosine decay to ``eta_min``.

    ``w = round(warmup_fraction * total_steps)`` warm-up steps (at most ``total_steps - 1``):
    step ``k < w`` uses ``lr * (k + 1) / (w + 1)``, step ``w`` the full ``lr``, and the
    cosine runs over the remaining ``total_steps - w`` steps (``eta_min`` after the last).
    Without warm-up it is ``CosineAnnealingLR``. Step it once per optimiser step.

    >>> import torch
    >>> optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> scheduler = warmup_cosine(optimizer, total_steps=6, warmup_fraction=0.34)
    >>> lrs = []
    >>> for _ in range(7):
    ...     lrs.append(round(optimizer.param_groups[0]["lr"], 4))
    ...     optimizer.step()
    ...     scheduler.step()
    >>> lrs
    [0.3333, 0.6667, 1.0, 0.8536, 0.5, 0.1464, 0.0]
    """
    if not 0.0 <= warmup_fraction < 1.0:
        raise ConfigError(
            f"model.scheduler.warmup_fraction={warmup_fraction}: give the share of the run "
            "spent warming up, in [0, 1)"
        )
    warmup = min(round(warmup_fraction * total_steps), max(total_steps - 1, 0))
    if warmup == 0:
        return CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=eta_min)
    rise = LinearLR(optimizer, start_factor=1 / (warmup + 1), end_factor=1.0, total_iters=warmup)
    decay = CosineAnnealingLR(optimizer, T_max=total_steps - warmup, eta_min=eta_min)
    return SequentialLR(optimizer, [rise, decay], milestones=[warmup])


def one_cycle(
    optimizer: Optimizer,
    *,
    total_steps: int,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal_strategy: str = "cos",
    cycle_momentum: bool = False,
) -> OneCycleLR:
    """torch's one-cycle policy (Smith & Topin 2019) peaking at each group's learning rate.

    ``OneCycleLR`` with ``max_lr`` taken from the optimiser's groups (``optimizer.lr``; the
    center-loss group keeps its own): from ``lr / div_factor`` up to ``lr`` over the first
    ``pct_start`` of the run, then annealed to ``lr / (div_factor * final_div_factor)``.
    ``cycle_momentum`` is off by default, so the optimiser's momentum (Adam's ``betas``, the
    seed's 0.5) is kept; torch's default would cycle beta1 between 0.85 and 0.95.

    >>> import torch
    >>> optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> scheduler = one_cycle(optimizer, total_steps=10, pct_start=0.3)
    >>> lrs = []
    >>> for _ in range(10):
    ...     lrs.append(optimizer.param_groups[0]["lr"])
    ...     optimizer.step()
    ...     scheduler.step()
    >>> lrs.index(max(lrs)), round(lrs[0], 6), optimizer.param_groups[0]["betas"]
    (2, 0.04, (0.9, 0.999))
    """
    if not 0.0 <= pct_start <= 1.0:
        raise ConfigError(
            f"model.scheduler.pct_start={pct_start}: give the share of the run spent "
            "rising, in [0, 1]"
        )
    return OneCycleLR(
        optimizer,
        max_lr=[group["lr"] for group in optimizer.param_groups],
        total_steps=int(total_steps),
        pct_start=float(pct_start),
        anneal_strategy=anneal_strategy,
        cycle_momentum=cycle_momentum,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
    )
