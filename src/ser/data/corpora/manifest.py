"""Any corpus from a CSV manifest: one row per utterance.

Required columns ``path,label,speaker``; optional ``gender,session,fold``. Relative paths are
relative to ``root`` (default: the manifest's folder). The utterance id is the path relative
to that folder without its suffix. Labels are compared without case and surrounding space
(``Ang ``, ``ANG`` and ``ang`` are one class, ``ang``); merged spellings are logged.

Folds: with a ``fold`` column (one fold number per speaker, 0..K-1), fold k tests the
speakers of fold k, validates on fold k+1 (cyclically) and trains on the rest. Without it,
leave-one-speaker-out over the sorted speakers; validation is the other speakers of the test
speaker's ``session`` when the manifest gives sessions and there are any, otherwise the next
speaker in sorted order (see :mod:`ser.data.folds`).

Example manifest::

    path,label,speaker,gender
    audio/s1_happy_01.wav,hap,s1,F
    audio/s2_angry_07.flac,ang,s2,M
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ser.data.corpora.base import Corpus, Utterance, read_csv_rows
from ser.data.folds import Fold, column_folds, leave_one_speaker_out
from ser.errors import CorpusError

log = logging.getLogger(__name__)

REQUIRED = ("path", "label", "speaker")


def normalize_label(label: str) -> str:
    """The class name of a manifest label: stripped and lower-case.

    Example:
        >>> normalize_label(" Ang ")
        'ang'
    """
    return label.strip().lower()


class Manifest(Corpus):
    """Utterances listed in a CSV file.

    Args:
        manifest: the CSV file.
        root: base folder of relative paths (default: the manifest's folder).
        classes: labels to keep, in output order (default: every label, sorted); compared
            like the labels, without case and surrounding space.
        minority_classes: classes that get the minority (sliding) segmenting policy in
            training (``data.minority_classes``); ``None``: the class with the fewest
            training utterances of the fold.
    """

    name = "manifest"

    def __init__(
        self,
        *,
        manifest: str | Path,
        root: str | Path | None = None,
        classes: list[str] | tuple[str, ...] | None = None,
        minority_classes: Sequence[str] | None = None,
    ) -> None:
        self.manifest = Path(manifest).expanduser()
        if not self.manifest.is_file():
            raise CorpusError(
                f"manifest: {self.manifest} does not exist; set data.manifest=FILE.csv "
                f"(columns {','.join(REQUIRED)}[,gender,session,fold])"
            )
        self.rows = self._read()
        labels = sorted({row["label"] for row in self.rows})
        base = Path(root).expanduser() if root is not None else self.manifest.parent
        super().__init__(
            root=base,
            classes=[normalize_label(c) for c in classes] if classes is not None else labels,
            minority_classes=(
                None if minority_classes is None else [normalize_label(c) for c in minority_classes]
            ),
        )

    @property
    def cache_identity(self) -> str:
        return str(self.manifest.resolve())

    def _read(self) -> list[dict[str, str]]:
        rows = [
            row
            for _, row in read_csv_rows(
                self.manifest,
                name="manifest",
                required=REQUIRED,
                fix=f"the header must include {','.join(REQUIRED)} (optional gender,session,fold)",
            )
        ]
        if not rows:
            raise CorpusError(
                f"manifest: {self.manifest} has no rows, only its header: add one row per "
                "utterance (path,label,speaker)"
            )
        spellings: dict[str, set[str]] = {}
        for row in rows:
            spellings.setdefault(normalize_label(row["label"]), set()).add(row["label"])
            row.update({k: v.strip() for k, v in row.items()}, label=normalize_label(row["label"]))
        for number, row in enumerate(rows, start=2):
            empty = [c for c in REQUIRED if not row[c]]
            if empty:
                raise CorpusError(f"manifest: {self.manifest}:{number}: empty {empty}")
        merged = {k: sorted(v) for k, v in spellings.items() if len(v) > 1}
        if merged:
            log.warning(
                "manifest %s: labels that differ only in case or surrounding space are one "
                "class: %s",
                self.manifest,
                "; ".join(f"{k} <- {', '.join(repr(s) for s in v)}" for k, v in merged.items()),
            )
        return rows

    def _load(self) -> list[Utterance]:
        utterances, missing = [], []
        for row in self.rows:
            if row["label"] not in self.classes:
                continue
            path = Path(row["path"]).expanduser()
            path = path if path.is_absolute() else self.root / path
            if not path.is_file():
                missing.append(str(path))
                continue
            relative = path.relative_to(self.root) if path.is_relative_to(self.root) else path
            utterances.append(
                Utterance(
                    id=relative.with_suffix("").as_posix(),
                    path=path,
                    label=row["label"],
                    speaker=row["speaker"],
                    gender=row.get("gender") or None,
                    session=row.get("session") or None,
                )
            )
        for kind, values in (
            ("path", [str(u.path.resolve()) for u in utterances]),
            ("id", [u.id for u in utterances]),
        ):
            repeated = sorted(v for v, n in Counter(values).items() if n > 1)
            if repeated:
                raise CorpusError(
                    f"manifest: {self.manifest}: the same {kind} is listed more than once "
                    f"({repeated[:3]}); every recording must appear once, with one speaker"
                )
        if missing:
            raise CorpusError(
                f"manifest: {self.manifest}: {len(missing)} audio file(s) do not exist, e.g. "
                f"{missing[:3]}; fix the paths (relative paths are relative to {self.root})"
            )
        return utterances

    def folds(self) -> list[Fold]:
        speakers = self.speakers
        try:
            if any(row.get("fold") for row in self.rows):
                return column_folds(self._per_speaker("fold", int, speakers))
            return leave_one_speaker_out(speakers, self._per_speaker("session", str, speakers))
        except CorpusError:
            raise
        except ValueError as err:  # e.g. fold numbers 1..K instead of 0..K-1
            raise CorpusError(f"manifest: {self.manifest}: {err}") from err

    def _per_speaker(self, column: str, kind: type, speakers: list[str]) -> dict:
        """The one value of ``column`` per speaker (an error if a speaker has several)."""
        values: dict[str, set[str]] = {}
        for row in self.rows:
            if row["speaker"] in speakers and row.get(column):
                values.setdefault(row["speaker"], set()).add(row[column])
        conflicting = {s: sorted(v) for s, v in values.items() if len(v) > 1}
        if conflicting:
            raise CorpusError(
                f"manifest: {self.manifest}: column {column!r} must hold one value per "
                f"speaker; conflicting: {conflicting}"
            )
        try:
            result = {s: kind(next(iter(v))) for s, v in values.items()}
        except ValueError as err:
            raise CorpusError(f"manifest: {self.manifest}: bad {column!r} value: {err}") from err
        if column == "fold" and len(result) != len(speakers):
            raise CorpusError(
                f"manifest: {self.manifest}: speakers without a fold: "
                f"{sorted(set(speakers) - set(result))}"
            )
        return result
