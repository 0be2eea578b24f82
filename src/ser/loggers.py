"""Loggers: Lightning's CSV logger, made to survive a resumed run, and closing a W&B run."""

from __future__ import annotations

import csv
import os
import sys

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` (``<save_dir>/<name>/<version>/metrics.csv``) that keeps the rows of
    the epochs before a resumed run's checkpoint.

    Lightning's logger deletes an existing ``metrics.csv`` when it starts, so a run resumed
    from ``last.ckpt`` (a requeued SLURM job, a rerun sweep) would lose its first epochs'
    curves. Here the file is kept; the first rows the run writes replace every older row of
    the same or a later epoch (the interrupted epoch's partial rows, or all rows of a run
    started afresh in the same folder).
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment


class _ContinuingWriter(ExperimentWriter):
    """Lightning's writer without the deletion; older rows are trimmed at the first save."""

    def __init__(self, log_dir: str) -> None:
        self._trimmed = False
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        """Keep what is there (Lightning deletes ``metrics.csv`` here)."""

    def save(self) -> None:
        if not self._trimmed and self.metrics:
            self._trimmed = True
            self._trim(min(int(row.get("epoch", 0)) for row in self.metrics))
        super().save()

    def _trim(self, epoch: int) -> None:
        """Drop the rows of ``epoch`` and later from an existing file; adopt its columns."""
        if not self._fs.isfile(self.metrics_file_path):
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            header = list(reader.fieldnames or [])
            rows = [r for r in reader if r.get("epoch") and int(float(r["epoch"])) < epoch]
        if not rows:
            self._fs.rm_file(self.metrics_file_path)
            return
        tmp = f"{self.metrics_file_path}.tmp"
        with self._fs.open(tmp, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.metrics_file_path)
        self.metrics_keys = sorted(header)


def finish_loggers(exit_code: int = 0) -> None:
    """Close the W&B run so that each run of a multirun is its own W&B run. Only a W&B
    logger imports wandb: CSV runs work where it is not installed."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)
