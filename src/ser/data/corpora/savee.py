"""SAVEE (Surrey Audio-Visual Expressed Emotion) metadata from its folders and file names.

Files are ``AudioData/<speaker>/<emotion><NN>.wav`` (``AudioData/DC/a01.wav``), or flat
``<speaker>_<emotion><NN>.wav`` (``DC_a01.wav``) as some copies have them, in the root or one
folder below it. 4 male speakers (``DC JE JK KL``), emotions ``a d f h n sa su`` with sentences
01-15 (neutral 01-30). They map to IEMOCAP-style codes (as Emo-DB's do) so results line up
across corpora: a anger -> ang, sa sadness -> sad, h happiness -> hap, n neutral -> neu,
d disgust -> dis, f fear -> fea, su surprise -> sur.

120 utterances per speaker, 480 in all; the default 4 classes (ang, sad, hap, neu) are 75 per
speaker (15 each, neutral 30), 300 in all.

There is no download: the corpus is distributed on registration at
http://kahlan.eps.surrey.ac.uk/savee/.

Folds (4): leave one speaker out. Fold k tests speaker k of ``DC JE JK KL``, validates on the
next one (cyclically: KL validates on DC) and trains on the other two.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ser.data.corpora.base import FileNameCorpus, Utterance
from ser.data.folds import Fold, leave_one_speaker_out
from ser.errors import CorpusError

SOURCE = "http://kahlan.eps.surrey.ac.uk/savee/"
EMOTIONS = {
    "a": "ang", "sa": "sad", "h": "hap", "n": "neu",
    "d": "dis", "f": "fea", "su": "sur",
}  # fmt: skip
#: sentences per emotion code: 01-15, neutral 01-30
SENTENCES = {code: 30 if code == "n" else 15 for code in EMOTIONS}
SPEAKERS = ("DC", "JE", "JK", "KL")
PATTERN = "AudioData/DC/a01.wav"
LAYOUT = (
    f"AudioData/<speaker>/<emotion><NN>.wav (e.g. {PATTERN}) or <speaker>_<emotion><NN>.wav "
    f"(e.g. DC_a01.wav), with speakers {' '.join(SPEAKERS)} and emotions {' '.join(EMOTIONS)}"
)
_SHORT = re.compile(r"^(?P<emotion>[a-z]+)(?P<number>\d{2})$")
_FLAT = re.compile(r"^(?P<speaker>[^_]+)_(?P<emotion>[a-z]+)(?P<number>\d{2})$")


class SAVEE(FileNameCorpus):
    """SAVEE: 480 utterances, 4 male speakers; default 4 classes ang/sad/hap/neu (300).

    There is no download: ``root`` must hold a copy.

    Args:
        root: folder holding ``AudioData/DC/a01.wav ...`` (or the speaker folders, or flat
            ``DC_a01.wav ...`` files).
        classes: emotion codes to keep, in output order
            (all 7: ``ang, sad, hap, neu, dis, fea, sur``).
        skip_unparsed: skip wav files whose names do not parse with one counted warning
            (:attr:`skipped` lists them) instead of one error naming them.
        minority_classes: classes that get the minority (sliding) segmenting policy in
            training; ``None``: the class with the fewest training utterances of the fold.
            ang, sad and hap tie at 15 per speaker; ``data=savee`` sets ``[hap]``, as
            ``data=emovo`` does.

    Example:
        >>> corpus = SAVEE(root="data/savee")
        >>> corpus.fold(3)
        Fold(index=3, test=('KL',), val=('DC',), train=('JE', 'JK'))
    """

    name = "savee"
    known_classes = tuple(EMOTIONS.values())

    def __init__(
        self,
        *,
        root: str | Path = "data/savee",
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

    def _load(self) -> list[Utterance]:
        if not self.root.is_dir():
            where = "" if self.root.is_absolute() else f" (in {Path.cwd()})"
            raise CorpusError(
                f"savee: SAVEE not found at {self.root}{where}: expected "
                f"{self.root / PATTERN} ... ({LAYOUT}). There is no download: get the corpus "
                f"from {SOURCE}, then set data.root=/path/to/savee or SER_SAVEE_ROOT"
            )
        patterns = ("*.wav", "*/*.wav", "AudioData/*/*.wav")
        paths = sorted(
            {
                p
                for pattern in patterns
                for p in self.root.glob(pattern)
                if not any(part.startswith(".") for part in p.relative_to(self.root).parts)
            }
        )
        if not paths:
            raise CorpusError(
                f"savee: no SAVEE wav files in {self.root}: expected {self.root / PATTERN} ... "
                f"({LAYOUT}); set data.root=/path/to/savee or SER_SAVEE_ROOT"
            )
        utterances, bad, seen = [], [], {}
        for path in paths:
            parsed = _parse(path)
            if isinstance(parsed, str):
                bad.append((path, parsed))
                continue
            speaker, emotion, number = parsed
            uid = f"{speaker}_{emotion}{number}"
            if uid in seen:
                bad.append((path, f"the same recording as {seen[uid]}"))
                continue
            seen[uid] = path
            label = EMOTIONS[emotion]
            if label in self.classes:
                utterances.append(
                    Utterance(id=uid, path=path, label=label, speaker=speaker, gender="M")
                )
        self._settle_unparsed(
            bad, root=self.root, total=len(paths), expected=f"SAVEE files ({LAYOUT})"
        )
        return utterances

    def folds(self) -> list[Fold]:
        return leave_one_speaker_out(SPEAKERS)


def _parse(path: Path) -> tuple[str, str, str] | str:
    """``(speaker, emotion, number)`` of a SAVEE file, or why it is not one."""
    folder = path.parent.name
    flat, short = _FLAT.match(path.stem), _SHORT.match(path.stem)
    if flat:
        speaker, emotion, number = flat["speaker"], flat["emotion"], flat["number"]
        if folder in SPEAKERS and folder != speaker:
            return f"speaker {speaker!r} in the name, folder {folder!r}"
    elif short:
        if folder not in SPEAKERS:
            return f"<emotion><NN>.wav not in a speaker folder ({' '.join(SPEAKERS)})"
        speaker, emotion, number = folder, short["emotion"], short["number"]
    else:
        return "not <emotion><NN>.wav nor <speaker>_<emotion><NN>.wav"
    if speaker not in SPEAKERS:
        return f"unknown speaker {speaker!r}"
    if emotion not in EMOTIONS:
        return f"unknown emotion code {emotion!r}"
    if not 1 <= int(number) <= SENTENCES[emotion]:
        return f"no sentence {number} of emotion {emotion!r} (01-{SENTENCES[emotion]})"
    return speaker, emotion, number
