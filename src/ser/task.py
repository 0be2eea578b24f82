"""The task behind ``train.py``: one run (:func:`ser.runner.fit_and_test`) or one search
trial (:func:`ser.trial.search_trial`), with the error handling that fits where it runs.

On its own a run fails loudly; in a sweep a failed run is recorded and the sweep goes on.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from ser.errors import exit_on_user_error
from ser.loggers import finish_loggers
from ser.options import in_multirun
from ser.record import record_failure
from ser.runlock import RunFolderBusyError, distributed_rank, run_folder_lock
from ser.runner import fit_and_test
from ser.trial import search_trial

log = logging.getLogger(__name__)

Run = Callable[[DictConfig], dict[str, Any]]

#: the exit code of a run stopped by SIGTERM, as a shell reports a process it killed
SIGTERM_EXIT_CODE = 128 + signal.SIGTERM


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, test and record one run; returns the results dict (also in results.json).

    With ``cfg.skip_done`` a run whose folder already holds the results of the same config
    is not run again (:func:`ser.runner.fit_and_test`).

    The run holds its folder's lock (:func:`ser.runlock.run_folder_lock`) throughout: a
    second process started on the same folder stops at once (one error line on its own,
    nothing written in a sweep), and the first is never disturbed.

    On its own, a user error prints one line and exits with code 2 (in a SLURM job, e.g.
    ``srun python train.py hardware=multinode``, it is also recorded in ``error.json``:
    a node without the GPUs the job needs). In a sweep, any error
    (a NaN loss, unreadable audio, out of memory, a crash in a model) fails this run only:
    it is logged, recorded in ``error.json`` and ``{}`` is returned, so the sweep goes on.
    """
    run: Run = search_trial if cfg.get("search") else fit_and_test
    output_dir = Path(cfg.paths.output_dir)
    if not in_multirun():
        if os.environ.get("SLURM_JOB_ID") and distributed_rank() == 0:
            run = _recording_failure(run)  # a batch job's log is not where users look first
        with _exit_on_sigterm(output_dir):
            return exit_on_user_error(_locked(run))(cfg)
    with ExitStack() as stack:
        stack.enter_context(_exit_on_sigterm(output_dir))
        try:
            stack.enter_context(run_folder_lock(output_dir))
        except RunFolderBusyError as err:  # the folder is another process's: write nothing
            log.error("run %s not started: %s", output_dir, err)
            return {}
        error_path = output_dir / "error.json"
        error_path.unlink(missing_ok=True)  # a retried run reports its own outcome
        started = time.perf_counter()
        try:
            return run(cfg)
        except Exception as err:
            log.error("run %s failed", output_dir, exc_info=err)
            record_failure(error_path, cfg, err, wall_time_s=time.perf_counter() - started)
            finish_loggers(exit_code=1)
    # the failed run's trainer and tensors are garbage now: give their memory back
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {}


@contextmanager
def _exit_on_sigterm(output_dir: Path) -> Iterator[None]:
    """A run stopped by SIGTERM (``kill``, ``scancel``, a SLURM time limit) exits with
    :data:`SIGTERM_EXIT_CODE`, saying how to resume it.

    Lightning stops at the next batch by raising ``SIGTERMException``, a ``SystemExit`` with
    code 0: the process, and a sweep with it, would end as if it had succeeded.
    """
    try:
        yield
    except SIGTERMException:
        resume = (
            "rerun the same command to resume it"
            if in_multirun()
            else f"resume it with the same command plus ckpt_path={output_dir}/checkpoints/"
            f"last.ckpt hydra.run.dir={output_dir}"
        )
        log.error("run %s stopped by SIGTERM before it finished (no results.json); %s",
                  output_dir, resume)  # fmt: skip
        finish_loggers(exit_code=SIGTERM_EXIT_CODE)
        sys.exit(SIGTERM_EXIT_CODE)


def _recording_failure(run: Run) -> Run:
    """``run`` that, when it fails, also records the failure in ``error.json`` (as a sweep's
    runs do), then lets it go on to the caller."""

    def recording(cfg: DictConfig) -> dict[str, Any]:
        started = time.perf_counter()
        error_path = Path(cfg.paths.output_dir) / "error.json"
        error_path.unlink(missing_ok=True)
        try:
            return run(cfg)
        except Exception as err:
            try:
                record_failure(error_path, cfg, err, wall_time_s=time.perf_counter() - started)
            except Exception as failed:  # the run's own error is the one to report
                log.warning("could not record the failure in %s: %s", error_path, failed)
            raise

    return recording


def _locked(run: Run) -> Run:
    """``run`` holding its run folder's lock (:mod:`ser.runlock`)."""

    def locked(cfg: DictConfig) -> dict[str, Any]:
        with run_folder_lock(cfg.paths.output_dir):
            return run(cfg)

    return locked
