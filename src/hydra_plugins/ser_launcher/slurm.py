"""``hydra/launcher=slurm``: submitit's SLURM launcher, made resumable and failure-tolerant.

On top of hydra-submitit-launcher (one SLURM array job per sweep, one task per run):

- No ``sbatch`` on this machine is one clear error before anything is submitted or written.
- Runs whose folder already holds ``results.json`` of the same config (``ser.task``'s config
  hash) are not submitted again: rerunning a sweep after ``scancel``, a node failure or a
  killed job resubmits only the missing runs, and those resume from their ``last.ckpt``.
- A job that ends without returning (killed for memory, cancelled, out of time with no
  requeue left) is logged with its SLURM log file and recorded in ``error.json`` in its run
  folder; the other jobs go on and the sweep summary names it as failed.
- On the signal SLURM sends before the time limit (``--signal=USR2@signal_delay_s``),
  submitit requeues the job (``max_num_timeout`` times) and the run resumes from
  ``last.ckpt`` (:func:`ser.task.train`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import DictConfig, OmegaConf, open_dict

from ser.errors import require_sbatch

log = logging.getLogger(__name__)


class ResumableSlurmLauncher(SlurmLauncher):
    """``SlurmLauncher`` that skips finished runs and survives jobs that die."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
        from ser.identity import finished_results

        require_sbatch()
        returns: list[JobReturn | None] = [None] * len(job_overrides)
        todo = []
        for index, overrides in enumerate(job_overrides):
            with self._job_config(overrides, initial_job_idx + index) as cfg:
                done = finished_results(cfg) if cfg.get("skip_done") else None
                if done is None:
                    todo.append(index)
                    continue
                metric = str(cfg.get("optimized_metric", "")).replace("/", "_")
                returns[index] = JobReturn(
                    overrides=list(overrides),
                    cfg=cfg,
                    working_dir=str(cfg.paths.output_dir),
                    task_name=cfg.get("task_name"),
                    status=JobStatus.COMPLETED,
                    _return_value=done.get(metric),
                )
        log.info(
            "slurm: %d of %d runs already have results; submitting %d",
            len(job_overrides) - len(todo), len(job_overrides), len(todo),
        )  # fmt: skip
        if not todo:
            return returns
        submitted = time.time()
        jobs = self._submit(
            [list(job_overrides[i]) for i in todo], [initial_job_idx + i for i in todo]
        )
        for index, job in zip(todo, jobs, strict=True):
            overrides = job_overrides[index]
            try:
                returns[index] = job.results()[0]
            except Exception as err:  # the job died: its run is recorded, the others go on
                returns[index] = self._record_dead_job(
                    overrides, initial_job_idx + index, job, err, time.time() - submitted
                )
        return returns

    def _submit(self, job_overrides: list[list[str]], indices: list[int]) -> list[Any]:
        """Submit one array job (one task per run); the submitit executor as the base does."""
        import submitit

        params = dict(self.params)
        init = {
            "folder": params.pop("submitit_folder"),
            "slurm_max_num_timeout": params.pop("max_num_timeout"),
        }
        executor = submitit.AutoExecutor(cluster="slurm", **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{k if k in base else f"slurm_{k}": v for k, v in params.items()}
        )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("slurm: sweep folder %s", sweep_dir)
        job_params = []
        for index, overrides in zip(indices, job_overrides, strict=True):
            log.info("\t#%d : %s", index, " ".join(filter_overrides(overrides)))
            job_params.append(
                (overrides, "hydra.sweep.dir", index, f"job_id_for_{index}", Singleton.get_state())
            )
        return executor.map_array(self, *zip(*job_params, strict=True))

    @contextmanager
    def _job_config(self, overrides: Sequence[str], index: int) -> Iterator[DictConfig]:
        """The job's config, with Hydra's runtime values as the job will see them (its run
        folder), current while inside; the launcher's Hydra state is restored after."""
        state = Singleton.get_state()
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(cfg):
            cfg.hydra.job.num = index
            output_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
            cfg.hydra.runtime.output_dir = str(output_dir.absolute())
        HydraConfig.instance().set_config(cfg)
        try:
            with open_dict(cfg):
                task_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
            yield task_cfg
        finally:
            Singleton.set_state(state)

    def _record_dead_job(
        self, overrides: Sequence[str], index: int, job: Any, err: Exception, waited_s: float
    ) -> JobReturn:
        """``error.json`` for a job that ended without a result, naming its SLURM log."""
        from ser.record import record_failure

        logs = f"{job.paths.stdout} / {job.paths.stderr}"
        with self._job_config(overrides, index) as cfg:
            output_dir = Path(str(cfg.paths.output_dir))
            output_dir.mkdir(parents=True, exist_ok=True)
            error = output_dir / "error.json"
            if not error.is_file():  # a run that failed in Python wrote its own
                reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
                cause = RuntimeError(
                    f"SLURM job {job.job_id} ended with state {job.state} and no result "
                    f"(killed for memory or time, cancelled, or its node failed): {reason}"
                )
                record_failure(error, cfg, cause, wall_time_s=waited_s, log=logs)
        log.error(
            "slurm: job %s (%s) ended with state %s and no result; log: %s; recorded in %s",
            job.job_id, " ".join(filter_overrides(overrides)), job.state, logs, error,
        )  # fmt: skip
        return JobReturn(
            overrides=list(overrides),
            working_dir=str(output_dir),
            status=JobStatus.COMPLETED,
            _return_value=None,
        )
