"""One trial of a hyper-parameter search (``hparams_search=...``): its settings trained on
the search's folds, validated, never tested."""

from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from ser.identity import config_hash
from ser.io import write_json_atomic
from ser.options import require_untested_search
from ser.record import command_line
from ser.runner import fit_and_test


def search_trial(cfg: DictConfig) -> dict[str, Any]:
    """Train the trial's settings on every fold of ``cfg.search.folds`` and validate them.

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
        per_fold[fold] = fit_and_test(fold_cfg)["val_uar_best"]
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
