"""Speaker-independent folds: which speakers test, validate and train in fold k.

Three schemes cover the corpora:

- :func:`partner_folds` (EMOVO): fold k tests speaker k of a fixed order, validates on that
  speaker's validation partner (EMOVO: the next speaker of the same gender) and trains on
  every other speaker. :func:`paired_folds` (IEMOCAP, Emo-DB) is the case of symmetric
  pairs (IEMOCAP: the other speaker of the session; Emo-DB: a fixed male-female pair).
- :func:`leave_one_speaker_out`: one fold per speaker; validation is the other speakers of
  the test speaker's session when there are any, else the next speaker in sorted order.
- :func:`column_folds`: a user-given fold number per speaker; fold k tests the speakers of
  fold k and validates on those of fold k+1 (cyclically).

Example:
    >>> folds = paired_folds(["a", "b", "c", "d"], {"a": "b", "c": "d"})
    >>> folds[2]
    Fold(index=2, test=('c',), val=('d',), train=('a', 'b'))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Fold:
    """Speaker lists of one fold; the three are disjoint."""

    index: int
    test: tuple[str, ...]
    val: tuple[str, ...]
    train: tuple[str, ...]

    def __post_init__(self) -> None:
        test, val, train = set(self.test), set(self.val), set(self.train)
        if test & val or test & train or val & train or not (test and val and train):
            raise ValueError(f"fold {self.index}: splits must be non-empty and disjoint: {self}")

    def split_of(self, speaker: str) -> str | None:
        """``"train"``, ``"val"``, ``"test"`` or ``None`` for a speaker outside the fold."""
        for split in ("train", "val", "test"):
            if speaker in getattr(self, split):
                return split
        return None

    def as_dict(self) -> dict:
        """JSON-ready form: ``{"fold": k, "test": [...], "val": [...], "train": [...]}``."""
        return {
            "fold": self.index,
            "test": list(self.test),
            "val": list(self.val),
            "train": list(self.train),
        }


def partner_folds(order: Sequence[str], validation: Mapping[str, str]) -> list[Fold]:
    """One fold per speaker of ``order``: test it, validate on ``validation[speaker]``, train
    on the rest."""
    missing = [s for s in order if s not in validation]
    if missing:
        raise ValueError(f"speakers without a validation partner: {missing}")
    return [
        Fold(
            index=k,
            test=(speaker,),
            val=(validation[speaker],),
            train=tuple(s for s in order if s not in (speaker, validation[speaker])),
        )
        for k, speaker in enumerate(order)
    ]


def paired_folds(order: Sequence[str], partner: Mapping[str, str]) -> list[Fold]:
    """:func:`partner_folds` with symmetric pairs: each speaker validates its partner's fold.

    ``partner`` may list each pair once; it is made symmetric.
    """
    return partner_folds(order, dict(partner) | {b: a for a, b in partner.items()})


def leave_one_speaker_out(
    speakers: Sequence[str], sessions: Mapping[str, str | None] | None = None
) -> list[Fold]:
    """Leave-one-speaker-out over sorted speakers (validation rule in the module docstring)."""
    order = sorted(speakers)
    if len(order) < 3:
        raise ValueError(f"leave-one-speaker-out needs at least 3 speakers, got {order}")
    sessions = sessions or {}
    folds = []
    for k, speaker in enumerate(order):
        session = sessions.get(speaker)
        val = [s for s in order if s != speaker and session and sessions.get(s) == session]
        if not val or len(val) == len(order) - 1:
            val = [order[(k + 1) % len(order)]]
        train = [s for s in order if s != speaker and s not in val]
        folds.append(Fold(index=k, test=(speaker,), val=tuple(val), train=tuple(train)))
    return folds


def column_folds(fold_of: Mapping[str, int]) -> list[Fold]:
    """Folds from a fold number per speaker (numbers must be 0..K-1, K >= 3, none empty)."""
    numbers = sorted(set(fold_of.values()))
    if numbers != list(range(len(numbers))) or len(numbers) < 3:
        raise ValueError(f"fold numbers must be 0..K-1 with K >= 3, got {numbers}")
    members = {k: tuple(sorted(s for s, f in fold_of.items() if f == k)) for k in numbers}
    folds = []
    for k in numbers:
        val_fold = (k + 1) % len(numbers)
        train = tuple(sorted(s for s, f in fold_of.items() if f not in (k, val_fold)))
        folds.append(Fold(index=k, test=members[k], val=members[val_fold], train=train))
    return folds
