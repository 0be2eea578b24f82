"""CREMA-D (Crowd-sourced Emotional Multimodal Actors Dataset) metadata from its file names.

Files are ``AudioWAV/AAAA_SSS_EEE_LL.wav`` (``AudioWAV/1001_DFA_ANG_XX.wav``): actor ``AAAA``
(1001-1091), sentence ``SSS`` (one of 12 codes), emotion ``EEE`` and level ``LL`` (``LO MD HI``,
``XX`` unspecified; the one file ``1040_ITH_SAD_X.wav`` of the distribution has ``X``).
Emotions map to IEMOCAP-style codes (as Emo-DB's do) so results line up across corpora:
ANG -> ang, SAD -> sad, HAP -> hap, NEU -> neu, DIS -> dis, FEA -> fea.
7442 utterances; the default 4 classes (ang, sad, hap, neu) are 4900. Genders come from
``VideoDemographics.csv`` (column ``Sex``) in the root when it is there, else they are unknown.

There is no download: clone https://github.com/CheyneyComputerScience/CREMA-D with Git LFS
(``git lfs pull``: without it the wav files are small text pointers).

Folds (5): the 91 actors sorted by gender (female, male, unknown) then id, dealt round-robin
into folds 0, 1, 2, 3, 4, 0, 1, ... so every fold has 18 or 19 actors and the genders are
balanced within one per fold when they are known (without ``VideoDemographics.csv`` the actors
are dealt by id). Fold k tests its actors, validates on those of fold k+1 (cyclically) and
trains on the other three folds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

from ser.data.corpora.base import FileNameCorpus, Utterance, read_csv_rows
from ser.data.folds import Fold, column_folds
from ser.errors import CorpusError

SOURCE = "https://github.com/CheyneyComputerScience/CREMA-D"
EMOTIONS = {"ANG": "ang", "SAD": "sad", "HAP": "hap", "NEU": "neu", "DIS": "dis", "FEA": "fea"}
ACTORS = tuple(str(n) for n in range(1001, 1092))
SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
#: emotion levels; ``X`` is the distribution's one misnamed file, 1040_ITH_SAD_X.wav
LEVELS = ("LO", "MD", "HI", "XX", "X")
DEMOGRAPHICS = "VideoDemographics.csv"
SEX = {"Female": "F", "Male": "M"}
N_FOLDS = 5
PATTERN = "AudioWAV/1001_DFA_ANG_XX.wav"
LAYOUT = (
    f"AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav, e.g. {PATTERN}, with actors "
    f"1001-1091 and emotions {' '.join(EMOTIONS)}"
)
_NAME = re.compile(r"^(?P<actor>[^_]+)_(?P<sentence>[^_]+)_(?P<emotion>[^_]+)_(?P<level>[^_]+)$")


class CREMAD(FileNameCorpus):
    """CREMA-D: 7442 utterances, 91 actors; default 4 classes ang/sad/hap/neu (4900).

    There is no download: ``root`` must hold a copy (a clone of the official repository).

    Args:
        root: folder holding ``AudioWAV/`` (and ``VideoDemographics.csv`` for the genders).
        classes: emotion codes to keep, in output order
            (all 6: ``ang, sad, hap, neu, dis, fea``).
        skip_unparsed: skip wav files whose names do not parse (or carry an unknown emotion
            code) with one counted warning (:attr:`skipped` lists them) instead of one error
            naming them.
        minority_classes: classes that get the minority (sliding) segmenting policy in
            training; ``None``: the class with the fewest training utterances of the fold.

    Example:
        >>> corpus = CREMAD(root="data/crema_d")  # no copy there: actors dealt by id
        >>> [len(f.test) for f in corpus.folds()]
        [19, 18, 18, 18, 18]
        >>> corpus.fold(1).test[:3], corpus.fold(1).val[:3]
        (('1002', '1007', '1012'), ('1003', '1008', '1013'))
    """

    name = "crema_d"
    known_classes = tuple(EMOTIONS.values())

    def __init__(
        self,
        *,
        root: str | Path = "data/crema_d",
        classes: list[str] | tuple[str, ...] = ("ang", "sad", "hap", "neu"),
        skip_unparsed: bool = False,
        minority_classes: Sequence[str] | None = None,
    ) -> None:
        super().__init__(
            root=root,
            classes=classes,
            skip_unparsed=skip_unparsed,
            minority_classes=minority_classes,
        )

    @cached_property
    def genders(self) -> dict[str, str]:
        """``{actor: "F" | "M"}`` from ``root/VideoDemographics.csv``; empty without it."""
        path = self.root / DEMOGRAPHICS
        if not path.is_file():
            return {}
        rows = read_csv_rows(
            path,
            name="crema_d",
            required=["ActorID", "Sex"],
            fix=f"restore the official file from {SOURCE} or remove it (the genders are then "
            "unknown)",
        )
        genders = {}
        for line, row in rows:
            actor, sex = row["ActorID"].strip(), row["Sex"].strip()
            if actor not in ACTORS or sex not in SEX:
                raise CorpusError(
                    f"crema_d: {path} line {line}: ActorID {actor!r}, Sex {sex!r}: expected an "
                    f"actor 1001-1091 and Sex Female or Male; restore the official file from "
                    f"{SOURCE} or remove it (the genders are then unknown)"
                )
            genders[actor] = SEX[sex]
        return genders

    def _load(self) -> list[Utterance]:
        wav_dir = self.root / "AudioWAV"
        if not self.root.is_dir():
            where = "" if self.root.is_absolute() else f" (in {Path.cwd()})"
            raise CorpusError(
                f"crema_d: CREMA-D not found at {self.root}{where}: expected "
                f"{self.root / PATTERN} ... ({LAYOUT}). There is no download: clone {SOURCE} "
                "with Git LFS, then set data.root=/path/to/CREMA-D or SER_CREMA_D_ROOT"
            )
        paths = sorted(p for p in wav_dir.glob("*.wav") if not p.name.startswith("."))
        if not paths:
            # a common slip: data.root at AudioWAV itself, or one level above the copy
            if self.root.name == "AudioWAV":
                fix = f"data.root={self.root.parent}"
            else:
                below = sorted(p.parent for p in self.root.glob("*/AudioWAV") if p.is_dir())
                fix = f"data.root={below[0]}" if below else "data.root=/path/to/CREMA-D"
            raise CorpusError(
                f"crema_d: no CREMA-D wav files in {wav_dir}: expected {self.root / PATTERN} "
                f"... ({LAYOUT}); set {fix} or SER_CREMA_D_ROOT (a clone of {SOURCE})"
            )
        with paths[0].open("rb") as f:
            if f.read(24).startswith(b"version https://git-lfs"):
                raise CorpusError(
                    f"crema_d: {paths[0]} is a Git LFS pointer, not audio: run `git lfs pull` "
                    f"in {self.root} to fetch the recordings"
                )
        genders = self.genders
        utterances, bad = [], []
        for path in paths:
            problem = _problem(path.stem)
            if problem:
                bad.append((path, problem))
                continue
            actor, _, emotion, _ = path.stem.split("_")
            label = EMOTIONS[emotion]
            if label in self.classes:
                utterances.append(
                    Utterance(
                        id=path.stem, path=path, label=label, speaker=actor,
                        gender=genders.get(actor),
                    )
                )  # fmt: skip
        self._settle_unparsed(
            bad, root=wav_dir, total=len(paths), expected=f"CREMA-D files ({LAYOUT})"
        )
        return utterances

    def folds(self) -> list[Fold]:
        rank = {"F": 0, "M": 1}
        genders = self.genders
        order = sorted(ACTORS, key=lambda actor: (rank.get(genders.get(actor), 2), actor))
        return column_folds({actor: i % N_FOLDS for i, actor in enumerate(order)})


def _problem(stem: str) -> str | None:
    """Why ``<stem>.wav`` is not a CREMA-D file name, or ``None`` when it is one."""
    match = _NAME.match(stem)
    if match is None:
        return "not <actor>_<sentence>_<emotion>_<level>.wav"
    if match["actor"] not in ACTORS:
        return f"unknown actor {match['actor']!r}"
    if match["sentence"] not in SENTENCES:
        return f"unknown sentence {match['sentence']!r}"
    if match["emotion"] not in EMOTIONS:
        return f"unknown emotion code {match['emotion']!r}"
    if match["level"] not in LEVELS:
        return f"unknown level {match['level']!r}"
    return None
