"""The training task behind ``train.py``: fit one model on one fold, test it, record it.

``train(cfg)`` composes nothing itself: it instantiates what the Hydra config describes
(data module, model, callbacks, loggers, trainer), fits, tests the checkpoint with the best
``val/uar`` and writes ``results.json`` (atomically) into the run folder.
"""

from __future__ import annotations

import copy
import gc
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

import ser
from ser.checkpoint import DATA_KEY
from ser.checkpoint import FORMAT as CHECKPOINT_FORMAT
from ser.config import (
    exit_on_user_error,
    model_label,
    require_complete,
    slurm_tasks_per_node,
    user_error,
)
from ser.data.corpora import Utterance
from ser.errors import ConfigError, OutOfMemoryError, SERError
from ser.hardware import device_record
from ser.identity import IDENTITY_VERSION, config_hash, finished_results, protocol_hash
from ser.io import write_json_atomic, write_text_atomic
from ser.options import check_run_options, data_config, in_multirun, require_untested_search
from ser.quiet import quiet_library_notices
from ser.runlock import RunFolderBusyError, distributed_rank, run_folder_lock

log = logging.getLogger(__name__)


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


def instantiate_dict(cfg: DictConfig | None, **kwargs: Any) -> list[Any]:
    """Instantiate every non-null entry of a ``{name: {_target_: ...}}`` config node."""
    return [hydra.utils.instantiate(node, **kwargs) for node in (cfg or {}).values() if node]


def instantiate_trainer(cfg: DictConfig, **kwargs: Any) -> L.Trainer:
    """The Lightning trainer of ``cfg`` (the ``trainer`` node) with ``kwargs`` added.

    Lightning checks its arguments in the constructor and names the bad one in a
    ``ValueError``, ``TypeError`` or ``MisconfigurationException`` (``trainer.precision=16x``,
    ``trainer.devices=0``). Those are option values set in the config, so they become a
    :class:`ConfigError`. A user error raised inside (``hardware=gpu`` without a GPU) stays
    as it is, and anything else keeps its traceback.

    Under ``srun --ntasks=N`` (without ``--ntasks-per-node``) Lightning's SLURM check wants
    ``SLURM_NTASKS_PER_NODE``; it is filled in from ``SLURM_TASKS_PER_NODE``. Library
    notices that do not apply to the run stay out of its log (:mod:`ser.quiet`).
    """
    quiet_library_notices()
    per_node = slurm_tasks_per_node()
    if per_node is not None:
        os.environ.setdefault("SLURM_NTASKS_PER_NODE", str(per_node))
    try:
        return hydra.utils.instantiate(cfg, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, SERError) or not isinstance(
            cause, ValueError | TypeError | MisconfigurationException
        ):
            raise
        raise ConfigError(f"trainer: {cause}") from err


def print_config(cfg: DictConfig) -> None:
    """Print the resolved config as a tree (rich)."""
    from rich import print as rprint
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    for key, node in cfg.items():
        text = OmegaConf.to_yaml(node, resolve=True) if OmegaConf.is_config(node) else str(node)
        tree.add(f"[bold]{key}[/bold]").add(Syntax(text, "yaml", theme="ansi_dark"))
    rprint(tree)


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


#: which config the run folder's checkpoints belong to
CHECKPOINTS_OWNER = "checkpoints.json"


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


def claim_checkpoints(cfg: DictConfig) -> None:
    """Record in the run folder which config its checkpoints belong to."""
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output_dir / CHECKPOINTS_OWNER, {"config_hash": config_hash(cfg)})


#: how cuDNN, cuBLAS and the CUDA runtime report an allocation that failed: as a plain
#: RuntimeError, not as the caching allocator's torch.OutOfMemoryError
OUT_OF_MEMORY_MARKS = (
    "CUDNN_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_ALLOC_FAILED", "CUDA error: out of memory",
)  # fmt: skip


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says the GPU ran out of memory.

    Example:
        >>> is_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"))
        True
        >>> is_out_of_memory(RuntimeError("CUDA error: an illegal memory access"))
        False
    """
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and any(mark in str(err) for mark in OUT_OF_MEMORY_MARKS)


@contextmanager
def out_of_memory_advice(cfg: DictConfig) -> Iterator[None]:
    """Turn CUDA's out-of-memory errors (the allocator's, cuDNN's, cuBLAS's) into one
    :class:`~ser.errors.OutOfMemoryError` that names the settings to lower."""
    try:
        yield
    except RuntimeError as err:
        if isinstance(err, OutOfMemoryError) or not is_out_of_memory(err):
            raise
        first_line = (str(err).strip().splitlines() or ["CUDA out of memory"])[0]
        raise OutOfMemoryError(
            f"out of GPU memory ({first_line}). Lower datamodule.batch_size (now "
            f"{cfg.datamodule.batch_size}) or datamodule.eval_batch_size (now "
            f"{cfg.datamodule.get('eval_batch_size')}), train at width=small or with "
            "trainer.precision=bf16-mixed, or, in a ser_local sweep, run fewer jobs per GPU "
            "(hydra.launcher.runs_per_gpu)"
        ) from err


def command_line() -> str:
    """``python <script> <overrides>`` of the current Hydra job (for the record)."""
    if not HydraConfig.initialized():
        return ""
    hydra_cfg = HydraConfig.get()
    # the job name is the script's (train, sweep), also in a SLURM job started by submitit
    script = f"{hydra_cfg.job.name}.py" if hydra_cfg.job.name else Path(sys.argv[0]).name
    return " ".join(["python", script, *hydra_cfg.overrides.task])


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, test and record one run; returns the results dict (also in results.json).

    With ``cfg.skip_done`` a run whose folder already holds the results of the same config
    (same :func:`config_hash`) is not run again: its stored results are returned. A folder
    left by an interrupted or failed run (checkpoints but no results) is cleared and run anew.

    The run holds its folder's lock (:func:`ser.runlock.run_folder_lock`) throughout: a
    second process started on the same folder stops at once (one error line on its own,
    nothing written in a sweep), and the first is never disturbed.

    On its own, a user error prints one line and exits with code 2 (in a SLURM job, e.g.
    ``srun python train.py hardware=multinode``, it is also recorded in ``error.json``:
    a node without the GPUs the job needs). In a sweep, any error
    (a NaN loss, unreadable audio, out of memory, a crash in a model) fails this run only:
    it is logged, recorded in ``error.json`` and ``{}`` is returned, so the sweep goes on.
    """
    run = search_trial if cfg.get("search") else _train
    output_dir = Path(cfg.paths.output_dir)
    if not in_multirun():
        if os.environ.get("SLURM_JOB_ID") and distributed_rank() == 0:
            run = _recording_failure(run)  # a batch job's log is not where users look first
        return exit_on_user_error(_locked(run))(cfg)
    with ExitStack() as stack:
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
            _finish_loggers(exit_code=1)
    # the failed run's trainer and tensors are garbage now: give their memory back
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {}


def _recording_failure(run: Any) -> Any:
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


def _locked(run: Any) -> Any:
    """``run`` holding its run folder's lock (:mod:`ser.runlock`)."""

    def locked(cfg: DictConfig) -> dict[str, Any]:
        with run_folder_lock(cfg.paths.output_dir):
            return run(cfg)

    return locked


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
        "model": _label(cfg),
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


def log_file() -> str | None:
    """The job's log file (Hydra's job logging), where the failed run's traceback is."""
    if not HydraConfig.initialized():
        return None
    try:
        return OmegaConf.select(HydraConfig.get().job_logging, "handlers.file.filename")
    except OmegaConfBaseException:  # no job log configured (a config composed by hand)
        return None


def _train(cfg: DictConfig) -> dict[str, Any]:
    """:func:`train` without its error handling."""
    started = time.perf_counter()
    require_complete(cfg)
    check_run_options(cfg)
    ckpt_path = resumed_from = cfg.get("ckpt_path")
    resume = read_resume_checkpoint(Path(ckpt_path)) if ckpt_path else None
    if resume is not None:
        check_resume_folder(resume, Path(ckpt_path), Path(cfg.paths.output_dir))
    if cfg.get("skip_done") and not ckpt_path:
        done = finished_results(cfg)
        if done is not None:
            log.info("skipping %s: results.json with the same config exists", cfg.paths.output_dir)
            cross_evaluate(cfg, done)
            return done
        ckpt_path = resumed_from = interrupted_checkpoint(cfg)
        if ckpt_path is None:
            shutil.rmtree(Path(cfg.paths.output_dir) / "checkpoints", ignore_errors=True)
        else:
            log.info("resuming %s from %s", cfg.paths.output_dir, ckpt_path)
            resume = read_resume_checkpoint(ckpt_path)
    if cfg.get("print_config", True):
        print_config(cfg)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.datamodule)
    fold = datamodule.fold  # fails early, listing valid folds, when cfg.fold is out of range
    if resume is not None:
        check_resume_data(resume, datamodule)
    model = hydra.utils.instantiate(
        cfg.model, class_names=list(datamodule.classes), input_shape=datamodule.input_shape
    )
    callbacks = instantiate_dict(cfg.callbacks)
    loggers = instantiate_dict(cfg.logger)
    trainer = instantiate_trainer(cfg.trainer, callbacks=callbacks, logger=loggers)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    if trainer.is_global_zero:
        claim_checkpoints(cfg)
    with out_of_memory_advice(cfg):
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
    checkpoint = trainer.checkpoint_callback
    results: dict[str, Any] = {}
    if isinstance(checkpoint, ModelCheckpoint):
        best_path = checkpoint.best_model_path
        if not best_path:
            raise ConfigError(
                "no checkpoint with a val/uar score was saved, so there is nothing to test: "
                f"training ended after {trainer.global_step} step(s) and "
                f"{trainer.current_epoch} epoch(s) without a validation (check "
                "trainer.max_steps, trainer.max_epochs, trainer.limit_val_batches and "
                "trainer.check_val_every_n_epoch)"
            )
        test: dict[str, Any] = {}
        predictions: list[dict[str, Any]] = []
        if cfg.get("test"):
            with out_of_memory_advice(cfg):
                trainer.test(model, datamodule=datamodule, ckpt_path=best_path, weights_only=False)
            test = model.test_results
            predictions = prediction_records(test, datamodule.utterances["test"], model.class_names)
        # mmap: reads the counters without loading the weights and optimiser state
        best = torch.load(best_path, map_location="cpu", weights_only=False, mmap=True)
        results = {
            "model": _label(cfg),
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
            "val_uar_best": float(checkpoint.best_model_score),
            # test=false (a hyper-parameter search): no test metrics, no predictions
            "test_uar": test.get("uar"),
            "test_wa": test.get("wa"),
            "test_seg_uar": test.get("seg_uar"),
            "recall": test.get("recall"),
            "confusion": test.get("confusion"),
            **({"predictions": predictions} if test else {}),
            "n_test_utterances": len(predictions),
            "dropped_files": datamodule.dropped,
            "epochs_trained": trainer.current_epoch,
            "resumed_from": None if resumed_from is None else str(resumed_from),
            "steps_trained": trainer.global_step,
            "wall_time_s": time.perf_counter() - started,
            "versions": versions(),
            "environment": environment(trainer),
            "config_hash": config_hash(cfg),
            "protocol_hash": protocol_hash(cfg),
            "identity_version": IDENTITY_VERSION,
            "command": command_line(),
        }
        if trainer.is_global_zero:
            output_dir = Path(cfg.paths.output_dir)
            write_text_atomic(output_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
            write_json_atomic(output_dir / "results.json", results)
            print_summary(results)
            cross_evaluate(cfg, results)
    _finish_loggers()
    return results


def _label(cfg: DictConfig) -> str | None:
    """The run's model and front-end (:func:`ser.config.model_label`), ``None`` when the
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


def cross_evaluate(cfg: DictConfig, results: dict[str, Any]) -> None:
    """``+cross_eval=[emovo,ravdess]``: score the run's best checkpoint on every utterance of
    each of those corpora (``data=<name>``, as ``python -m ser.evaluate`` does: the
    checkpoint's normalisation, target classes it does not know dropped).

    Each result goes to ``<run dir>/cross_eval/<name>.json`` beside ``results.json``; one
    that exists is not computed again, so a resumed sweep skips it too.
    """
    from ser.evaluate import evaluate
    from ser.inference import Predictor

    names = list(cfg.get("cross_eval") or [])
    if not names or results.get("test_uar") is None:
        return
    folder = Path(cfg.paths.output_dir) / "cross_eval"
    predictor = None
    for name in names:
        path = folder / f"{name}.json"
        if path.is_file():
            continue
        predictor = predictor or Predictor.from_checkpoint(results["best_checkpoint"])
        corpus = hydra.utils.instantiate(data_config(name, root_dir=cfg.paths.root_dir))
        record = evaluate(
            predictor,
            corpus,
            drop_unknown=True,
            cache_dir=cfg.paths.cache_dir,
            progress=bool(cfg.datamodule.get("progress", True)),
        )
        keys = ("model", "fold", "seed", "protocol_hash", "config_hash")
        record |= {k: results[k] for k in keys} | {
            "train_corpus": results["corpus"],
            "test_corpus": name,
        }
        write_json_atomic(path, record)
        log.info("cross-corpus: %s fold %s on %s: UAR %.4f", results["model"],
                 results["fold"], name, record["uar"])  # fmt: skip


def search_trial(cfg: DictConfig) -> dict[str, Any]:
    """One trial of a hyper-parameter search (``hparams_search=...``): the trial's settings
    trained on every fold of ``cfg.search.folds`` and validated, never tested.

    Each fold is a run of its own in ``<trial>/fold<k>/`` (skipped when done, resumed when
    interrupted), built with ``test=false``, so its test speakers' audio is never read. The
    objective, ``val_uar_mean``, is the mean over the folds of the best validation UAR. The
    trial's ``results.json`` records it per fold, with ``test_uar: null``.
    """
    require_untested_search(cfg)
    started = time.perf_counter()
    trial_dir = Path(cfg.paths.output_dir)
    n_folds = len(hydra.utils.instantiate(cfg.data).folds())
    folds = list(range(n_folds)) if cfg.search.folds == "all" else list(cfg.search.folds)
    per_fold = {}
    for fold in folds:
        fold_cfg = copy.deepcopy(cfg)
        with open_dict(fold_cfg):
            fold_cfg.fold = fold
            fold_cfg.search = None
            fold_cfg.paths.output_dir = str(trial_dir / f"fold{fold}")
        per_fold[fold] = _train(fold_cfg)["val_uar_best"]
    values = list(per_fold.values())
    results = {
        "objective": "val/uar_mean",
        "val_uar_mean": statistics.fmean(values),
        "val_uar_std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "val_uar_per_fold": {str(k): v for k, v in per_fold.items()},
        "test_uar": None,
        "params": trial_overrides(cfg),
        "wall_time_s": time.perf_counter() - started,
        "config_hash": config_hash(cfg),
        "command": command_line(),
    }
    write_json_atomic(trial_dir / "results.json", results)
    print(f"search trial: mean val UAR {results['val_uar_mean']:.4f} over folds {folds}")
    return results


def trial_overrides(cfg: DictConfig) -> list[str]:
    """The overrides that give a search trial's settings in a plain run or sweep: the
    trial's command line without the search's own options (``hparams_search``, ``search``,
    ``hydra``), plus the augmentations the search preset chose (they are not on it)."""
    if not HydraConfig.initialized():
        return []
    own = ("hparams_search=", "search.", "+search.", "hydra.", "hydra/", "test=")
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith(own)]
    augment = [
        name
        for node in (OmegaConf.select(cfg, "model.augment"), cfg.datamodule.get("waveform_augment"))
        if node
        for name in node
        if name != "_target_"
    ]
    if augment and not any(o.startswith("augment=") for o in overrides):
        overrides.append(f"augment=[{','.join(augment)}]")
    return overrides


def print_summary(results: dict[str, Any]) -> None:
    """A few lines: which speaker, which epoch, validation and test scores."""
    test = (
        f"  test UAR {results['test_uar']:.4f}  WA {results['test_wa']:.4f}  "
        f"({results['n_test_utterances']} utterances)"
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


def _finish_loggers(exit_code: int = 0) -> None:
    """Close the W&B run so that each run of a multirun is its own W&B run. Only a W&B
    logger imports wandb: CSV runs work where it is not installed."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)
