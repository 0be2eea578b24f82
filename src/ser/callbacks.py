"""Callbacks: what a W&B run gets beyond Lightning's curves, and exact resumption."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger

from ser.plots import confusion_figure


class WandbExtras(L.Callback):
    """Tags (corpus, test speaker), parameter counts and the test confusion matrix.

    The confusion matrix goes to W&B twice: as an interactive confusion-matrix chart and as
    a row-normalised image.
    """

    @staticmethod
    def _runs(trainer: L.Trainer) -> list:
        return [lg.experiment for lg in trainer.loggers if isinstance(lg, WandbLogger)]

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        tags = [dm.corpus.name, *(f"test-{s}" for s in dm.fold.test), f"fold-{dm.fold.index}"]
        params = sum(p.numel() for p in pl_module.net.parameters())
        trainable = sum(p.numel() for p in pl_module.net.parameters() if p.requires_grad)
        for run in self._runs(trainer):
            run.tags = tuple(sorted(set(run.tags or ()) | set(tags)))
            run.summary["params/total"] = params
            run.summary["params/trainable"] = trainable

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        results = getattr(pl_module, "test_results", None)
        if not trainer.is_global_zero or not results:
            return
        import wandb

        classes = results["confusion"]["classes"]
        index = {c: i for i, c in enumerate(classes)}
        y_true = [index[p["label"]] for p in results["predictions"]]
        y_pred = [index[p["pred"]] for p in results["predictions"]]
        title = f"{pl_module.name} fold {trainer.datamodule.fold.index}"
        figure = confusion_figure({title: np.array(results["confusion"]["matrix"])}, classes)
        for run in self._runs(trainer):
            run.log(
                {
                    "test/confusion": wandb.plot.confusion_matrix(
                        y_true=y_true, preds=y_pred, class_names=classes
                    ),
                    "test/confusion_image": wandb.Image(figure),
                }
            )


class ResumableRandomness(L.Callback):
    """Saves the random number generators' states in every checkpoint and restores them on
    resume, so a run resumed from ``last.ckpt`` draws the same shuffles and dropout masks as
    the run that was interrupted would have.

    Lightning restores weights, optimiser, schedulers and loop counters, but not the RNGs: a
    resumed run would otherwise continue from the seed's initial state, and its result would
    differ from an uninterrupted run's. Fresh runs are unaffected.
    """

    KEY = "rng_states"

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states: dict[str, Any] = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            states["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint[self.KEY] = states

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states = checkpoint.get(self.KEY)
        if not states or trainer.state.fn != "fit":
            return  # testing a checkpoint draws nothing; an older checkpoint has no states
        random.setstate(states["python"])
        np.random.set_state(states["numpy"])
        torch.set_rng_state(states["torch"])
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])
