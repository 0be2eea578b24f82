"""A run's identity: the hashes that say whether two runs are the same run (config hash)
or belong to one comparison (protocol hash), and whether a run folder already holds the
finished run of a config.

Both hashes are taken over the resolved config, which comes from the command alone (no
resolver reads the host), so a run has one identity on the login node that submits it and
on the compute node that trains it. Free of torch and Lightning: the SLURM launcher checks
which runs are finished before it submits anything.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

#: the scheme of the hashes, recorded in results.json: raised when a change of the config tree
#: changes every run's config on purpose (2: segments in seconds, network input sizes from
#: the front-end), so that runs of older code are not taken for finished runs of this code
IDENTITY_VERSION = 2

#: config groups whose whole effect is a config value the hashes already cover
#: (``precision`` sets ``trainer.precision``, ``features`` the ``features`` node): their
#: choice adds nothing to the protocol
CHOICES_IN_CONFIG = ("precision", "features")

#: what may differ between the runs of one comparison: the model and its own settings
#: (ACRNN's batch of 40), its front-end (the reference rows: openSMILE functionals with a
#: linear model beside the networks on log-mel), the fold and the seed
PROTOCOL_EXCLUDE = (
    "model.name", "model.net", "model.center_loss", "model._target_", "fold", "seed",
    "datamodule.fold", "datamodule.seed", "datamodule.batch_size", "features",
    "datamodule.features",
)  # fmt: skip


def _digest(container: Any, drop: list[str], neutral: dict[str, Any] | None = None) -> str:
    """SHA-256 (16 hex digits) of ``container`` without the (dotted) keys in ``drop``, and
    without those of ``neutral`` whose value equals the one given there."""
    neutral = neutral or {}
    for key in [*drop, *neutral]:
        *parents, leaf = key.split(".")
        node = container
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if (
            isinstance(node, dict)
            and leaf in node
            and (key not in neutral or node[leaf] == neutral[key])
        ):
            node.pop(leaf)
    text = json.dumps(container, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_hash(cfg: DictConfig) -> str:
    """Hash of the resolved config without the ``cfg.hash_exclude`` keys.

    Two runs with the same hash train the same model on the same data the same way. Options
    at their ``cfg.hash_neutral`` value are left out too, so that adding an option keeps the
    hashes (and the finished runs) of the runs that do not use it.
    """
    return _digest(
        OmegaConf.to_container(cfg, resolve=True),
        list(cfg.get("hash_exclude", [])),
        _neutral(cfg, "hash_neutral"),
    )


def _neutral(cfg: DictConfig, key: str) -> dict[str, Any]:
    node = cfg.get(key)
    return OmegaConf.to_container(node, resolve=True) if node else {}


def protocol_hash(cfg: DictConfig) -> str:
    """Hash of what the runs of one comparison share: :func:`config_hash`'s config without
    :data:`PROTOCOL_EXCLUDE`, plus the config group choices other than the model
    (``width=small`` lives only there) except those of the model.

    Sweep aggregation keeps the runs of one protocol, so leftovers of an earlier sweep with
    other settings in the same folder never mix into the table.
    """
    container = {"config": OmegaConf.to_container(cfg, resolve=True)}
    if HydraConfig.initialized():
        choices = dict(HydraConfig.get().runtime.choices)
        # model, and the per-model width files (debug_model, width_model) chosen by it
        neutral_choices = _neutral(cfg, "hash_neutral_choices")
        container["choices"] = {
            k: v
            for k, v in choices.items()
            if not k.endswith("model")
            and not k.startswith("hydra")
            and k not in CHOICES_IN_CONFIG
            and (k not in neutral_choices or v != neutral_choices[k])
        }
    drop = [f"config.{k}" for k in (*cfg.get("hash_exclude", []), *PROTOCOL_EXCLUDE)]
    neutral = {f"config.{k}": v for k, v in _neutral(cfg, "hash_neutral").items()}
    return _digest(container, drop, neutral)


def finished_results(cfg: DictConfig) -> dict[str, Any] | None:
    """The run folder's results.json when it was written by a run of the same config."""
    path = Path(cfg.paths.output_dir) / "results.json"
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return results if results.get("config_hash") == config_hash(cfg) else None
