"""Where the Hydra configs are, and how entry points turn user mistakes into one clear line."""

from __future__ import annotations

import functools
import netrc
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from ser.errors import ConfigError, SERError

#: the repository's ``conf/`` (the package is installed in editable mode by ``make install``)
CONFIG_DIR = Path(os.environ.get("SER_CONFIG_DIR", Path(__file__).resolve().parents[2] / "conf"))


def _gpu_visible() -> bool:
    from ser.hardware import gpu_count

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


def slurm_tasks_per_node(environ: Mapping[str, str] = os.environ) -> int | None:
    """Tasks SLURM starts on each node of this job step, ``None`` outside SLURM.

    ``SLURM_NTASKS_PER_NODE`` is set only with ``--ntasks-per-node``; ``SLURM_TASKS_PER_NODE``
    always (``2``, ``2(x3)``, or uneven as ``2,1``: refused, DDP needs the same number of
    processes on every node).

    Example:
        >>> slurm_tasks_per_node({"SLURM_NTASKS": "6", "SLURM_TASKS_PER_NODE": "2(x3)"})
        2
        >>> slurm_tasks_per_node({}) is None
        True
    """
    if "SLURM_NTASKS_PER_NODE" in environ:
        return int(environ["SLURM_NTASKS_PER_NODE"])
    per_node = environ.get("SLURM_TASKS_PER_NODE")
    if not per_node or "SLURM_NTASKS" not in environ:
        return None
    counts = {int(part.split("(")[0]) for part in per_node.split(",")}
    if len(counts) > 1:
        raise ConfigError(
            f"SLURM starts an uneven number of tasks per node (SLURM_TASKS_PER_NODE={per_node}): "
            "DDP needs the same number on every node; use srun --ntasks-per-node=N"
        )
    return counts.pop()


def _slurm_devices() -> int:
    """``trainer.devices`` of ``hardware=multinode``: one per SLURM task of the node, or
    every visible GPU outside SLURM."""
    return slurm_tasks_per_node() or -1


def _on_gpu(accelerator: str) -> bool:
    """Whether ``trainer.accelerator`` names a GPU. Read from the config, not the host, since
    what it sets (``trainer.sync_batchnorm``) is part of the run's identity."""
    from ser.hardware import GPU_ACCELERATORS

    return accelerator in GPU_ACCELERATORS


#: openSMILE feature set and level -> the name of its config (``features=<name>``)
SMILE_TAGS = {
    ("eGeMAPSv02", "functionals"): "egemaps",
    ("ComParE_2016", "functionals"): "compare",
    ("eGeMAPSv02", "lld"): "egemaps_lld",
}


def features_tag(features: Any) -> str:
    """A short name of the front-end a ``features`` config node describes, for run folders
    and result rows; empty for the 3D log-mel front-end (the default, the runs' names
    before there was a choice).

    Example:
        >>> features_tag({"_target_": "ser.data.features.LogMel3D", "n_mels": 40})
        ''
        >>> features_tag({"_target_": "ser.data.smile.OpenSmile", "feature_set": "eGeMAPSv02",
        ...               "feature_level": "functionals"})
        'egemaps'
        >>> features_tag({"_target_": "ser.data.ssl.SSLEncoder", "model": "microsoft/wavlm-base",
        ...               "layer": 6})
        'wavlm-base-L6'
    """
    target = str(features.get("_target_", ""))
    if target.endswith("LogMel3D"):
        return ""
    if target.endswith("OpenSmile"):
        key = (features.get("feature_set"), features.get("feature_level"))
        return SMILE_TAGS.get(key, f"{key[0]}-{key[1]}")
    if target.endswith("SSLEncoder"):
        name = Path(str(features.get("model"))).name
        layers = features.get("layers")
        which = f"L{layers[0]}-{layers[1]}" if layers else f"L{features.get('layer')}"
        return f"{name}-{which}"
    return target.rsplit(".", 1)[-1].lower()


def model_label(name: str, features: Any) -> str:
    """The name of a model's runs and result rows: the model, and the front-end unless it
    is 3D log-mel (``linear-egemaps``, ``probe``, ``adsrnn``).

    Example:
        >>> model_label("adsrnn", {"_target_": "ser.data.features.LogMel3D"})
        'adsrnn'
    """
    tag = features_tag(features)
    return f"{name}-{tag}" if tag else str(name)


def _digest(text: str) -> str:
    """8 hex digits naming ``text`` (a search trial's folder from its overrides)."""
    import hashlib

    return hashlib.sha256(str(text).encode()).hexdigest()[:8]


def _study_seed(seed: int, storage: str | None, study_name: str) -> int:
    from ser.search import study_seed  # optuna: only where a search runs

    return study_seed(seed, storage, study_name)


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
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()


def check_choices(argv: list[str], config_dir: Path = CONFIG_DIR) -> None:
    """Reject ``group=option`` overrides naming an option that has no file in ``conf/<group>/``
    (or in a ``hydra.searchpath=[file://...]`` folder given on the command line).

    Hydra would report this too, over several lines; this says it in one and lists the
    valid options.

    Example:
        >>> check_choices(["model=adsrnn", "fold=3", "augment=[specaugment,mixup]"])
        >>> check_choices(["augment=[specaugment,blur]"])
        Traceback (most recent call last):
        ...
        ser.errors.ConfigError: unknown augment 'blur': valid options are mixup, noise, ...
        >>> check_choices(["model=lstm"])
        Traceback (most recent call last):
        ...
        ser.errors.ConfigError: unknown model 'lstm': valid options are acrnn, adrnn, adsrnn, ...
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = [a for a in argv if not a.startswith("-")]
    try:
        overrides = OverridesParser.create().parse_overrides(args)
    except Exception as err:  # Hydra reports syntax errors itself, with context
        if type(err).__name__ == "OverrideParseException":
            return
        raise
    config_dirs = [config_dir]
    for override in overrides:
        if override.key_or_group == "hydra.searchpath" and not override.is_delete():
            config_dirs += [
                Path(str(p).removeprefix("file://"))
                for p in override.value() or []
                if str(p).startswith("file://") or "://" not in str(p)
            ]
    for override in overrides:
        if override.key_or_group == "task_name" and not override.is_delete():
            check_task_name(str(override.value()))
    for override in overrides:
        group = override.key_or_group
        folders = [d / group for d in config_dirs if (d / group).is_dir()]
        if override.is_delete() or "." in group or "/" in group or not folders:
            continue
        if override.is_sweep_override():
            values = [str(v) for v in override.sweep_iterator()]
        elif isinstance(override.value(), list):  # several options at once: augment=[a,b]
            values = [str(v) for v in override.value()]
        else:
            values = [override.get_value_element_as_str()]
        valid = sorted({p.stem for folder in folders for p in folder.glob("*.yaml")})
        unknown = [v for v in values if v not in valid and v.lower() not in ("null", "none")]
        if unknown:
            raise ConfigError(
                f"unknown {group} {unknown[0]!r}: valid options are {', '.join(valid)}"
            )


def check_task_name(name: str) -> None:
    """``task_name`` names run folders (``outputs/<task_name>/``, ``sweeps/<task_name>-...``):
    one plain folder name, never a path that leaves them.

    Example:
        >>> check_task_name("results_bf16")
        >>> check_task_name("../..")
        Traceback (most recent call last):
        ...
        ser.errors.ConfigError: task_name=../..: give a plain name (letters, digits, - _ .) ...
    """
    if not name or name in (".", "..") or any(c in name for c in "/\\") or name.startswith("."):
        raise ConfigError(
            f"task_name={name}: give a plain name (letters, digits, - _ .) without / or a "
            "leading dot: it names the run folders under outputs/ and sweeps/"
        )


def _missing_option(key: str) -> str:
    return f"missing required option {key}: set it on the command line ({key}=...)"


def require_complete(cfg: Any) -> None:
    """Raise :class:`ConfigError` naming the first mandatory option (``???``) left unset."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(_missing_option(missing[0]))


def user_error(err: BaseException) -> BaseException | None:
    """The first user error in ``err``'s cause/context chain, or ``None`` for a bug.

    A user error is a :class:`~ser.errors.SERError` or an unset mandatory option
    (OmegaConf's ``MissingMandatoryValue``). Hydra wraps constructor errors in an
    ``InstantiationException`` and OmegaConf wraps resolver errors, hence the walk along
    the chain. Nothing else counts, not even a ``ValueError`` raised while instantiating
    the config: that may be a bug, and it keeps its traceback.
    """
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, SERError | MissingMandatoryValue):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def exit_on_user_error(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn``; a user error prints ``error: <message>`` on stderr and exits with code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            cause = user_error(err)
            if cause is None:
                raise
            message = str(cause)
            if isinstance(cause, MissingMandatoryValue):
                message = _missing_option(getattr(cause, "full_key", "") or "a value")
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)

    return wrapper


@exit_on_user_error
def check_choices_or_exit(argv: list[str]) -> None:
    """:func:`check_choices` for entry points: one ``error:`` line and exit code 2."""
    check_choices(argv)
