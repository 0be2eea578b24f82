"""What a run leaves behind: ``results.json`` (scores, predictions, where and on what it
ran), ``error.json`` for a run that failed, and the few summary lines it prints."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import ser
from ser.data.corpora import Utterance
from ser.data.folds import Fold
from ser.errors import user_error
from ser.hardware import device_record
from ser.identity import IDENTITY_VERSION, config_hash, protocol_hash
from ser.io import write_json_atomic
from ser.naming import model_label


def code_commit() -> str | None:
    """The git commit of the ``ser`` checkout that runs (``+dirty`` with uncommitted
    changes), or ``None`` outside a git checkout."""
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def versions() -> dict[str, str]:
    """Versions of the software that produced a result (``commit``: :func:`code_commit`)."""
    import torchaudio
    import torchmetrics

    return {
        "ser": ser.__version__,
        "commit": code_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__,
        "lightning": L.__version__,
        "torchmetrics": torchmetrics.__version__,
        "cuda": torch.version.cuda or "none",
        "cudnn": str(torch.backends.cudnn.version())
        if torch.backends.cudnn.is_available()
        else "none",
    }


def environment(trainer: L.Trainer) -> dict[str, Any]:
    """Where a run ran: the device it had (:func:`ser.hardware.device_record`: kind, name,
    count, precision), processes, visible GPUs, CPU threads and,
    under SLURM, the job (``slurm``: job id, array task, node list, how often it was
    requeued)."""
    slurm = {
        key: os.environ.get(f"SLURM_{name}")
        for key, name in (
            ("job_id", "JOB_ID"), ("array_job_id", "ARRAY_JOB_ID"),
            ("array_task_id", "ARRAY_TASK_ID"), ("nodelist", "JOB_NODELIST"),
            ("restart_count", "RESTART_COUNT"),
        )
    }  # fmt: skip
    return {
        "slurm": slurm if slurm["job_id"] else None,
        "accelerator": type(trainer.accelerator).__name__,
        **device_record(trainer),
        "world_size": trainer.world_size,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "torch_threads": torch.get_num_threads(),
        "host": platform.node(),
    }


def command_line() -> str:
    """``python <script> <overrides>`` of the current Hydra job (for the record)."""
    if not HydraConfig.initialized():
        return ""
    hydra_cfg = HydraConfig.get()
    # the job name is the script's (train, sweep), also in a SLURM job started by submitit
    script = f"{hydra_cfg.job.name}.py" if hydra_cfg.job.name else Path(sys.argv[0]).name
    return " ".join(["python", script, *hydra_cfg.overrides.task])


def log_file() -> str | None:
    """The job's log file (Hydra's job logging), where the failed run's traceback is."""
    if not HydraConfig.initialized():
        return None
    try:
        return OmegaConf.select(HydraConfig.get().job_logging, "handlers.file.filename")
    except OmegaConfBaseException:  # no job log configured (a config composed by hand)
        return None


def run_label(cfg: DictConfig) -> str | None:
    """The run's model and front-end (:func:`ser.naming.model_label`), ``None`` when the
    config is too broken to say."""
    name, features = OmegaConf.select(cfg, "model.name"), OmegaConf.select(cfg, "features")
    if name is None:
        return None
    return model_label(
        name, {} if features is None else OmegaConf.to_container(features, resolve=True)
    )


def prediction_records(
    test: dict[str, Any], utterances: list[Utterance], class_names: list[str]
) -> list[dict[str, Any]]:
    """One record per tested utterance (``results.json``'s ``predictions``): id, speaker,
    true label, predicted class and class probabilities, from the test step's outputs
    (:attr:`ser.module.SERModule.test_results`) and the test split's utterances."""
    return [
        {
            "id": utterances[index].id,
            "speaker": utterances[index].speaker,
            "label": utterances[index].label,
            "pred": class_names[pred],
            "probs": dict(zip(class_names, probs, strict=True)),
        }
        for index, pred, probs in zip(test["utterances"], test["preds"], test["probs"], strict=True)
    ]


def results_record(
    cfg: DictConfig,
    *,
    datamodule: Any,
    fold: Fold,
    trainer: L.Trainer,
    best_path: str,
    best_score: float,
    test: dict[str, Any],
    class_names: list[str],
    resumed_from: str | Path | None,
    wall_time_s: float,
) -> dict[str, Any]:
    """``results.json`` of a finished run: its fold and speakers, the best checkpoint and its
    validation score, the test scores and one prediction per test utterance (``test`` empty:
    not tested), and what produced it (versions, device, config hashes, command)."""
    predictions = (
        prediction_records(test, datamodule.utterances["test"], class_names) if test else []
    )
    # mmap: reads the counters without loading the weights and optimiser state
    best = torch.load(best_path, map_location="cpu", weights_only=False, mmap=True)
    return {
        "model": run_label(cfg),
        "features": datamodule.features.record(),
        "fold": fold.index,
        "test_speakers": list(fold.test),
        "val_speakers": list(fold.val),
        "train_speakers": list(fold.train),
        "corpus": datamodule.corpus.name,
        "n_folds": len(datamodule.corpus.folds()),
        "classes": list(datamodule.classes),
        "seed": cfg.seed,
        "best_epoch": best["epoch"],
        "best_step": best["global_step"],
        "best_checkpoint": best_path,
        "val_uar_best": best_score,
        # test=false (a hyper-parameter search): no test metrics, no predictions
        "test_uar": test.get("uar"),
        "test_wa": test.get("wa"),
        "test_f1": test.get("f1"),
        "test_seg_uar": test.get("seg_uar"),
        "recall": test.get("recall"),
        "confusion": test.get("confusion"),
        **({"predictions": predictions} if test else {}),
        "n_test_utterances": len(predictions),
        "dropped_files": datamodule.dropped,
        "epochs_trained": trainer.current_epoch,
        "resumed_from": None if resumed_from is None else str(resumed_from),
        "steps_trained": trainer.global_step,
        "wall_time_s": wall_time_s,
        "versions": versions(),
        "environment": environment(trainer),
        "config_hash": config_hash(cfg),
        "protocol_hash": protocol_hash(cfg),
        "identity_version": IDENTITY_VERSION,
        "command": command_line(),
    }


def record_failure(
    path: Path, cfg: DictConfig, err: BaseException, *, wall_time_s: float, log: str | None = None
) -> None:
    """Write ``error.json``: what failed, why, and where its log is (``log``, by default the
    Hydra job's log file), as strict JSON, atomically."""
    cause = user_error(err) or err
    try:
        hashes = {"config_hash": config_hash(cfg), "protocol_hash": protocol_hash(cfg)}
    except Exception:  # the config itself does not resolve: that is the failure recorded
        hashes = {"config_hash": None, "protocol_hash": None}
    record = {
        "model": run_label(cfg),
        "fold": cfg.get("fold"),
        "seed": cfg.get("seed"),
        "error": type(cause).__name__,
        "message": str(cause),
        "log": log or log_file(),
        "traceback": "".join(traceback.format_exception(err)),
        "wall_time_s": wall_time_s,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command_line(),
        **hashes,
    }
    write_json_atomic(path, record)


def print_summary(results: dict[str, Any]) -> None:
    """A few lines: which speaker, which epoch, validation and test scores."""
    test = (
        f"  test UAR {results['test_uar']:.4f}  WA {results['test_wa']:.4f}  "
        f"macro-F1 {results['test_f1']:.4f}  ({results['n_test_utterances']} utterances)"
        if results["test_uar"] is not None
        else "  not tested (test=false)"
    )
    print(
        f"\n{results['model']} fold {results['fold']} ({results['corpus']}): "
        f"test speaker {','.join(results['test_speakers'])}, "
        f"val speaker {','.join(results['val_speakers'])}\n"
        f"  best epoch {results['best_epoch']}: val UAR {results['val_uar_best']:.4f}\n"
        f"{test}\n"
    )
