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
#: the front-end; 3: ``model.use_class_weights`` retired, ``balance`` alone switches the
#: weighted loss, and ADSRNN's ``model.net.combine`` named ``window_combine``), so that runs
#: of older code are not taken for finished runs of this code
IDENTITY_VERSION = 3

#: keys (dotted for nested ones) left out of both hashes: they do not change what a run
#: computes, so a sweep rerun with another logger, progress bar or cache folder still finds
#: its finished runs
HASH_EXCLUDE = (
    "paths", "logger", "hydra", "ckpt_path", "task_name", "cross_eval", "optimized_metric",
    "skip_done", "print_config", "seeds", "callbacks.progress_bar", "callbacks.model_summary",
    "callbacks.wandb_extras", "callbacks.model_checkpoint.dirpath",
    "callbacks.last_checkpoint", "callbacks.resumable_randomness", "trainer.default_root_dir",
    "datamodule.cache_dir", "datamodule.progress", "datamodule.num_workers",
    "datamodule.pin_memory", "datamodule.resident", "datamodule.store",
    "datamodule.fill_workers",
)  # fmt: skip

#: options left out of both hashes while at their neutral value (the behaviour of a config
#: without the option), so that adding an option keeps the hashes, and the finished runs, of
#: the runs that do not use it
HASH_NEUTRAL: dict[str, Any] = {
    "model.label_smoothing": 0.0, "datamodule.test_split": True, "search": None,
    "compile": False, "model.compile_net": False, "model.net.window_encoding": "h_n",
}  # fmt: skip

#: the same for config group choices (the protocol hash covers the choices)
NEUTRAL_CHOICES = {"augment": "none", "averaging": "none"}

#: what the hashes cover: every key of the config that is not excluded above. A new key is
#: a decision, made here: ``tests/test_identity.py`` fails on a key of the composed configs
#: (top level, and one level into ``datamodule``, ``trainer`` and ``callbacks``, whose keys
#: are classified one by one) that is in none of these lists.
HASHED = (
    "fold", "seed", "compile", "test", "search", "data", "features", "model",
    "datamodule._target_", "datamodule.corpus", "datamodule.features", "datamodule.fold",
    "datamodule.seed", "datamodule.segment_s", "datamodule.train_segments",
    "datamodule.eval_segments", "datamodule.padding", "datamodule.balance",
    "datamodule.batch_size", "datamodule.eval_batch_size", "datamodule.skip_bad_audio",
    "datamodule.waveform_augment", "datamodule.test_split",
    "trainer._target_", "trainer.accelerator", "trainer.devices", "trainer.num_nodes",
    "trainer.strategy", "trainer.sync_batchnorm", "trainer.precision", "trainer.deterministic",
    "trainer.max_steps", "trainer.max_epochs", "trainer.min_epochs",
    "trainer.limit_train_batches", "trainer.val_check_interval",
    "trainer.check_val_every_n_epoch", "trainer.num_sanity_val_steps",
    "trainer.gradient_clip_val", "trainer.log_every_n_steps", "trainer.enable_model_summary",
    "callbacks.model_checkpoint", "callbacks.early_stopping", "callbacks.weight_averaging",
)  # fmt: skip

#: the config group choices of the model itself, which may differ within a comparison: the
#: model, and its per-model widths (``width=small``, ``debug=fast``: conf/model/_width/,
#: conf/model/_debug/)
MODEL_CHOICES = ("model", "model/_width", "model/_debug")

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
    """Hash of the resolved config without the :data:`HASH_EXCLUDE` keys.

    Two runs with the same hash train the same model on the same data the same way. Options
    at their :data:`HASH_NEUTRAL` value are left out too, so that adding an option keeps the
    hashes (and the finished runs) of the runs that do not use it.
    """
    return _digest(OmegaConf.to_container(cfg, resolve=True), list(HASH_EXCLUDE), HASH_NEUTRAL)


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
        # the model, and the per-model width files it chooses (MODEL_CHOICES)
        container["choices"] = {
            k: v
            for k, v in choices.items()
            if k not in MODEL_CHOICES
            and not k.startswith("hydra")
            and k not in CHOICES_IN_CONFIG
            and (k not in NEUTRAL_CHOICES or v != NEUTRAL_CHOICES[k])
        }
    drop = [f"config.{k}" for k in (*HASH_EXCLUDE, *PROTOCOL_EXCLUDE)]
    neutral = {f"config.{k}": v for k, v in HASH_NEUTRAL.items()}
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
