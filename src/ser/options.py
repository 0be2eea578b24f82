"""Checks of a run's options before anything starts: options that cannot work together,
options no run of a sweep can use, and hardware this machine lacks.

Free of torch and Lightning, so that planning a sweep on a login node stays quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ser.config import CONFIG_DIR
from ser.errors import ConfigError, missing_option
from ser.hardware import check_hardware


def in_multirun() -> bool:
    """Whether this run is one job of a Hydra multirun (a sweep)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def check_run_options(cfg: DictConfig) -> None:
    """Options that cannot work together, and hardware this machine lacks
    (:func:`ser.hardware.check_hardware`), caught before anything starts."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path and not Path(ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={ckpt_path} does not exist")
    for key in ("max_steps", "max_epochs"):
        if cfg.trainer.get(key) == 0:
            raise ConfigError(
                f"trainer.{key}=0 trains nothing, so no checkpoint can be chosen on val/uar; "
                "give a positive number (-1: no limit from this key)"
            )
    if in_multirun():
        check_sweep_options(cfg)
    else:
        check_cross_eval(cfg)
    check_hardware(cfg.trainer)


def check_cross_eval(cfg: DictConfig) -> None:
    """``+cross_eval``: a list of other corpora (``conf/data/`` options), checked before any
    run trains. The training corpus is refused: its held-out score is the test UAR, and
    scored on all its utterances it would include the training speakers."""
    names = cfg.get("cross_eval")
    if names is None:
        return
    if not OmegaConf.is_list(names) or not all(isinstance(n, str) for n in names):
        raise ConfigError(
            f"+cross_eval={names}: give a list of corpora in brackets, e.g. "
            "'+cross_eval=[emovo,ravdess]'"
        )
    valid = sorted(p.stem for p in (CONFIG_DIR / "data").glob("*.yaml"))
    for name in names:
        if name not in valid:
            raise ConfigError(
                f"+cross_eval: unknown corpus {name!r}: valid options are {', '.join(valid)}"
            )
        other = data_config(name, root_dir=cfg.paths.root_dir)
        same_root = Path(str(other.get("root"))).resolve() == Path(str(cfg.data.root)).resolve()
        if other.get("_target_") == cfg.data.get("_target_") and same_root:
            raise ConfigError(
                f"+cross_eval={list(names)} names {name}, the corpus this run trains on: its "
                "held-out score is the run's test UAR (over all its utterances it would include "
                "the training speakers); leave it out"
            )


def check_sweep_options(cfg: DictConfig) -> None:
    """Options that cannot work in any run of a sweep, wherever it runs; ``sweep.py``
    checks them up front. The hardware is checked by each run, where it trains."""
    check_cross_eval(cfg)
    strategy = str(cfg.trainer.get("strategy") or "")
    if "ddp" in strategy:
        raise ConfigError(
            f"hardware with strategy={strategy} inside a multirun: DDP would relaunch the whole "
            "sweep in every process. Run folds in parallel with a launcher "
            "(hydra/launcher=ser_local or slurm) and one device per run instead"
        )


def require_untested_search(cfg: DictConfig) -> None:
    """A search never tests: ``test=true`` would score every trial on the test speakers."""
    if cfg.get("test"):
        raise ConfigError(
            "test=true in a hyper-parameter search would score every trial on the test "
            "speakers; a search runs with test=false (the hparams_search presets set it)"
        )


def data_config(name: str, *, root_dir: str) -> DictConfig:
    """The ``data`` node of ``data=<name>`` as train.py composes it (``conf/data/``)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = [f"data={name}", f"paths.root_dir={root_dir}"]
    if GlobalHydra.instance().is_initialized():
        return compose("config", overrides=overrides).data
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return compose("config", overrides=overrides).data


def task_name_overrides(argv: list[str]) -> list[str]:
    """The values ``task_name=`` takes on a command line (none when it is not given, or when
    Hydra cannot parse the line: Hydra reports that itself).

    Example:
        >>> task_name_overrides(["model=acrnn", "task_name=results_bf16"])
        ['results_bf16']
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        overrides = OverridesParser.create().parse_overrides(
            [a for a in argv if not a.startswith("-")]
        )
    except OverrideParseException:
        return []
    return [
        str(value)
        for o in overrides
        if o.key_or_group == "task_name" and not o.is_delete()
        for value in (o.sweep_iterator() if o.is_sweep_override() else [o.value()])
    ]


def check_task_name_overrides(argv: list[str]) -> None:
    """Check ``task_name=`` on the command line before Hydra makes folders named after it."""
    for name in task_name_overrides(argv):
        check_task_name(name)


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


def require_complete(cfg: Any) -> None:
    """Raise :class:`ConfigError` naming the first mandatory option (``???``) left unset."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(missing_option(missing[0]))
