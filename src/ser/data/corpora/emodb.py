"""Emo-DB (Berlin Database of Emotional Speech) metadata from its file names.

File names are ``SSTTTEV.wav``: speaker ``SS``, text ``TTT``, emotion ``E`` (German initial),
version ``V``. Emotions map to IEMOCAP-style codes so results line up across corpora:
W anger -> ang, T sadness -> sad, F happiness -> hap, N neutral -> neu,
L boredom -> bor, E disgust -> dis, A fear -> fea.

Folds (10): five fixed male-female pairs (03-08, 10-09, 11-13, 12-14, 15-16, i.e. the sorted
male ids paired with the sorted female ids). Fold k tests speaker k of the sorted ids
03, 08, 09, 10, 11, 12, 13, 14, 15, 16, validates on its partner and trains on the other 8.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from ser.data.corpora.base import Corpus, Utterance
from ser.data.download import download_and_unpack
from ser.data.folds import Fold, paired_folds
from ser.errors import CorpusError, DownloadError

log = logging.getLogger(__name__)

OFFICIAL_URL = "http://emodb.bilderbar.info/download/download.zip"
EMOTIONS = {"W": "ang", "T": "sad", "F": "hap", "N": "neu", "L": "bor", "E": "dis", "A": "fea"}
GENDER = {
    "03": "M", "08": "F", "09": "F", "10": "M", "11": "M",
    "12": "M", "13": "F", "14": "F", "15": "M", "16": "F",
}  # fmt: skip
PAIRS = {"03": "08", "10": "09", "11": "13", "12": "14", "15": "16"}
N_FILES = 535
_NAME = re.compile(
    r"^(?P<speaker>\d{2})(?P<text>[ab]\d{2})(?P<emotion>[WLEAFTN])(?P<version>[a-z])$"
)


class EmoDB(Corpus):
    """Emo-DB: 535 utterances, 10 speakers; default 4 classes ang/sad/hap/neu (339).

    Args:
        root: folder holding ``wav/*.wav``.
        classes: emotion codes to keep (all 7: ``ang, sad, hap, neu, bor, dis, fea``).
        download: fetch and unpack ``url`` into ``root`` when ``root/wav`` is missing.
        url: where the official archive is (a mirror or ``file://`` path works too).
        sha256: expected digest of the archive, checked when given.
        minority_classes: classes that get the minority (sliding) segmenting policy in
            training (``data.minority_classes``); ``None``: the class with the fewest
            training utterances of the fold.

    Example:
        >>> corpus = EmoDB(root="../shared/data/emodb", download=False)
        >>> len(corpus.utterances)
        339
    """

    name = "emodb"
    known_classes = tuple(EMOTIONS.values())

    def __init__(
        self,
        *,
        root: str | Path = "data/emodb",
        classes: list[str] | tuple[str, ...] = ("ang", "sad", "hap", "neu"),
        download: bool = True,
        url: str = OFFICIAL_URL,
        sha256: str | None = None,
        minority_classes: Sequence[str] | None = None,
    ) -> None:
        super().__init__(root=root, classes=classes, minority_classes=minority_classes)
        self.download = download
        self.url = url
        self.sha256 = sha256

    def prepare(self) -> None:
        """Download the corpus into ``root`` if ``root/wav`` is missing and download is on."""
        if (self.root / "wav").is_dir() or not self.download:
            return
        if self.root.exists():
            raise CorpusError(
                f"emodb: {self.root} exists but has no wav/ folder; point data.root at an "
                "Emo-DB copy (a folder holding wav/03a01Fa.wav ...) or remove it to download"
            )
        log.info("emodb: %s is missing; downloading %s", self.root, self.url)
        try:
            download_and_unpack(url=self.url, dest=self.root, sha256=self.sha256, check=_check)
        except DownloadError as err:
            raise CorpusError(
                f"emodb: {self.root} does not exist and the download failed ({err}). Point "
                "data.root at an existing copy, e.g. `python train.py "
                "data.root=/path/to/emodb` (a folder holding wav/03a01Fa.wav ...)"
            ) from err

    def _load(self) -> list[Utterance]:
        wav_dir = self.root / "wav"
        if not wav_dir.is_dir():
            raise CorpusError(
                f"emodb: no wav/ folder in {self.root}; set data.root to an Emo-DB copy "
                "(a folder holding wav/03a01Fa.wav ...) or data.download=true to fetch it"
            )
        utterances = []
        for path in sorted(wav_dir.glob("*.wav")):
            match = _NAME.match(path.stem)
            if match is None or match["speaker"] not in GENDER:
                log.warning("emodb: ignoring %s (not an Emo-DB file name)", path)
                continue
            label = EMOTIONS[match["emotion"]]
            if label in self.classes:
                speaker = match["speaker"]
                utterances.append(
                    Utterance(
                        id=path.stem, path=path, label=label, speaker=speaker,
                        gender=GENDER[speaker],
                    )
                )  # fmt: skip
        return utterances

    def folds(self) -> list[Fold]:
        return paired_folds(sorted(GENDER), PAIRS)


def _check(unpacked: Path) -> None:
    """Reject an archive that is not Emo-DB: it must hold ``wav/`` with the 535 files."""
    names = [p.stem for p in (unpacked / "wav").glob("*.wav")]
    valid = [n for n in names if _NAME.match(n)]
    if len(valid) != N_FILES:
        raise DownloadError(
            f"the archive holds {len(valid)} Emo-DB wav files in wav/, expected {N_FILES}"
        )
