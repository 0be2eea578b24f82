"""MSP-Podcast (naturalistic English podcast speech) from the release's consensus labels.

A release folder holds ``Labels/labels_consensus.csv`` (columns ``FileName, EmoClass, EmoAct,
EmoVal, EmoDom, SpkrID, Gender, Split_Set``) and the audio as ``Audios/<FileName>``
(``Audios/MSP-PODCAST_0001_0008.wav``). Later releases also ship
``Labels/labels_consensus.json`` (``{FileName: {EmoClass, ..., Split_Set}}``), read when the
CSV is absent. Primary-emotion codes map to IEMOCAP-style codes so results line up across
corpora: A -> ang, S -> sad, H -> hap, N -> neu, C -> con (contempt), D -> dis, F -> fea,
U -> sur. ``O`` (other) and ``X`` (no agreement among the annotators) have no class and are
left out; the log counts them.

There is no download: the corpus is licensed by the MSP Lab of UT Dallas (request it at
:data:`SOURCE`). Release 1.11 is the one papers usually use.

Folds: one, fixed (fold 0): the release's partitions, which are set per file. Split_Set
``Train`` trains, ``Development`` validates and ``Test1`` tests (``test_set="Test2"``: the
other test set); rows of other partitions are left out. :class:`~ser.data.folds.Fold` is
keyed by speaker, so every utterance gets the speaker ``<Split_Set>/<SpkrID>``
(``Train/127``, ``Test1/Unknown``): speakers whose identity the release does not give
(``Unknown``, in several partitions) stay in their own partition, and the three splits stay
disjoint. The release's partitions are speaker-independent, which is checked: a known SpkrID
in two of the three partitions used is an error naming it. (The test sets may share speakers
with each other, so Test2 rows are not compared with Test1 ones.)
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ser.data.corpora.base import Corpus, Utterance, read_csv_rows
from ser.data.folds import Fold
from ser.errors import CorpusError

log = logging.getLogger(__name__)

SOURCE = "https://ecs.utdallas.edu/research/researchlabs/msp-lab/MSP-Podcast.html"
LABELS_CSV = Path("Labels") / "labels_consensus.csv"
LABELS_JSON = Path("Labels") / "labels_consensus.json"
AUDIO = "Audios"
EMOTIONS = {
    "A": "ang", "S": "sad", "H": "hap", "N": "neu",
    "C": "con", "D": "dis", "F": "fea", "U": "sur",
}  # fmt: skip
#: consensus codes without a class, left out and counted
NO_CLASS = {"O": "other (O)", "X": "no agreement (X)"}
#: the columns (JSON: keys) read; EmoAct, EmoVal and EmoDom are not used
COLUMNS = ("FileName", "EmoClass", "SpkrID", "Gender", "Split_Set")
TRAIN, DEVELOPMENT = "Train", "Development"
UNKNOWN = "Unknown"
GENDER = {"Female": "F", "Male": "M"}
PATTERN = "Audios/MSP-PODCAST_0001_0008.wav"
LAYOUT = (
    f"{LABELS_CSV} (or {LABELS_JSON}) with {', '.join(COLUMNS)}, and {AUDIO}/<FileName>, "
    f"e.g. {PATTERN}"
)


@dataclass(frozen=True)
class Row:
    """One entry of the labels file, its values (in :data:`COLUMNS` order) stripped."""

    where: str  # "line 7" (CSV) or "entry 'MSP-PODCAST_0001_0008.wav'" (JSON)
    file: str
    code: str
    speaker: str
    gender: str
    partition: str


class MSPPodcast(Corpus):
    """MSP-Podcast: the official Train / Development / Test1 partitions as one fold.

    Args:
        root: the release folder, holding ``Labels/`` and ``Audios/``.
        classes: emotion codes to keep, in output order
            (all 8: ``ang, sad, hap, neu, con, dis, fea, sur``).
        test_set: the Split_Set that tests (``Test1``, or ``Test2``).
        skip_unparsed: skip rows with an unknown EmoClass code, an empty FileName or SpkrID
            or a repeated FileName, and listed files absent from ``Audios/``, with one counted
            warning each (:attr:`skipped` lists them) instead of one error naming them.
        minority_classes: classes that get the minority (sliding) segmenting policy in
            training; ``None``: the class with the fewest training utterances.

    Example:
        >>> corpus = MSPPodcast(root="/data/MSP-Podcast", test_set="Test2")
        >>> corpus.partitions  # Split_Set -> split of fold 0
        {'Train': 'train', 'Development': 'val', 'Test2': 'test'}
    """

    name = "msp_podcast"
    known_classes = tuple(EMOTIONS.values())

    def __init__(
        self,
        *,
        root: str | Path = "data/msp_podcast",
        classes: list[str] | tuple[str, ...] = known_classes,
        test_set: str = "Test1",
        skip_unparsed: bool = False,
        minority_classes: Sequence[str] | None = None,
    ) -> None:
        super().__init__(root=root, classes=classes, minority_classes=minority_classes)
        if test_set in (TRAIN, DEVELOPMENT):
            raise CorpusError(
                f"msp_podcast: data.test_set={test_set!r} trains or validates already; give "
                "a test partition (Test1 or Test2)"
            )
        self.test_set = test_set
        self.skip_unparsed = skip_unparsed
        #: ``(FileName, reason)`` of the rows and files ``skip_unparsed`` left out
        self.skipped: list[tuple[str, str]] = []
        #: rows of the three partitions left out without a class, per reason (set on loading)
        self.left_out: Counter[str] = Counter()

    @property
    def partitions(self) -> dict[str, str]:
        """Split_Set -> split of the one fold."""
        return {TRAIN: "train", DEVELOPMENT: "val", self.test_set: "test"}

    def labels_file(self) -> Path:
        """The consensus labels: the CSV, else the JSON; an error naming both when neither is."""
        if not self.root.is_dir():
            where = "" if self.root.is_absolute() else f" (in {Path.cwd()})"
            raise CorpusError(
                f"msp_podcast: MSP-Podcast not found at {self.root}{where}: expected "
                f"{self.root / LABELS_CSV} and {self.root / PATTERN} ... ({LAYOUT}). There is "
                f"no download: the corpus is licensed by the MSP Lab of UT Dallas (request it "
                f"at {SOURCE}); then set data.root=/path/to/MSP-Podcast or SER_MSP_PODCAST_ROOT"
            )
        for relative in (LABELS_CSV, LABELS_JSON):
            if (self.root / relative).is_file():
                return self.root / relative
        # a common slip: data.root one level above the release folder
        below = sorted(
            {p.parents[1] for rel in (LABELS_CSV, LABELS_JSON) for p in self.root.glob(f"*/{rel}")}
        )
        fix = f"data.root={below[0]}" if below else "data.root=/path/to/MSP-Podcast"
        raise CorpusError(
            f"msp_podcast: no labels file in {self.root}: expected {self.root / LABELS_CSV} "
            f"or {self.root / LABELS_JSON} ({LAYOUT}); set {fix} (the release folder)"
        )

    def _load(self) -> list[Utterance]:
        labels = self.labels_file()
        rows = _read(labels)
        per_partition = Counter(r.partition for r in rows)
        absent = [p for p in self.partitions if not per_partition[p]]
        if absent:
            present = ", ".join(f"{p} ({n})" for p, n in sorted(per_partition.items()))
            raise CorpusError(
                f"msp_podcast: {labels} has no rows with Split_Set {absent} (its Split_Set "
                f"values: {present}); data.test_set names the test partition (Test1 or Test2)"
            )
        self.skipped = []
        used = [r for r in rows if r.partition in self.partitions]
        used = self._settle(
            _problems(used), rows=used, what=f"rows of {labels}",
            fix="restore the release's labels file",
        )  # fmt: skip
        _check_speakers(used, labels)
        self.left_out = Counter(
            NO_CLASS.get(r.code, "of classes not in data.classes")
            for r in used
            if EMOTIONS.get(r.code) not in self.classes
        )
        kept = [r for r in used if EMOTIONS.get(r.code) in self.classes]
        audio_dir = self.root / AUDIO
        if not audio_dir.is_dir():
            raise CorpusError(
                f"msp_podcast: no {AUDIO}/ folder in {self.root}: expected {self.root / PATTERN}"
                f" ... for the files {labels} lists ({LAYOUT})"
            )
        on_disk = {p.name for p in audio_dir.iterdir()}
        kept = self._settle(
            [(r, f"not in {audio_dir}") for r in kept if r.file not in on_disk],
            rows=kept, what=f"files listed in {labels}", fix="restore them from the release",
        )  # fmt: skip
        self._log(labels, kept, per_partition)
        return [
            Utterance(
                id=Path(r.file).stem, path=audio_dir / r.file, label=EMOTIONS[r.code],
                speaker=f"{r.partition}/{r.speaker}", gender=GENDER.get(r.gender),
            )
            for r in kept
        ]  # fmt: skip

    def _settle(
        self, bad: list[tuple[Row, str]], *, rows: list[Row], what: str, fix: str
    ) -> list[Row]:
        """``rows`` without the ``bad`` ones (row, reason): one error naming the first few, or
        (``skip_unparsed``) skipped into :attr:`skipped` with one warning counting them."""
        if not bad:
            return rows
        listed = "; ".join(f"{r.where} ({r.file or 'no FileName'}): {why}" for r, why in bad[:3])
        listed += " ..." if len(bad) > 3 else ""
        if not self.skip_unparsed:
            raise CorpusError(
                f"msp_podcast: {len(bad)} of {len(rows)} {what} cannot be used: {listed}; "
                f"{fix}, or set data.skip_unparsed=true to skip them"
            )
        reasons = ", ".join(f"{n} x {why}" for why, n in Counter(why for _, why in bad).items())
        log.warning(
            "msp_podcast: skipped %d of %d %s (data.skip_unparsed=true): %s; e.g. %s",
            len(bad), len(rows), what, reasons, listed,
        )  # fmt: skip
        self.skipped += [(r.file, why) for r, why in bad]
        dropped = {id(r) for r, _ in bad}
        return [r for r in rows if id(r) not in dropped]

    def _log(self, labels: Path, kept: list[Row], per_partition: Counter[str]) -> None:
        """What was kept and left out per split, and the speakers per split."""
        splits = self.partitions
        kept_per = Counter(splits[r.partition] for r in kept)
        left = [f"{n} {why}" for why, n in sorted(self.left_out.items())]
        left += [
            f"{n} of Split_Set {p}" for p, n in sorted(per_partition.items()) if p not in splits
        ]
        log.info(
            "msp_podcast: %s: %d utterances of %s: train (Train) %d, val (Development) %d, "
            "test (%s) %d; left out: %s",
            labels, len(kept), ",".join(self.classes), kept_per["train"], kept_per["val"],
            self.test_set, kept_per["test"], ", ".join(left) or "none",
        )  # fmt: skip
        known = Counter(
            splits[p] for p, s in {(r.partition, r.speaker) for r in kept} if s != UNKNOWN
        )
        unknown = Counter(splits[r.partition] for r in kept if r.speaker == UNKNOWN)
        log.info(
            "msp_podcast: known speakers (none in two partitions): %s; utterances of speaker "
            "Unknown: %s",
            ", ".join(f"{s} {known[s]}" for s in ("train", "val", "test")),
            ", ".join(f"{s} {unknown[s]}" for s in ("train", "val", "test")),
        )

    def folds(self) -> list[Fold]:
        splits = self.partitions
        members: dict[str, list[str]] = {"train": [], "val": [], "test": []}
        for speaker in self.speakers:
            members[splits[speaker.split("/", 1)[0]]].append(speaker)
        empty = [p for p, s in splits.items() if not members[s]]
        if empty:
            raise CorpusError(
                f"msp_podcast: no utterances of data.classes={list(self.classes)} in Split_Set "
                f"{empty} under {self.root}; the fold needs train, val and test utterances"
            )
        return [Fold(index=0, **{s: tuple(m) for s, m in members.items()})]

    def fold(self, index: int) -> Fold:
        """Fold 0, the official partitions; any other index is an error saying so."""
        if isinstance(index, int) and not isinstance(index, bool) and index == 0:
            return self.folds()[0]
        raise CorpusError(
            f"fold={index!r}: msp_podcast has one fixed fold, 0 (the release's partitions: "
            f"train Train, val Development, test {self.test_set}), not cross-validation; use "
            "fold=0 (data.test_set=Test2 tests on the other test set)"
        )


def _read(path: Path) -> list[Row]:
    """The rows of the labels file (CSV or JSON); an error naming a missing column."""
    if path.suffix == ".csv":
        rows = read_csv_rows(
            path,
            name="msp_podcast",
            required=COLUMNS,
            fix=f"expected {', '.join(COLUMNS)}: restore the release's labels file",
        )
        entries = [(f"line {line}", row) for line, row in rows]
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CorpusError(f"msp_podcast: {path} is not valid JSON ({err})") from err
        if not isinstance(data, dict):
            raise CorpusError(
                f"msp_podcast: {path} is not a JSON object of FileName -> "
                f"{{{', '.join(COLUMNS[1:])}}}: restore the release's labels file"
            )
        entries = []
        for name, entry in data.items():
            missing = [c for c in COLUMNS[1:] if not isinstance(entry, dict) or c not in entry]
            if missing:
                raise CorpusError(
                    f"msp_podcast: {path}: entry {name!r} has no key(s) {missing}; every "
                    f"entry needs {', '.join(COLUMNS[1:])}: restore the release's labels file"
                )
            entries.append((f"entry {name!r}", {**entry, "FileName": name}))

    def value(entry: dict, column: str) -> str:
        return "" if entry.get(column) is None else str(entry[column]).strip()

    return [Row(where, *(value(entry, c) for c in COLUMNS)) for where, entry in entries]


def _problems(rows: list[Row]) -> list[tuple[Row, str]]:
    """The rows that cannot be used, with why: an empty FileName or SpkrID, an unknown
    EmoClass code, or a FileName listed before."""
    bad, seen = [], set()
    for row in rows:
        if not row.file or not row.speaker:
            bad.append((row, f"empty {'FileName' if not row.file else 'SpkrID'}"))
        elif row.code not in EMOTIONS and row.code not in NO_CLASS:
            bad.append((row, f"unknown EmoClass code {row.code!r}"))
        elif row.file in seen:
            bad.append((row, "FileName listed before"))
        seen.add(row.file)
    return bad


def _check_speakers(rows: list[Row], labels: Path) -> None:
    """Refuse a known speaker in two partitions: the release's partitions are speaker-
    independent, and the fold's speaker keys would hide the overlap."""
    partitions: dict[str, set[str]] = {}
    for row in rows:
        if row.speaker != UNKNOWN:
            partitions.setdefault(row.speaker, set()).add(row.partition)
    shared = {s: sorted(p) for s, p in sorted(partitions.items()) if len(p) > 1}
    if shared:
        listed = "; ".join(f"SpkrID {s} in {' and '.join(p)}" for s, p in list(shared.items())[:3])
        raise CorpusError(
            f"msp_podcast: {labels}: {len(shared)} speaker(s) in more than one partition "
            f"({listed}); the release's partitions are speaker-independent: restore its "
            "labels file"
        )
