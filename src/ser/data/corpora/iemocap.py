"""IEMOCAP metadata: utterance labels from ``SessionN/dialog/EmoEvaluation/*.txt``.

Parsed as ``shared/docs/IEMOCAP.md`` describes: summary lines start with ``[`` and hold
``[start - end] TAB id TAB label TAB [v, a, d]``; annotator lines and the per-annotator
sub-folders are ignored. The speaker is the session plus the gender letter right before the
final 3-digit index of the id (``Ses03M_impro05a_F012`` -> ``Ses03F``): the letter after the
session digits names the actor wearing motion markers, not the speaker.

Folds (10): fold k tests speaker k of ``Ses01F, Ses01M, ..., Ses05F, Ses05M``, validates on
the other speaker of the same session and trains on the other four sessions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from ser.data.corpora.base import Corpus, Utterance
from ser.data.folds import Fold, paired_folds
from ser.errors import CorpusError

log = logging.getLogger(__name__)

_ID = re.compile(r"^Ses(?P<session>\d{2})[FM]_(?P<kind>impro|script)\S*_(?P<gender>[FM])\d{3}$")


class IEMOCAP(Corpus):
    """IEMOCAP (``IEMOCAP_full_release``): default improvised ang/sad/hap/neu (2280 utterances).

    Args:
        root: the ``IEMOCAP_full_release`` folder (holding ``Session1`` .. ``Session5``).
        classes: label codes to keep, in output order.
        include_scripted: also keep scripted dialogs.
        merge_exc: relabel ``exc`` (excited) as ``hap`` before selecting classes.
        minority_classes: the classes that get the minority (sliding) segmenting policy in
            training; ``None``: the class with the fewest training utterances of the fold.
            ``data=iemocap`` sets ``[hap]``, the original's choice: the automatic one picks
            ``ang`` on folds whose training speakers have fewer ``ang`` than ``hap``
            utterances (289 and 284 in all).

    Example:
        >>> corpus = IEMOCAP(root="/data/IEMOCAP_full_release")  # doctest: +SKIP
        >>> len(corpus.utterances)  # doctest: +SKIP
        2280
    """

    name = "iemocap"

    def __init__(
        self,
        *,
        root: str | Path,
        classes: list[str] | tuple[str, ...] = ("ang", "sad", "hap", "neu"),
        include_scripted: bool = False,
        merge_exc: bool = False,
        minority_classes: Sequence[str] | None = None,
    ) -> None:
        super().__init__(root=root, classes=classes, minority_classes=minority_classes)
        self.include_scripted = include_scripted
        self.merge_exc = merge_exc

    def _sessions(self) -> list[Path]:
        sessions = sorted(p for p in self.root.glob("Session[0-9]*") if p.is_dir())
        if not self.root.is_dir() or not sessions:
            raise CorpusError(
                f"iemocap: {self.root} is not an IEMOCAP_full_release folder (expected "
                "Session1/ .. Session5/ with dialog/EmoEvaluation/*.txt inside); set "
                "data.root=/path/to/IEMOCAP_full_release"
            )
        return sessions

    def _load(self) -> list[Utterance]:
        utterances: list[Utterance] = []
        without_audio = 0
        for session_dir in self._sessions():
            wavs = {
                p.stem: p
                for p in (session_dir / "sentences" / "wav").glob("*/*.wav")
                if not p.name.startswith(".")
            }
            label_files = sorted((session_dir / "dialog" / "EmoEvaluation").glob("*.txt"))
            for label_file in label_files:
                if label_file.name.startswith(".") or not label_file.is_file():
                    continue
                for utt_id, label in _read_labels(label_file):
                    utterance = self._select(utt_id, label, label_file)
                    if utterance is None:
                        continue
                    if utt_id not in wavs:
                        without_audio += 1
                        continue
                    utterances.append(utterance(path=wavs[utt_id]))
        if without_audio:
            log.warning("iemocap: %d labelled utterances have no wav file; skipped", without_audio)
        return utterances

    def _select(self, utt_id: str, label: str, label_file: Path) -> partial[Utterance] | None:
        """The utterance (awaiting its wav path) if it belongs to the subset, else ``None``."""
        match = _ID.match(utt_id)
        if match is None:
            raise CorpusError(f"iemocap: {label_file}: cannot parse utterance id {utt_id!r}")
        improvised = match["kind"] == "impro"
        if not improvised and not self.include_scripted:
            return None
        if self.merge_exc and label == "exc":
            label = "hap"
        if label not in self.classes:
            return None
        session = f"Ses{match['session']}"
        return partial(
            Utterance,
            id=utt_id,
            label=label,
            speaker=f"{session}{match['gender']}",
            gender=match["gender"],
            session=session,
            improvised=improvised,
        )

    def folds(self) -> list[Fold]:
        speakers = self.speakers
        partner = {}
        for speaker in speakers:
            other = speaker[:-1] + ("M" if speaker.endswith("F") else "F")
            if other not in speakers:
                raise CorpusError(
                    f"iemocap: speaker {speaker} has no session partner {other} in {self.root}; "
                    "folds need both speakers of every session"
                )
            partner[speaker] = other
        return paired_folds(speakers, partner)


def _read_labels(path: Path) -> list[tuple[str, str]]:
    """``(utterance id, majority label)`` for every summary line of one label file."""
    pairs = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.startswith("["):
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            raise CorpusError(
                f"iemocap: {path}:{number}: expected TAB-separated '[start - end] id label "
                f"[v, a, d]', got {line!r}"
            )
        pairs.append((fields[1].strip(), fields[2].strip()))
    return pairs
