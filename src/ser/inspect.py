"""``python -m ser.inspect data=<corpus> [data.root=...] [+json=FILE]``: counts and folds.

Prints one row per speaker with a column per class and totals, then the fold table
(fold -> test, validation speakers). ``+json=FILE`` also writes
``{"counts": {speaker: {class: n}}, "folds": [{"fold", "test", "val", "train"}]}``.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from ser.config import CONFIG_DIR
from ser.data.corpora import Corpus
from ser.errors import exit_on_user_error
from ser.io import write_json_atomic
from ser.text import align_table


def speaker_table(corpus: Corpus) -> str:
    """Per-speaker class counts with a totals row and column, as aligned text."""
    counts = corpus.counts()
    header = ["speaker", *corpus.classes, "total"]
    rows = [[s, *(str(n) for n in c.values()), str(sum(c.values()))] for s, c in counts.items()]
    totals = [sum(c[k] for c in counts.values()) for k in corpus.classes]
    rows.append(["total", *(str(n) for n in totals), str(sum(totals))])
    return align_table([header, *rows])


def fold_table(corpus: Corpus) -> str:
    """Fold -> test and validation speakers (and the number of training speakers)."""
    rows = [["fold", "test", "val", "train"]]
    for fold in corpus.folds():
        rows.append(
            [str(fold.index), ",".join(fold.test), ",".join(fold.val), f"{len(fold.train)} spk"]
        )
    return align_table(rows)


@exit_on_user_error
def inspect(cfg: DictConfig) -> dict:
    """Print the corpus tables; write them as JSON when ``cfg.json`` is set."""
    corpus: Corpus = hydra.utils.instantiate(cfg.data)
    corpus.prepare()
    print(f"{corpus.name}: {corpus.root} ({len(corpus.utterances)} utterances)\n")
    print(speaker_table(corpus))
    print()
    print(fold_table(corpus))
    report = {"counts": corpus.counts(), "folds": [f.as_dict() for f in corpus.folds()]}
    if cfg.get("json"):
        write_json_atomic(Path(cfg.json), report)
        print(f"\nwrote {cfg.json}")
    return report


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="inspect")
def main(cfg: DictConfig) -> None:
    inspect(cfg)


if __name__ == "__main__":
    main()
