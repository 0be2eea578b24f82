"""A callback for bench/scale.py: time to the first training step and steps/s after it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import lightning as L


class StepTimer(L.Callback):
    """Writes ``first_step_s`` (from ``SCALE_BENCH_T0``, the parent's clock just before it
    started this process, to the end of the first step) and ``steps_per_s`` (the steps after
    the first) to the JSON file ``SCALE_BENCH`` when training ends."""

    def __init__(self) -> None:
        self.first_end: float | None = None
        self.last_end: float | None = None
        self.steps = 0

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        now = time.time()
        if self.first_end is None:
            self.first_end = now
        else:
            self.steps += 1
        self.last_end = now

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rate = self.steps / (self.last_end - self.first_end) if self.steps else float("nan")
        figures = {
            "first_step_s": self.first_end - float(os.environ["SCALE_BENCH_T0"]),
            "steps_per_s": rate,
        }
        Path(os.environ["SCALE_BENCH"]).write_text(json.dumps(figures))
