"""What every corpus yields: a list of utterances with labels and speakers, and its folds."""

from __future__ import annotations

import csv
import logging
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ser.data.folds import Fold
from ser.errors import CorpusError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Utterance:
    """One labelled recording.

    Attributes:
        id: unique within the corpus (IEMOCAP and Emo-DB: the file stem).
        path: the audio file.
        label: class name (e.g. ``ang``).
        speaker: speaker name as printed in fold tables (``Ses01F``, ``03``).
        gender: ``F``, ``M`` or ``None`` when unknown.
        session: recording session where the corpus has one (IEMOCAP ``Ses01``).
        improvised: IEMOCAP only: improvised (``True``) or scripted (``False``).
    """

    id: str
    path: Path
    label: str
    speaker: str
    gender: str | None = None
    session: str | None = None
    improvised: bool | None = None


class Corpus(ABC):
    """Metadata of one corpus: its utterances (already filtered to ``classes``) and folds.

    Subclasses parse metadata only; audio is read by :mod:`ser.data.audio`.
    """

    #: short name used in cache keys, logs and result files
    name: str = "corpus"
    #: every class the corpus can have (``None``: any label, e.g. a manifest's)
    known_classes: tuple[str, ...] | None = None
    #: classes that get the minority segmenting policy in training (``data.minority_classes``);
    #: ``None``: the data module picks the class with the fewest training utterances
    minority_classes: tuple[str, ...] | None

    def __init__(
        self,
        *,
        root: str | Path,
        classes: list[str] | tuple[str, ...],
        minority_classes: Sequence[str] | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        if not classes:
            raise CorpusError(f"{self.name}: data.classes=[]: give the classes to keep")
        if len(set(classes)) != len(classes):
            raise CorpusError(f"{self.name}: duplicate class names in {list(classes)}")
        if self.known_classes is not None:
            unknown = sorted(set(classes) - set(self.known_classes))
            if unknown:
                raise CorpusError(
                    f"{self.name}: unknown classes {unknown}; valid: {sorted(self.known_classes)}"
                )
        self.classes: tuple[str, ...] = tuple(classes)
        self.minority_classes = None if minority_classes is None else tuple(minority_classes)

    def prepare(self) -> None:
        """Make the corpus available locally (download it where the corpus supports that)."""
        return None

    @abstractmethod
    def _load(self) -> list[Utterance]:
        """Parse the corpus metadata and return its utterances of ``self.classes``."""

    @abstractmethod
    def folds(self) -> list[Fold]:
        """The corpus' fixed, documented speaker-independent folds."""

    @property
    def cache_identity(self) -> str:
        """What identifies this corpus' files for the feature cache (its resolved root)."""
        return str(self.root.resolve())

    @cached_property
    def utterances(self) -> list[Utterance]:
        """All utterances of the selected classes, in a fixed (sorted) order."""
        utterances = sorted(self._load(), key=lambda u: (u.speaker, u.id))
        absent = sorted(set(self.classes) - {u.label for u in utterances})
        if absent:
            raise CorpusError(
                f"{self.name}: no utterances of class(es) {absent} under {self.root}; choose "
                f"data.classes among the labels present"
            )
        return utterances

    @property
    def speakers(self) -> list[str]:
        """Speakers in the corpus' documented order."""
        return sorted({u.speaker for u in self.utterances})

    def counts(self) -> dict[str, dict[str, int]]:
        """``{speaker: {class: n}}`` for every speaker and class (zeros included)."""
        per_speaker = Counter((u.speaker, u.label) for u in self.utterances)
        return {s: {c: per_speaker[s, c] for c in self.classes} for s in self.speakers}

    def fold(self, index: int) -> Fold:
        """Fold ``index``, or a :class:`CorpusError` listing the valid folds."""
        folds = self.folds()
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(folds):
            table = "; ".join(f"{f.index}: test {','.join(f.test)}" for f in folds)
            raise CorpusError(
                f"fold={index!r} is out of range for {self.name}: valid folds are "
                f"0..{len(folds) - 1} ({table})"
            )
        return folds[index]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, classes={list(self.classes)})"


class FileNameCorpus(Corpus):
    """A corpus whose labels and speakers come from official file names (RAVDESS, CREMA-D, SAVEE).

    One place for what such corpora share: ``skip_unparsed`` (wav files whose names do not
    parse are one error naming them, or skipped with one counted warning) and :attr:`skipped`,
    so the three handle unusable names alike.
    """

    def __init__(
        self,
        *,
        root: str | Path,
        classes: list[str] | tuple[str, ...],
        skip_unparsed: bool = False,
        minority_classes: Sequence[str] | None = None,
    ) -> None:
        super().__init__(root=root, classes=classes, minority_classes=minority_classes)
        self.skip_unparsed = skip_unparsed
        #: ``(path, reason)`` of the wav files ``skip_unparsed`` left out
        self.skipped: list[tuple[Path, str]] = []

    def _settle_unparsed(
        self, bad: list[tuple[Path, str]], *, root: Path, total: int, expected: str
    ) -> None:
        """Raise on the wav files in ``bad``, or skip them into :attr:`skipped`
        (:func:`settle_unparsed` with this corpus' name and ``skip_unparsed``)."""
        self.skipped = settle_unparsed(
            name=self.name, root=root, bad=bad, total=total, expected=expected,
            skip=self.skip_unparsed,
        )  # fmt: skip


def settle_unparsed(
    *,
    name: str,
    root: Path,
    bad: list[tuple[Path, str]],
    total: int,
    expected: str,
    skip: bool,
) -> list[tuple[Path, str]]:
    """Refuse the wav files in ``bad`` with one error naming them, or skip them (``skip``).

    What :class:`FileNameCorpus` does with the names that do not parse.

    Args:
        name: the corpus name the message starts with.
        root: the corpus root, named in the message.
        bad: ``(path, reason)`` of every wav file that cannot be used.
        total: how many wav files were found (named in the warning).
        expected: what the files should be (their naming scheme).
        skip: ``data.skip_unparsed``: log one warning counting the files per reason and
            return ``bad`` instead of raising.

    Returns:
        The skipped files (``bad``; empty when there are none).

    Example:
        >>> settle_unparsed(name="c", root=Path("r"), bad=[(Path("r/x.wav"), "no name")],
        ...                 total=2, expected="<a>-<b>.wav", skip=False)
        Traceback (most recent call last):
        ...
        ser.errors.CorpusError: c: 1 wav file(s) in r are not <a>-<b>.wav: r/x.wav (no name);
        rename or remove them, or set data.skip_unparsed=true to skip them
    """
    if not bad:
        return []
    listed = "; ".join(f"{path} ({why})" for path, why in bad[:3])
    listed += " ..." if len(bad) > 3 else ""
    if not skip:
        raise CorpusError(
            f"{name}: {len(bad)} wav file(s) in {root} are not {expected}: {listed}; rename "
            "or remove them, or set data.skip_unparsed=true to skip them"
        )
    reasons = ", ".join(f"{n} x {why}" for why, n in Counter(why for _, why in bad).items())
    log.warning(
        "%s: skipped %d of %d wav files in %s (data.skip_unparsed=true): %s; e.g. %s",
        name, len(bad), total, root, reasons, listed,
    )  # fmt: skip
    return list(bad)


def read_csv_rows(
    path: Path, *, name: str, required: Sequence[str], fix: str
) -> list[tuple[int, dict[str, str]]]:
    """``(line number, row)`` of every data row of a CSV file whose header holds ``required``.

    Keys are stripped, empty cells are ``""`` and a UTF-8 byte-order mark is dropped, as
    spreadsheet exports write them. A missing column is one error naming the file, the
    columns and its header.

    Args:
        path: the CSV file.
        name: the corpus name the message starts with.
        required: the columns the file must have.
        fix: what to do about a missing column (the end of the message).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "labels.csv"
        >>> _ = path.write_text("\\ufeffFile , Label\\na.wav,ang\\n")
        >>> read_csv_rows(path, name="c", required=["File", "Label"], fix="")
        [(2, {'File': 'a.wav', 'Label': 'ang'})]
    """
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in required if c not in header]
        if missing:
            raise CorpusError(
                f"{name}: {path} has no column(s) {missing} (its header: {header}); {fix}"
            )
        return [
            (line, {k.strip(): v or "" for k, v in row.items() if k})
            for line, row in enumerate(reader, start=2)
        ]
