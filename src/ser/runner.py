"""One run, start to end: skip it when done, resume it when interrupted, fit, test the
checkpoint with the best ``val/uar``, write ``results.json`` and score it on other corpora.

Everything is built from the Hydra config (data module, model, callbacks, loggers,
trainer); nothing here catches errors (:func:`ser.task.train` does).
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from ser.cross_eval import cross_evaluate
from ser.errors import ConfigError
from ser.identity import finished_results
from ser.instantiate import instantiate_dict, instantiate_trainer
from ser.io import write_json_atomic, write_text_atomic
from ser.loggers import finish_loggers
from ser.options import check_run_options, require_complete
from ser.out_of_memory import out_of_memory_advice
from ser.quiet import resuming_in_own_folder
from ser.record import print_summary, results_record
from ser.resume import (
    check_resume_data,
    check_resume_folder,
    claim_checkpoints,
    clear_checkpoints,
    interrupted_checkpoint,
    read_resume_checkpoint,
    resume_epochs_as_epochs,
)

log = logging.getLogger(__name__)


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


def fit_and_test(cfg: DictConfig) -> dict[str, Any]:
    """Fit, test and record one run; returns its results (also in ``results.json``).

    With ``cfg.skip_done`` a run whose folder already holds the results of the same config
    (same :func:`~ser.identity.config_hash`) is not run again: its stored results are
    returned. A folder left by an interrupted run of the same config resumes from its
    ``last.ckpt``; one left by another config is cleared and run anew.
    """
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
            clear_checkpoints(Path(cfg.paths.output_dir))
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
    resume_epochs_as_epochs(trainer)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    if trainer.is_global_zero:
        claim_checkpoints(cfg)
    with out_of_memory_advice(cfg), resuming_in_own_folder() if ckpt_path else nullcontext():
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
        if cfg.get("test"):
            with out_of_memory_advice(cfg):
                trainer.test(model, datamodule=datamodule, ckpt_path=best_path, weights_only=False)
            test = model.test_results
        results = results_record(
            cfg,
            datamodule=datamodule,
            fold=fold,
            trainer=trainer,
            best_path=best_path,
            best_score=float(checkpoint.best_model_score),
            test=test,
            class_names=model.class_names,
            resumed_from=resumed_from,
            wall_time_s=time.perf_counter() - started,
        )
        if trainer.is_global_zero:
            output_dir = Path(cfg.paths.output_dir)
            write_text_atomic(output_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
            write_json_atomic(output_dir / "results.json", results)
            print_summary(results)
            cross_evaluate(cfg, results)
    finish_loggers()
    return results
