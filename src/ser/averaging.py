"""Weight averaging (``averaging=ema|swa``): the averaged network is the one evaluated and saved.

:class:`NetWeightAveraging` keeps an averaged copy of the network (``SERModule.net``) and
makes it the network of record:

- after every optimiser step it updates the average with torch's averaging functions: an
  exponential moving average (``decay``, ``torch.optim.swa_utils.get_ema_multi_avg_fn``) or
  the equal average of SWA (``decay=null``, ``get_swa_multi_avg_fn``);
  before ``start`` (a share of the run's optimiser steps) the average follows the trained
  weights, so a checkpoint chosen before averaging starts is the trained network, not the
  initial one;
- every validation runs on the averaged weights (swapped in and out), so ``val/uar`` and the
  checkpoint chosen on it are the averaged network's;
- every checkpoint holds the averaged weights in ``state_dict`` (``net.*``: what
  ``trainer.test``, ``ser.predict`` and ``ser.evaluate`` load), the trained ones in
  ``current_model_state`` and the average's count in ``averaging_state`` (the layout of
  Lightning's ``WeightAveraging``); resuming a fit restores both;
- at the end of training the network takes the averaged weights.

Lightning's ``WeightAveraging`` cannot serve because its ``on_load_checkpoint`` reloads the
trained weights (``current_model_state``) whenever the fit's average exists, so
``trainer.test(ckpt_path=best)`` after ``trainer.fit`` would test the trained network, not
the averaged one that was selected on validation.

Batch-norm running statistics are averaged like the weights (as Lightning's callback does by
default), not recomputed with ``torch.optim.swa_utils.update_bn`` after SWA.
"""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor, nn
from torch.optim.swa_utils import get_ema_multi_avg_fn, get_swa_multi_avg_fn

from ser.errors import ConfigError

#: prefix of the network's entries in a SERModule state dict
PREFIX = "net."


class NetWeightAveraging(L.Callback):
    """EMA or SWA of ``pl_module.net``, used by validation, checkpoints, test and inference.

    Args:
        decay: EMA decay per optimiser step (0.999: a horizon of about 1000 steps);
            ``None``: SWA, the equal average of the weights after every step.
        start: share of the run's optimiser steps (``trainer.estimated_stepping_batches``)
            before averaging starts: up to that step the average is the trained weights, and
            averaging starts from them (SWA with ``start=0.75``: the mean of the weights after
            the steps from 75 % of the run to its end).
    """

    def __init__(self, *, decay: float | None = None, start: float = 0.0) -> None:
        if decay is not None and not 0.0 < decay < 1.0:
            raise ConfigError(
                f"callbacks.weight_averaging.decay={decay}: give a value in (0, 1), e.g. 0.999 "
                "(averaging=ema), or null for SWA's equal average"
            )
        if not 0.0 <= start < 1.0:
            raise ConfigError(
                f"callbacks.weight_averaging.start={start}: give the share of the run before "
                "averaging starts, in [0, 1)"
            )
        self.decay = decay
        self.start = start
        #: the averaged copy of the network (from the start of a fit)
        self.average: nn.Module | None = None
        #: updates averaged so far (0: the next update copies the trained weights)
        self.count = 0
        #: whether the network holds the average and :attr:`average` the trained weights
        #: (during validation, and after training)
        self.swapped = False
        #: optimiser steps before averaging starts (set when training starts)
        self.start_step = 0
        #: optimiser steps at the last update (no update between steps when accumulating)
        self.last_update = 0

    # ------------------------------------------------------------------ training
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == TrainerFn.FITTING:
            self.average = copy.deepcopy(pl_module.net).to(pl_module.device).requires_grad_(False)
            self.count = 0
            self.swapped = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.start:
            return
        total = trainer.estimated_stepping_batches
        if math.isinf(total):
            raise ConfigError(
                f"callbacks.weight_averaging.start={self.start} is a share of the run, but "
                "trainer.max_steps=-1 and trainer.max_epochs=-1 train without end: set one"
            )
        self.start_step = math.ceil(self.start * total)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        steps = trainer.global_step
        if steps == self.last_update:  # accumulating gradients: no optimiser step yet
            return
        self.last_update = steps
        if steps <= self.start_step:
            self.count = 0  # before the start: follow the trained weights
        self.update(pl_module.net)

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        """Average ``net``'s weights into :attr:`average` (the first update copies them).

        Floating-point tensors (weights, batch-norm statistics) are averaged; integer ones
        (batch-norm's step counter) copied.
        """
        average_fn = (
            get_swa_multi_avg_fn() if self.decay is None else get_ema_multi_avg_fn(self.decay)
        )
        averaged, trained = [], []
        for a, t in _tensors(self.average, net):
            if self.count and a.is_floating_point():
                averaged.append(a)
                trained.append(t.to(a.dtype))
            else:
                a.copy_(t)
        if averaged:
            average_fn(averaged, trained, self.count)
        self.count += 1

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the fitted module holds the average (the trained weights stay in self.average for a
        # last.ckpt that Lightning may still write)
        self.swap(pl_module.net)

    # ------------------------------------------------------------------ validation
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.average is not None and trainer.state.fn == TrainerFn.FITTING:
            self.swap(pl_module.net)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.average is not None and trainer.state.fn == TrainerFn.FITTING:
            self.swap(pl_module.net)

    @torch.no_grad()
    def swap(self, net: nn.Module) -> None:
        """Exchange the weights of ``net`` and :attr:`average` (see :attr:`swapped`)."""
        for a, b in _tensors(self.average, net):
            held = a.clone()
            a.copy_(b)
            b.copy_(held)
        self.swapped = not self.swapped

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self.average is None:  # outside a fit: the network holds what was loaded
            return
        module_state = checkpoint["state_dict"]  # the network as it is now
        other = {PREFIX + k: v for k, v in self.average.state_dict().items()}
        if self.swapped:  # the network holds the average
            averaged, trained = module_state, module_state | other
        else:
            averaged, trained = module_state | other, module_state
        checkpoint["state_dict"] = averaged
        checkpoint["current_model_state"] = trained
        checkpoint["averaging_state"] = {"count": self.count}

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Resuming a fit: the average from ``state_dict``, the network from
        ``current_model_state``. Testing or predicting keeps ``state_dict`` (the average)."""
        if self.average is None or trainer.state.fn != TrainerFn.FITTING:
            return
        net_state = {
            k.removeprefix(PREFIX): v
            for k, v in checkpoint["state_dict"].items()
            if k.startswith(PREFIX)
        }
        self.average.load_state_dict(net_state)
        if "current_model_state" in checkpoint:
            self.count = checkpoint["averaging_state"]["count"]
            pl_module.load_state_dict(checkpoint["current_model_state"])
        # else: a checkpoint without averaging; its weights start the average

    def state_dict(self) -> dict[str, Any]:
        return {"last_update": self.last_update}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_update = state_dict["last_update"]


def _tensors(a: nn.Module, b: nn.Module) -> zip[tuple[Tensor, Tensor]]:
    """The parameters and buffers of two copies of one network, pairwise (as data)."""
    return zip(
        (t.data for t in itertools.chain(a.parameters(), a.buffers())),
        (t.data for t in itertools.chain(b.parameters(), b.buffers())),
        strict=True,
    )
