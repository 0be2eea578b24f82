"""The ``ser.*`` OmegaConf resolvers the configs use (:func:`register_resolvers`)."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ser.hardware import GPU_ACCELERATORS, gpu_count, slurm_tasks_per_node
from ser.naming import model_label


def _gpu_visible() -> bool:
    return gpu_count() > 0


def _wandb_offline() -> bool:
    """Offline unless W&B credentials exist (env key or ``wandb login``'s netrc entry)."""
    mode = os.environ.get("WANDB_MODE", "")
    if mode in ("offline", "dryrun", "disabled"):
        return True
    if mode == "online" or os.environ.get("WANDB_API_KEY"):
        return False
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is None
    except (FileNotFoundError, netrc.NetrcParseError):
        return True


def _seed_range(first: int, count: int) -> str:
    """Sweep values of ``seed`` for ``count`` repeated seeds starting at ``first``."""
    return str(first) if int(count) == 1 else f"range({int(first)},{int(first) + int(count)})"


def _seed_suffix(seed: int, count: int) -> str:
    """Run-folder suffix naming the seed when seeds are repeated."""
    return "" if int(count) == 1 else f"-seed{seed}"


def _fold_range(data: Any) -> str:
    """Sweep values of ``fold``: every fold of the corpus that the ``data`` config describes.

    Without ``fold=...`` on the command line a sweep follows the corpus (10 folds for
    Emo-DB, 6 for EMOVO, K for a manifest) instead of a fixed list.
    """
    import hydra

    return f"range({len(hydra.utils.instantiate(data).folds())})"


def _slurm_devices() -> int:
    """``trainer.devices`` of ``hardware=multinode``: one per SLURM task of the node, or
    every visible GPU outside SLURM."""
    return slurm_tasks_per_node() or -1


def _on_gpu(accelerator: str) -> bool:
    """Whether ``trainer.accelerator`` names a GPU. Read from the config, not the host, since
    what it sets (``trainer.sync_batchnorm``) is part of the run's identity."""
    return accelerator in GPU_ACCELERATORS


def _digest(text: str) -> str:
    """8 hex digits naming ``text`` (a search trial's folder from its overrides)."""
    import hashlib

    return hashlib.sha256(str(text).encode()).hexdigest()[:8]


def _study_seed(seed: int, storage: str | None, study_name: str) -> int:
    from ser.search import study_seed  # optuna: only where a search runs

    return study_seed(seed, storage, study_name)


def _config_groups(sources: Any) -> str:
    """The config groups a user chooses from, one line each with its options (``--help``).

    Hydra's own list (``$APP_CONFIG_GROUPS``) also shows the folders that a config's
    defaults choose by interpolation (``conf/model/_width/``); folders whose name starts
    with ``_`` are such plumbing and left out, as are Hydra's own groups. ``sources`` are the
    config search path's entries (``hydra.runtime.config_sources``): ``conf/`` and any
    ``hydra.searchpath`` folder.
    """
    options: dict[str, set[str]] = {}
    for source in sources or []:
        if source.get("schema") != "file" or source.get("provider") == "hydra":
            continue
        root = Path(str(source.get("path")))
        for config in root.rglob("*.yaml"):
            group = config.parent.relative_to(root)
            if (
                group.parts
                and not any(p.startswith("_") for p in group.parts)
                and (group.parts[0] != "hydra")
            ):
                options.setdefault(group.as_posix(), set()).add(config.stem)
    return "\n".join(f"{g}: {', '.join(sorted(o))}" for g, o in sorted(options.items()))


def register_resolvers() -> None:
    """The ``ser.*`` resolvers the configs use (W&B mode, seed and fold sweeps, pinned memory
    where a GPU is visible). None of them may change a run's identity or numerics with the
    host: the config hash is taken where a sweep is submitted, the run trains elsewhere."""
    resolvers = {
        "ser.if_gpu": lambda on_gpu, otherwise: on_gpu if _gpu_visible() else otherwise,
        "ser.wandb_offline": _wandb_offline,
        "ser.seed_range": _seed_range,
        "ser.seed_suffix": _seed_suffix,
        "ser.fold_range": _fold_range,
        "ser.slurm_devices": _slurm_devices,
        "ser.on_gpu": _on_gpu,
        "ser.digest": _digest,
        "ser.study_seed": _study_seed,
        "ser.model_label": model_label,
        "ser.config_groups": _config_groups,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
