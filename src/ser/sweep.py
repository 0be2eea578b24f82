"""Sweep support: Hydra callbacks that report progress and aggregate a finished multirun.

Configured in ``conf/hydra/default.yaml`` so that ``python sweep.py`` and
``python train.py -m ...`` produce the same artifacts.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ser.results import aggregate, collect, summary_markdown, write_summary
from ser.text import duration

log = logging.getLogger(__name__)


def sweep_size(overrides: list[str], params: dict[str, str] | None = None) -> int:
    """Number of jobs of a basic-sweeper multirun given its overrides and sweeper params."""
    merged = {}
    parser = OverridesParser.create()
    for override in parser.parse_overrides([f"{k}={v}" for k, v in (params or {}).items()]):
        merged[override.get_key_element()] = override
    for override in parser.parse_overrides(overrides):
        merged[override.get_key_element()] = override
    sizes = [len(list(o.sweep_iterator())) if o.is_sweep_override() else 1 for o in merged.values()]
    return math.prod(sizes)


class SweepProgress(Callback):
    """Logs 'run i of n' and an estimate of the time left before each job.

    The estimate averages the runs that trained: runs skipped as already done (resumed
    sweeps) count as finished but not towards the time per run. It counts only jobs run in
    the process that started the multirun: jobs in launcher workers (ser_local, submitit)
    each get a copy of this callback, so the launcher reports their progress instead.
    """

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.trained = 0
        self.training_time = 0.0
        self.job_started = 0.0
        self.sweep_pid = 0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        params = OmegaConf.to_container(config.hydra.sweeper.get("params") or {}, resolve=True)
        self.total = sweep_size(list(config.hydra.overrides.task), params)
        self.sweep_pid = os.getpid()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.job_started = time.time()
        if not self.total or os.getpid() != self.sweep_pid:
            return
        per_run = self.training_time / self.trained if self.trained else None
        eta = f", about {duration(per_run * (self.total - self.done))} left" if per_run else ""
        log.info(
            "sweep: run %d of %d (%s)%s",
            self.done + 1, self.total, " ".join(config.hydra.overrides.task), eta,
        )  # fmt: skip

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        self.done += 1
        results = Path(config.hydra.runtime.output_dir) / "results.json"
        if results.is_file() and results.stat().st_mtime >= self.job_started:
            self.trained += 1
            self.training_time += time.time() - self.job_started


class AggregateSweep(Callback):
    """After a multirun: summary tables and figures in the sweep folder (and on W&B)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        runs = collect(sweep_dir)
        if not runs:
            log.warning("sweep %s: no finished runs to aggregate", sweep_dir)
            return
        summary = aggregate(runs)
        paths = write_summary(summary, sweep_dir)
        print(summary_markdown(summary))
        log.info("sweep summary: %s", ", ".join(str(p) for p in paths))
        wandb_cfg = (config.get("logger") or {}).get("wandb")
        if wandb_cfg:
            log_summary_to_wandb(summary, paths, wandb_cfg, group=config.task_name)


def log_summary_to_wandb(
    summary: Any, paths: list[Path], wandb_cfg: DictConfig, *, group: str
) -> None:
    """One W&B run (job type 'summary') in the sweep's group with the table and figures."""
    import wandb

    from ser.results import summary_rows

    rows = summary_rows(summary)
    run = wandb.init(
        project=wandb_cfg.get("project"),
        entity=wandb_cfg.get("entity"),
        group=group,
        job_type="summary",
        name=f"{group}-summary",
        dir=str(paths[0].parent),
        mode=os.environ.get("WANDB_MODE") or ("offline" if wandb_cfg.get("offline") else "online"),
    )
    table = wandb.Table(columns=list(rows[0]), data=[list(r.values()) for r in rows])
    images = {p.stem: wandb.Image(str(p)) for p in paths if p.suffix == ".png"}
    run.log({"summary": table} | images)
    run.finish()
