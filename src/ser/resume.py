"""Which checkpoint a run continues from, and the checks that make continuing it safe.

A run resumes either from ``ckpt_path=`` (by hand) or, with ``skip_done``, from the
``last.ckpt`` that an interrupted run of the same config left in its folder (a requeued
SLURM job, a rerun sweep). The run folder records which config its checkpoints belong to
(:func:`claim_checkpoints`), so a folder reused by another config is started afresh.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig

from ser.checkpoint import DATA_KEY
from ser.checkpoint import FORMAT as CHECKPOINT_FORMAT
from ser.errors import ConfigError
from ser.identity import config_hash
from ser.io import write_json_atomic

log = logging.getLogger(__name__)

#: which config the run folder's checkpoints belong to
CHECKPOINTS_OWNER = "checkpoints.json"


def read_resume_checkpoint(ckpt_path: Path) -> dict[str, Any] | None:
    """The checkpoint a run resumes from, memory-mapped (read once for the checks below);
    ``None`` when it is not a checkpoint: the resume itself then says so, naming the file."""
    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:
        return None
    return checkpoint if isinstance(checkpoint, dict) else None


def check_resume_folder(checkpoint: dict[str, Any], ckpt_path: Path, output_dir: Path) -> None:
    """Resuming (``ckpt_path=``) continues a run in the folder its checkpoints were written
    to: only there does Lightning restore the best validation score (and ``metrics.csv``
    continue). In another folder the first validation after the resume would become the
    "best" and be tested, so such a checkpoint is refused, naming the folder to resume in.
    """
    if (checkpoint.get("ser") or {}).get("format") != CHECKPOINT_FORMAT:
        return  # not resumable at all: the resume says why
    folders = {
        Path(state["dirpath"]).resolve()
        for key, state in (checkpoint.get("callbacks") or {}).items()
        if key.startswith("ModelCheckpoint") and isinstance(state, dict) and state.get("dirpath")
    }
    here = (output_dir / "checkpoints").resolve()
    if folders and here not in folders:
        run_dir = sorted(folders)[0].parent
        raise ConfigError(
            f"ckpt_path={ckpt_path} continues the run in {run_dir}: in another folder it would "
            "lose that run's best val/uar and metrics. Resume it in its own folder: add "
            f"hydra.run.dir={run_dir}"
        )


def check_resume_data(checkpoint: dict[str, Any], datamodule: Any) -> None:
    """Refuse, before any audio is read, a checkpoint of other data: another corpus, fold,
    class set or front-end (:meth:`ser.data.SERDataModule.load_state_dict` names both)."""
    state = checkpoint.get(DATA_KEY)
    if state:
        datamodule.load_state_dict(state)


def interrupted_checkpoint(cfg: DictConfig) -> Path | None:
    """``checkpoints/last.ckpt`` of an interrupted run of the same config in this run folder
    (a requeued SLURM job, a killed sweep run being rerun), when it loads; else ``None``.

    The checkpoints belong to the config whose hash :func:`claim_checkpoints` wrote; a
    checkpoint cut short by the kill does not load and is not resumed from.
    """
    output_dir = Path(cfg.paths.output_dir)
    last = output_dir / "checkpoints" / "last.ckpt"
    try:
        claimed = json.loads((output_dir / CHECKPOINTS_OWNER).read_text()).get("config_hash")
    except (OSError, ValueError, AttributeError):
        return None
    if claimed != config_hash(cfg) or not last.is_file():
        return None
    try:
        torch.load(last, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:
        log.warning("not resuming from %s: it does not load (%s)", last, err)
        return None
    return last


def clear_checkpoints(output_dir: Path) -> None:
    """Delete the checkpoints a run starting afresh in ``output_dir`` must not continue from:
    ``checkpoints/`` (another config's, or unloadable) and Lightning's ``hpc_ckpt_*.ckpt``.

    Lightning's own SLURM requeue (``sbatch --signal=USR1@...``) saves the latter inside an
    epoch and, given no ``ckpt_path``, would resume from one: not exactly, and without
    ``resumed_from``. Every rank of a DDP run clears, so a file may already be gone.
    """
    shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
    for hpc in output_dir.glob("hpc_ckpt_*.ckpt"):
        hpc.unlink(missing_ok=True)


def claim_checkpoints(cfg: DictConfig) -> None:
    """Record in the run folder which config its checkpoints belong to."""
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output_dir / CHECKPOINTS_OWNER, {"config_hash": config_hash(cfg)})


def resume_epochs_as_epochs(trainer: L.Trainer) -> None:
    """Resume a ``max_steps`` run from an end-of-epoch ``last.ckpt`` as Lightning resumes a
    ``max_epochs`` run: with the next epoch, exactly where the uninterrupted run goes on.

    With ``max_steps`` set, Lightning 2.6 marks every resume as restarting inside an epoch,
    even from a checkpoint saved at an epoch's end (``_FitLoop.restarting``; its issue
    #19617). It then trains one extra step and draws the next epoch's shuffle at another
    point, so the resumed run trains on other batches than the uninterrupted one. ``ser``
    saves ``last.ckpt`` only at epoch ends, so the epoch-based path is the right one.
    """
    trainer.fit_loop._iteration_based_training = lambda: False
