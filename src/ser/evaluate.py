"""Score a trained checkpoint on another corpus (cross-corpus evaluation), or on one fold.

Command line (the ``data`` group is train.py's: ``data=emovo``, ``data=manifest ...``)::

    python -m ser.evaluate ckpt=PATH data=emovo [data.root=...] [fold=k] [norm=target]
        [drop_unknown=true] [out=FILE.json]

Every utterance of the target corpus is scored (with ``fold=k``: those of fold k's test
speakers) through the path of the test step (:meth:`ser.inference.Predictor.predict_features`):
features, segmenting, padding and the combination of segments all come from the checkpoint,
so the target corpus is featurised exactly as the training corpus was (resampled to the
checkpoint's sample rate). ``fold=k`` on the training corpus and fold reproduces the run's
test results.

Normalisation (``norm``):

- ``checkpoint`` (default): the training fold's statistics, stored in the checkpoint.
- ``target``: statistics of the scored target utterances themselves, i.e. of the frames the
  network is fed (its evaluation segments, padding excluded), as the training statistics are
  of the training segments. Unsupervised adaptation: labels are never used.

Classes are matched by name. A target class the checkpoint does not know is a
:class:`~ser.errors.ConfigError`, or with ``drop_unknown=true`` its utterances are left out
(``dropped`` counts them). A checkpoint class the target lacks has recall ``null``; **UAR is
the mean recall over the classes present in the scored target utterances** (SEED.md's UAR);
the confusion matrix is over the checkpoint's classes (rows true, columns predicted), so a
prediction of a class the target lacks is an error. **Macro-F1** (``f1``,
:func:`ser.metrics.macro_f1`) is the mean F1 over the classes present in the scored
utterances or in their predictions: a checkpoint class the target lacks but that is
predicted counts with F1 0; one neither present nor predicted is left out.

Features are cached like training's (:class:`~ser.data.cache.FeatureCache`, keyed by the
corpus and the checkpoint's feature config): a repeated evaluation, or one of a corpus that
was trained on with the same features, reads them back instead of recomputing them.

Python::

    predictor = Predictor.from_checkpoint("outputs/.../checkpoints/best-....ckpt")
    result = evaluate(predictor, EMOVO(root="../shared/data/emovo"), norm="target")
    result["uar"], result["f1"], result["recall"]
"""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from ser.config import CONFIG_DIR
from ser.data.corpora import Corpus, Utterance
from ser.data.dataset import frame_store
from ser.data.normalization import Normalizer, coverage, fit_normalizer
from ser.data.source import FeatureSource
from ser.errors import AudioError, ConfigError, CorpusError, exit_on_user_error, require_batch_size
from ser.inference import Predictor
from ser.io import require_writable, write_json_atomic
from ser.metrics import accuracy, confusion_matrix, macro_f1, recall_per_class, uar
from ser.options import require_complete
from ser.text import align_table

#: ``norm`` options: the checkpoint's (training) statistics, or the target utterances' own
NORMS = ("checkpoint", "target")
#: utterances per call of :meth:`Predictor.predict_features` (bounds the normalised copy)
CHUNK_UTTERANCES = 256


def check_norm(norm: Any) -> str:
    """``norm`` if it is one of :data:`NORMS`, else a :class:`ConfigError` naming them."""
    if norm not in NORMS:
        raise ConfigError(
            f"norm={norm!r}: choose checkpoint (the training statistics stored in the "
            "checkpoint) or target (statistics of the scored target utterances)"
        )
    return norm


def load_features(
    predictor: Predictor,
    utterances: list[Utterance],
    *,
    corpus: Corpus,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> list[torch.Tensor]:
    """Features of ``utterances`` with the checkpoint's front-end
    (:class:`~ser.data.source.FeatureSource`, as training gets them).

    With ``cache_dir`` they go through the feature cache (computed once, shared with
    training); without, they are computed in memory. An unusable audio file is an
    :class:`AudioError` naming it (a score over a silently smaller corpus would mislead).
    """
    source = FeatureSource(predictor.features, cache_dir=cache_dir, progress=progress)
    features, bad = source.features(corpus, utterances)
    if bad:
        examples = "; ".join(f"{k}: {v}" for k, v in list(bad.items())[:3])
        raise AudioError(
            f"{len(bad)} unusable audio file(s) in {corpus.name} ({examples}); fix or remove "
            "them, or leave them out of the corpus (a manifest without them)"
        )
    return features


def target_normalizer(predictor: Predictor, features: list[torch.Tensor]) -> Normalizer:
    """Statistics of ``features`` as the network is fed them: each frame weighted by how many
    of the checkpoint's evaluation segments cover it (padding excluded), like the training
    statistics are of the training segments. No label is used."""
    frames, offsets, lengths = frame_store(features)
    table = predictor.segments.segment(
        lengths,
        [""] * len(lengths),
        length=predictor.segment_frames,
        frame_rate=predictor.features.frame_rate,
    )
    return fit_normalizer(frames, coverage(table, offsets))


def evaluate(
    predictor: Predictor,
    corpus: Corpus,
    *,
    fold: int | None = None,
    norm: str = "checkpoint",
    drop_unknown: bool = False,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score ``predictor`` on every utterance of ``corpus`` (``fold``: its test speakers).

    Args:
        predictor: the checkpoint (:meth:`Predictor.from_checkpoint`).
        corpus: the target corpus; its classes are matched to the checkpoint's by name.
        fold: score only this fold's test speakers (``corpus.fold(fold)``).
        norm: ``checkpoint`` (the training statistics) or ``target`` (the scored
            utterances' own statistics; see :func:`target_normalizer`).
        drop_unknown: leave out utterances of classes the checkpoint does not know, instead
            of refusing the corpus.
        cache_dir: feature cache root (``None``: compute features in memory).
        progress: show a progress bar while computing features.

    Returns:
        A JSON-ready dict: ``checkpoint``, ``corpus``, ``root``, ``fold``, ``speakers``,
        ``norm``, ``classes`` (the checkpoint's: order of ``probs`` and ``confusion``),
        ``target_classes``, ``n_utterances``, ``dropped`` (count) and ``dropped_classes``
        (``{class: count}``), ``uar``, ``wa`` and ``f1`` (macro-F1), ``recall`` and
        ``support`` per checkpoint class (recall ``None`` for a class without scored
        utterances; UAR is the mean over the classes present, macro-F1 over the classes
        present or predicted), ``confusion`` (``{"classes", "matrix"}``, rows true) and
        ``predictions`` (``{id, speaker, label, pred, probs}`` per utterance, in corpus
        order, as results.json's).
    """
    check_norm(norm)
    known = list(predictor.class_names)
    unknown = [c for c in corpus.classes if c not in known]
    if unknown and not drop_unknown:
        raise ConfigError(
            f"{corpus.name} has classes {unknown} that the checkpoint does not know: target "
            f"classes {list(corpus.classes)}, checkpoint classes {known}; choose data.classes "
            "among the checkpoint's, or set drop_unknown=true to leave those utterances out"
        )
    utterances = corpus.utterances
    speakers = corpus.speakers
    if fold is not None:
        speakers = list(corpus.fold(fold).test)
        utterances = [u for u in utterances if u.speaker in speakers]
    dropped = Counter(u.label for u in utterances if u.label in unknown)
    utterances = [u for u in utterances if u.label not in unknown]
    if not utterances:
        where = f" fold {fold} (test speakers {','.join(speakers)})" if fold is not None else ""
        raise CorpusError(
            f"{corpus.name}{where}: no utterance of the checkpoint's classes {known} to score"
            f"{f' ({sum(dropped.values())} dropped)' if dropped else ''}"
        )

    features = load_features(
        predictor, utterances, corpus=corpus, cache_dir=cache_dir, progress=progress
    )
    scorer = predictor
    if norm == "target":
        scorer = copy.copy(predictor)  # the same network; only the statistics differ
        scorer.normalizer = target_normalizer(predictor, features)
    rate = predictor.features.frame_rate
    results = []
    for start in range(0, len(features), CHUNK_UTTERANCES):
        chunk = features[start : start + CHUNK_UTTERANCES]
        durations = [None if rate is None else f.shape[1] / rate for f in chunk]
        results += scorer.predict_features(chunk, durations)

    labels = torch.tensor([known.index(u.label) for u in utterances])
    preds = torch.tensor([known.index(p.label) for p in results])
    confusion = confusion_matrix(preds, labels, len(known))
    recall = recall_per_class(confusion.float()).tolist()
    return {
        "checkpoint": None if predictor.checkpoint is None else str(predictor.checkpoint),
        "corpus": corpus.name,
        "root": str(corpus.root),
        "fold": fold,
        "speakers": speakers,
        "norm": norm,
        "classes": known,
        "target_classes": list(corpus.classes),
        "n_utterances": len(utterances),
        "dropped": sum(dropped.values()),
        "dropped_classes": {c: dropped[c] for c in unknown},
        "uar": uar(confusion).item(),
        "wa": accuracy(confusion).item(),
        "f1": macro_f1(confusion).item(),
        "recall": {c: None if r != r else r for c, r in zip(known, recall, strict=True)},
        "support": dict(zip(known, confusion.sum(dim=1).tolist(), strict=True)),
        "confusion": {"classes": known, "matrix": confusion.tolist()},
        "predictions": [
            {
                "id": u.id,
                "speaker": u.speaker,
                "label": u.label,
                "pred": p.label,
                "probs": p.probs,
            }
            for u, p in zip(utterances, results, strict=True)
        ],
    }


NORM_TEXT = {
    "checkpoint": "the checkpoint's training statistics",
    "target": "the target utterances' own statistics",
}


def summary(result: dict[str, Any]) -> str:
    """A few lines for the terminal: what was scored, UAR, WA, macro-F1 and recall per
    class."""
    scope = (
        f"fold {result['fold']} test speakers {','.join(result['speakers'])}"
        if result["fold"] is not None
        else f"all {len(result['speakers'])} speakers"
    )
    lines = [
        f"checkpoint {result['checkpoint']}",
        f"{result['corpus']} ({result['root']}, {scope}): {result['n_utterances']} utterances, "
        f"norm={result['norm']} ({NORM_TEXT[result['norm']]})",
    ]
    if result["dropped"]:
        per_class = ", ".join(f"{c} {n}" for c, n in result["dropped_classes"].items())
        lines.append(
            f"dropped {result['dropped']} utterances of classes the checkpoint does not know "
            f"({per_class})"
        )
    lines.append(f"UAR {result['uar']:.4f}  WA {result['wa']:.4f}  macro-F1 {result['f1']:.4f}")
    rows = [["class", "n", "recall"]]
    for c, r in result["recall"].items():
        rows.append([c, str(result["support"][c]), "-" if r is None else f"{r:.3f}"])
    lines.append(align_table(rows))
    return "\n".join(lines)


# ---------------------------------------------------------------------- command line
@exit_on_user_error
def command(cfg: DictConfig) -> dict[str, Any]:
    """The command: evaluate, print the summary, write ``cfg.out`` when given."""
    require_complete(cfg)
    norm = check_norm(cfg.norm)
    if not isinstance(cfg.drop_unknown, bool):
        raise ConfigError(f"drop_unknown={cfg.drop_unknown!r}: give true or false")
    device = None if cfg.device == "auto" else cfg.device
    if device and device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device}: no GPU is visible; use device=cpu or device=auto")
    require_batch_size("batch_size", cfg.batch_size)
    if cfg.out:
        require_writable(cfg.out, option="out")
    predictor = Predictor.from_checkpoint(cfg.ckpt, device=device, batch_size=cfg.batch_size)
    corpus: Corpus = hydra.utils.instantiate(cfg.data)
    if cfg.fold is not None:
        corpus.fold(cfg.fold)  # a bad fold fails before any audio is read
    corpus.prepare()
    result = evaluate(
        predictor,
        corpus,
        fold=cfg.fold,
        norm=norm,
        drop_unknown=cfg.drop_unknown,
        cache_dir=cfg.get("cache_dir"),
        progress=cfg.progress,
    )
    print(summary(result))
    if cfg.out:
        write_json_atomic(Path(cfg.out), result)
        print(f"wrote {cfg.out}")
    return result


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    command(cfg)


if __name__ == "__main__":
    main()
