"""``+cross_eval=[...]``: a finished run's best checkpoint scored on other corpora."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from ser.io import write_json_atomic
from ser.options import data_config

log = logging.getLogger(__name__)


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
        log.info("cross-corpus: %s fold %s on %s: UAR %.4f, WA %.4f, macro-F1 %.4f",
                 results["model"], results["fold"], name, record["uar"], record["wa"],
                 record["f1"])  # fmt: skip
