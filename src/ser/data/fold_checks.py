"""What a fold's utterances must be before training: readable (or skipped and recorded)
and, in training and validation, covering every class."""

from __future__ import annotations

import logging
from collections import Counter

from ser.data.cache import FillReport
from ser.data.corpora import Corpus, Utterance
from ser.data.folds import Fold
from ser.errors import AudioError, CorpusError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def drop_unusable(
    utterances: list[Utterance], report: FillReport, *, corpus: Corpus, fold: Fold, skip: bool
) -> tuple[list[Utterance], list[dict[str, str]]]:
    """The utterances whose features could be made, and a record of each one dropped (id,
    path, speaker, split, reason).

    Without ``skip`` (``datamodule.skip_bad_audio``) an unusable file is an error naming the
    first few and the option; with it they are dropped with one warning.
    """
    if not report.bad:
        return utterances, []
    examples = "; ".join(f"{k}: {v}" for k, v in list(report.bad.items())[:3])
    if not skip:
        raise AudioError(
            f"{len(report.bad)} unusable audio file(s) in {corpus.name} ({examples}). "
            "Fix or remove them, or set datamodule.skip_bad_audio=true to skip them"
        )
    dropped = [
        {
            "id": u.id,
            "path": str(u.path),
            "speaker": u.speaker,
            "split": fold.split_of(u.speaker),
            "reason": report.bad[u.id],
        }
        for u in utterances
        if u.id in report.bad
    ]
    per_split = Counter(d["split"] for d in dropped)
    log.warning(
        "skipping %d unusable audio file(s) (datamodule.skip_bad_audio=true; %s): %s",
        len(dropped),
        ", ".join(f"{per_split[s]} {s}" for s in SPLITS if per_split[s]),
        examples,
    )
    return [u for u in utterances if u.id not in report.bad], dropped


def check_classes_covered(
    utterances: dict[str, list[Utterance]], *, corpus: Corpus, fold: Fold, dropped: bool
) -> None:
    """Refuse a fold whose training or validation split lacks a class.

    The model would keep an output it never learns (or never selects on), and UAR would
    count that class against it. A test split without a class is fine: its recall is
    undefined (``null``) and UAR averages over the classes present.
    """
    for split in ("train", "val"):
        present = {u.label for u in utterances[split]}
        absent = [c for c in corpus.classes if c not in present]
        if absent:
            speakers = ",".join(getattr(fold, split))
            raise CorpusError(
                f"{corpus.name} fold {fold.index}: no {split} utterances of "
                f"class(es) {absent} ({split} speakers {speakers}"
                f"{', after skipping unusable files' if dropped else ''}); leave "
                "them out of data.classes or choose folds whose speakers have them"
            )
