"""Callbacks: progress for terminals and for job logs, what a W&B run gets beyond
Lightning's curves, and exact resumption."""

from __future__ import annotations

import random
import sys
import time
from typing import Any, TextIO

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.callbacks.progress import ProgressBar
from lightning.pytorch.loggers import WandbLogger

from ser.plots import confusion_figure
from ser.text import duration


def progress_bar(*, stream: TextIO | None = None) -> ProgressBar:
    """Rich's progress bar in a terminal; :class:`EpochLines` when the output goes to a file
    (SLURM job logs, ``nohup``, CI), where a progress bar prints almost nothing until the
    run ends."""
    stream = stream or sys.stdout
    return RichProgressBar() if stream.isatty() else EpochLines(stream=stream)


class EpochLines(ProgressBar):
    """Plain lines for job logs: the run's estimated duration after a few timed steps, then
    one line per epoch.

    ::

        estimated duration: about 0m09s for 18 more steps at 0.55 s/step on cpu, ...
        epoch 0 | step 8/24 | loss 1.3525 | val/uar 0.3939 (best 0.3939) | 46.7 seg/s
            | 0m05s, about 0m10s left     (one line)

    Args:
        stream: where the lines go (standard output by default).
        timed_steps: optimiser steps timed for the estimate, after one untimed warm-up step.
        slow_s: an estimate above this many seconds names the faster options.
    """

    def __init__(
        self, *, stream: TextIO | None = None, timed_steps: int = 5, slow_s: float = 1800.0
    ) -> None:
        super().__init__()
        self.stream = stream or sys.stdout
        self.timed_steps = timed_steps
        self.slow_s = slow_s
        self.enabled = True
        self.started = 0.0
        self.timing_from: tuple[float, int] | None = None
        self.first_step = 0
        self.segments = 0
        self.segment_time = 0.0
        self.epoch_started = 0.0

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def _write(self, line: str) -> None:
        if self.enabled and self.trainer.is_global_zero:
            print(line, file=self.stream, flush=True)

    def _total_steps(self, trainer: L.Trainer) -> int | None:
        total = trainer.max_steps if trainer.max_steps > 0 else trainer.estimated_stepping_batches
        return int(total) if total != float("inf") else None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.perf_counter()
        self.first_step = trainer.global_step  # a resumed run does not start at 0
        self.timing_from = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_started = time.perf_counter()
        self.segments = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        self.segments += len(batch["y"])
        steps = trainer.global_step - self.first_step
        if steps == 1:
            self.timing_from = (time.perf_counter(), trainer.global_step)
        elif self.timing_from and steps == 1 + self.timed_steps:
            start, step = self.timing_from
            per_step = (time.perf_counter() - start) / (trainer.global_step - step)
            self._write(self._estimate(trainer, pl_module, per_step))

    def _estimate(self, trainer: L.Trainer, pl_module: L.LightningModule, per_step: float) -> str:
        total = self._total_steps(trainer)
        if total is None:
            return f"training: {per_step:.2f} s/step (no step limit, so no estimate)"
        left = total - trainer.global_step
        line = (
            f"estimated duration: about {duration(per_step * left)} for {left} more steps at "
            f"{per_step:.2f} s/step on {pl_module.device.type}, validation not counted"
        )
        if per_step * left > self.slow_s and pl_module.device.type == "cpu":
            faster = ["width=small (about 16x fewer parameters)"]
            if not str(trainer.precision).startswith("bf16"):
                faster.append("precision=bf16 (CPUs with avx512_bf16/AMX)")
            faster.append("or a GPU (hardware=gpu)")
            line += "; faster: " + ", ".join(faster)
        return line

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = time.perf_counter()
        metrics = trainer.callback_metrics
        parts = [f"epoch {trainer.current_epoch}"]
        total = self._total_steps(trainer)
        parts.append(f"step {trainer.global_step}" + (f"/{total}" if total else ""))
        if "train/loss" in metrics:
            parts.append(f"loss {float(metrics['train/loss']):.4f}")
        if "val/uar" in metrics:
            best = metrics.get("val/uar_best")
            parts.append(
                f"val/uar {float(metrics['val/uar']):.4f}"
                + (f" (best {float(best):.4f})" if best is not None else "")
            )
        if now > self.epoch_started:
            parts.append(f"{self.segments / (now - self.epoch_started):.1f} seg/s")
        elapsed = now - self.started
        steps = trainer.global_step - self.first_step
        timing = duration(elapsed)
        if total and steps > 0:
            timing += f", about {duration(elapsed / steps * (total - trainer.global_step))} left"
        parts.append(timing)
        self._write(" | ".join(parts))


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
        labels = trainer.datamodule.datasets["test"].labels
        y_true = labels[results["utterances"]].tolist()
        y_pred = results["preds"]
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
            return  # testing a checkpoint draws nothing; a checkpoint without states restores none
        random.setstate(states["python"])
        np.random.set_state(states["numpy"])
        torch.set_rng_state(states["torch"])
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])
