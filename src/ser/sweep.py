"""Sweep support: Hydra callbacks that check and count a multirun's runs before any starts,
report progress, and aggregate the finished multirun (failed runs named apart).

Configured in ``conf/hydra/default.yaml`` so that ``python sweep.py`` and
``python train.py -m ...`` produce the same artifacts.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra import compose
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ser.errors import ConfigError, exit_on_user_error, require_sbatch
from ser.hardware import check_hardware
from ser.io import write_text_atomic
from ser.options import check_sweep_options, require_untested_search
from ser.results import aggregate, collect, latest_protocol, search_trials
from ser.tables import (
    failure_line,
    failures_summary,
    search_markdown,
    summary_markdown,
    write_summary,
)
from ser.text import duration

log = logging.getLogger(__name__)


#: the swept keys that name a run's folder (``hydra.sweep.subdir``), in plan order
RUN_KEYS = ("model", "fold", "seed")


@dataclass(frozen=True)
class SweepPlan:
    """How many values each swept key takes; the runs are their product."""

    counts: dict[str, int]

    @property
    def total(self) -> int:
        return math.prod(self.counts.values())

    def line(self) -> str:
        """``sweep: 24 runs (4 models x 6 folds x 1 seed)``: logged before the first run."""
        parts = [_count(n, key) for key, n in self.counts.items()]
        return f"sweep: {_count(self.total, 'run')} ({' x '.join(parts)})"


def _count(n: int, noun: str) -> str:
    if noun not in (*RUN_KEYS, "run", "trial"):
        return f"{n} {noun} values"
    return f"{n} {noun}{'' if n == 1 else 's'}"


def sweep_overrides(config: DictConfig) -> dict[str, Override]:
    """The overrides of a multirun by key: the sweeper's params, then the command line's.

    The command line wins for a key both give, as in Hydra's basic sweeper.
    """
    params = config.hydra.sweeper.get("params")  # None for `train.py -m`
    params = OmegaConf.to_container(params, resolve=True) if params else {}
    parser = OverridesParser.create()
    merged = {}
    for override in parser.parse_overrides([f"{k}={v}" for k, v in params.items()]):
        merged[override.get_key_element()] = override
    for override in parser.parse_overrides(list(config.hydra.overrides.task)):
        merged[override.get_key_element()] = override
    return merged


def _values(override: Override) -> list[Any]:
    return list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]


def plan_sweep(config: DictConfig, config_name: str | None) -> SweepPlan:
    """Check the sweep before anything runs or is written, and count its runs.

    Every fold of the list must exist in its corpus (a
    :class:`~ser.data.corpora.CorpusError` names the valid ones), the corpus must be
    available (downloaded here if it can be), ``hydra/launcher=slurm`` needs ``sbatch``, and
    options that would fail every run (DDP) raise a :class:`~ser.errors.ConfigError`, as
    does hardware this machine lacks (``hardware=gpu`` without a GPU) when the runs train
    here. A SLURM sweep's runs check their hardware on their compute nodes: the machine
    that submits them (a login node) often has no GPU. The config of
    each distinct corpus of the sweep (one, unless something besides model, fold and seed
    is swept too) is composed once.
    """
    remote = "slurm" in str(OmegaConf.select(config, "hydra.launcher._target_", default="")).lower()
    if remote:
        require_sbatch()
    if is_search(config):
        return plan_search(config)
    merged = sweep_overrides(config)
    swept = {o.key_or_group: o for o in merged.values() if o.is_sweep_override()}
    folds = _values(merged["fold"]) if "fold" in merged else [config.fold]
    fixed = [o.input_line for o in merged.values() if not o.is_sweep_override()]
    others = [o for key, o in swept.items() if key not in RUN_KEYS]
    n_folds = {}
    for combination in itertools.product(*(o.sweep_string_iterator() for o in others)):
        choice = [f"{o.get_key_element()}={v}" for o, v in zip(others, combination, strict=True)]
        cfg = compose(config_name, overrides=fixed + choice)
        check_sweep_options(cfg)
        if not remote:  # the runs train on this machine: its hardware is theirs
            check_hardware(cfg.trainer)
        corpus = hydra.utils.instantiate(cfg.data)
        for fold in folds:
            corpus.fold(fold)  # a CorpusError listing the valid folds
        corpus.prepare()  # a download happens once, here, not in every (parallel) run
        n_folds[" ".join(choice) or corpus.name] = len(corpus.folds())
    given = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    if "fold" not in {o.key_or_group for o in given} and len(set(n_folds.values())) > 1:
        counts = ", ".join(f"{name}: {n}" for name, n in n_folds.items())
        raise ConfigError(
            f"the corpora of this sweep have different numbers of folds ({counts}): sweep "
            "one corpus at a time, or give the folds (fold=...)"
        )
    counts = {key: len(_values(merged[key])) if key in merged else 1 for key in RUN_KEYS}
    return SweepPlan(
        counts | {key: len(_values(o)) for key, o in swept.items() if key not in RUN_KEYS}
    )


#: what a search trial returns (:func:`ser.trial.search_trial`'s results)
SEARCH_OBJECTIVES = ("val/uar_mean",)


def is_search(config: DictConfig) -> bool:
    """Whether the multirun is a hyper-parameter search (``hparams_search=...``)."""
    return "optuna" in str(OmegaConf.select(config, "hydra.sweeper._target_", default="")).lower()


def plan_search(config: DictConfig) -> SweepPlan:
    """Check a hyper-parameter search before its first trial, and count its trials.

    Its objective must be a validation metric, testing must be off, and every range must be
    non-empty (a :class:`~ser.errors.ConfigError` otherwise).
    """
    objective = str(config.get("optimized_metric"))
    if objective.startswith("val/") and objective not in SEARCH_OBJECTIVES:
        raise ConfigError(
            f"optimized_metric={objective}: a search trial records "
            f"{', '.join(SEARCH_OBJECTIVES)} (over its folds); choose one of those"
        )
    if not objective.startswith("val/"):
        raise ConfigError(
            f"optimized_metric={objective}: a search must select on validation only "
            "(val/uar_mean). Choosing hyper-parameters by a test metric fits them to the test "
            "speakers, and the test UAR reported afterwards would be optimistic"
        )
    require_untested_search(config)
    from ser.search import check_study_storage  # optuna: only where a search runs

    check_study_storage(OmegaConf.select(config, "hydra.sweeper.storage"))
    params = OmegaConf.to_container(config.hydra.sweeper.params, resolve=True) or {}
    parser = OverridesParser.create()
    for key, value in params.items():
        (override,) = parser.parse_overrides([f"{key}={value}"])
        sweep = override.value()
        empty = (
            (override.is_interval_sweep() and not sweep.start < sweep.end)
            or (override.is_choice_sweep() and not sweep.list)
            or (override.is_range_sweep() and not list(override.sweep_iterator()))
        )
        if empty:
            raise ConfigError(
                f"hydra.sweeper.params.{key}={value}: the range is empty or inverted; give "
                "interval(low, high) with low < high, or a non-empty choice(...)"
            )
    return SweepPlan({"trial": int(config.hydra.sweeper.n_trials)})


class SweepProgress(Callback):
    """Checks the sweep and logs its plan (:func:`plan_sweep`) before the first job, then
    'run i of n' and an estimate of the time left before each job.

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
        # a fold that does not exist, or a corpus that cannot load, stops the sweep (exit 2)
        plan = exit_on_user_error(plan_sweep)(config, kwargs.get("config_name"))
        log.info(plan.line())
        if is_search(config):  # the study's SQLite file goes there before the first trial
            Path(config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)
        self.total = plan.total
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
    """After a multirun: summary tables and figures in the sweep folder (and on W&B).

    Failed runs (``error.json``) are named apart from missing ones, and any failure makes
    the process exit with code 1 once the summary is written, so scripts and CI notice.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if is_search(config):
            self._search_summary(sweep_dir)
            return
        runs, failures, _ = latest_protocol(collect(sweep_dir), collect(sweep_dir, "error.json"))
        if runs:
            cross = collect(sweep_dir, "cross_eval/*.json")
            summary = aggregate(runs, failures=failures, cross=cross)
            paths = write_summary(summary, sweep_dir)
            print(summary_markdown(summary))
            log.info("sweep summary: %s", ", ".join(str(p) for p in paths))
            wandb_cfg = (config.get("logger") or {}).get("wandb")
            if wandb_cfg:
                log_summary_to_wandb(summary, paths, wandb_cfg, group=config.task_name)
        else:
            log.warning("sweep %s: no finished runs to aggregate", sweep_dir)
            if failures:
                write_text_atomic(sweep_dir / "summary.md", failures_summary(failures))
        if failures:
            log.error(
                "sweep: %d run(s) failed (error.json in each; rerun the same command to retry "
                "them):\n  %s",
                len(failures), "\n  ".join(failure_line(f) for f in failures),
            )  # fmt: skip
            sys.exit(1)

    @staticmethod
    def _search_summary(search_dir: Path) -> None:
        """A search's trials, best first, in ``search_summary.md``, and the command that
        tests the best settings on every fold."""
        failures = collect(search_dir, "error.json")
        text = search_markdown(search_trials(search_dir))
        write_text_atomic(search_dir / "search_summary.md", text)
        print(text)
        if failures:
            log.error(
                "search: %d trial(s) failed:\n  %s",
                len(failures), "\n  ".join(failure_line(f) for f in failures),
            )  # fmt: skip
            sys.exit(1)


def log_summary_to_wandb(
    summary: Any, paths: list[Path], wandb_cfg: DictConfig, *, group: str
) -> None:
    """One W&B run (job type 'summary') in the sweep's group with the table and figures."""
    import wandb

    from ser.tables import summary_rows

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
