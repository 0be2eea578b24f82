"""EMOVO (Italian emotional speech) metadata from its folders and file names.

Files are ``<speaker>/<emotion>-<speaker>-<sentence>.wav`` (``f1/rab-f1-b1.wav``): 6 actors
(``f1 f2 f3`` female, ``m1 m2 m3`` male), 14 sentences, 7 emotions with Italian codes. They
map to IEMOCAP-style codes (as Emo-DB's do) so results line up across corpora:
rab anger -> ang, tri sadness -> sad, gio joy -> hap, neu neutral -> neu,
dis disgust -> dis, pau fear -> fea, sor surprise -> sur.

Unlike the Emo-DB copy (cut to 2 s), EMOVO keeps natural lengths (1.3-14 s), so utterances
longer than one 300-frame segment really are cut into several.

Folds (6): leave one speaker out. Fold k tests speaker k of ``f1 f2 f3 m1 m2 m3``, validates
on the next speaker of the same gender (f1->f2, f2->f3, f3->f1, m1->m2, m2->m3, m3->m1) so
validation and test see the same gender, and trains on the other four.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ser.data.corpora.base import Corpus, Utterance
from ser.data.folds import Fold, partner_folds
from ser.errors import CorpusError

EMOTIONS = {
    "rab": "ang", "tri": "sad", "gio": "hap", "neu": "neu",
    "dis": "dis", "pau": "fea", "sor": "sur",
}  # fmt: skip
SPEAKERS = ("f1", "f2", "f3", "m1", "m2", "m3")
#: validation speaker of each test speaker: the next one of the same gender, cyclically
VALIDATION = {"f1": "f2", "f2": "f3", "f3": "f1", "m1": "m2", "m2": "m3", "m3": "m1"}
SENTENCES = ("b1", "b2", "b3", "d1", "d2", "l1", "l2", "l3", "l4", "n1", "n2", "n3", "n4", "n5")
PATTERN = "f1/rab-f1-b1.wav"
LAYOUT = (
    f"<speaker>/<emotion>-<speaker>-<sentence>.wav, e.g. {PATTERN}, with speaker folders "
    f"{' '.join(SPEAKERS)} and emotions {' '.join(EMOTIONS)}"
)
_NAME = re.compile(r"^(?P<emotion>[^-]+)-(?P<speaker>[^-]+)-(?P<sentence>[^-]+)$")


class EMOVO(Corpus):
    """EMOVO: 588 utterances, 6 speakers; default 4 classes ang/sad/hap/neu (336).

    There is no download: the corpus is distributed on request, so ``root`` must hold a copy.

    Args:
        root: folder holding the speaker folders ``f1 .. m3`` (``f1/rab-f1-b1.wav`` ...).
        classes: emotion codes to keep, in output order
            (all 7: ``ang, sad, hap, neu, dis, fea, sur``).
        minority_classes: the classes that get the minority (sliding) segmenting policy in
            training; ``None``: the class with the fewest training utterances of the fold.
            Every EMOVO class has 14 utterances per speaker, so that automatic choice is a
            tie; ``data=emovo`` sets ``[hap]``, the class the original augmented.

    Example:
        >>> corpus = EMOVO(root="../shared/data/emovo")
        >>> len(corpus.utterances), corpus.speakers
        (336, ['f1', 'f2', 'f3', 'm1', 'm2', 'm3'])
        >>> corpus.fold(2)
        Fold(index=2, test=('f3',), val=('f1',), train=('f2', 'm1', 'm2', 'm3'))
    """

    name = "emovo"
    known_classes = tuple(EMOTIONS.values())

    def __init__(
        self,
        *,
        root: str | Path = "data/emovo",
        classes: list[str] | tuple[str, ...] = ("ang", "sad", "hap", "neu"),
        minority_classes: Sequence[str] | None = None,
    ) -> None:
        super().__init__(root=root, classes=classes, minority_classes=minority_classes)

    def _load(self) -> list[Utterance]:
        if not self.root.is_dir():
            where = "" if self.root.is_absolute() else f" (in {Path.cwd()})"
            raise CorpusError(
                f"emovo: EMOVO not found at {self.root}{where}: expected {self.root / PATTERN} ... "
                f"({LAYOUT}); set data.root=/path/to/emovo or SER_EMOVO_ROOT"
            )
        paths = sorted(
            p
            for p in [*self.root.glob("*.wav"), *self.root.glob("*/*.wav")]
            if not p.name.startswith(".")  # macOS AppleDouble copies (._rab-f1-b1.wav)
        )
        if not paths:
            # a common slip: data.root one level above the copy (.../data instead of .../emovo)
            below = sorted(p.parents[1] for p in self.root.glob(f"*/{PATTERN}"))
            fix = f"data.root={below[0]}" if below else "data.root=/path/to/emovo"
            raise CorpusError(
                f"emovo: no EMOVO wav files in {self.root}: expected {self.root / PATTERN} ... "
                f"({LAYOUT}); set {fix} or SER_EMOVO_ROOT"
            )
        utterances, bad = [], []
        for path in paths:
            problem = _problem(path.relative_to(self.root))
            if problem:
                bad.append(f"{path} ({problem})")
                continue
            emotion, speaker, _ = path.stem.split("-")
            label = EMOTIONS[emotion]
            if label in self.classes:
                utterances.append(
                    Utterance(
                        id=path.stem, path=path, label=label, speaker=speaker,
                        gender=speaker[0].upper(),
                    )
                )  # fmt: skip
        if bad:
            raise CorpusError(
                f"emovo: {len(bad)} wav file(s) in {self.root} are not named "
                f"{LAYOUT}: {'; '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}; rename or "
                "remove them"
            )
        return utterances

    def folds(self) -> list[Fold]:
        return partner_folds(SPEAKERS, VALIDATION)


def _problem(relative: Path) -> str | None:
    """Why ``<folder>/<name>.wav`` is not an EMOVO file name, or ``None`` when it is one."""
    if len(relative.parts) != 2:
        return "not in a speaker folder"
    folder = relative.parts[0]
    match = _NAME.match(relative.stem)
    if match is None:
        return "not <emotion>-<speaker>-<sentence>.wav"
    if match["emotion"] not in EMOTIONS:
        return f"unknown emotion code {match['emotion']!r}"
    if match["speaker"] not in SPEAKERS:
        return f"unknown speaker {match['speaker']!r}"
    if match["speaker"] != folder:
        return f"speaker {match['speaker']!r} in the name, folder {folder!r}"
    if match["sentence"] not in SENTENCES:
        return f"unknown sentence {match['sentence']!r}"
    return None
