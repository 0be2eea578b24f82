"""RAVDESS (Ryerson Audio-Visual Database of Emotional Speech and Song), speech part.

Files are ``Actor_NN/MM-VV-EE-II-SS-RR-NN.wav`` (``Actor_01/03-01-05-01-01-01-01.wav``), the
``Actor_*`` folders directly in the root or under ``Audio_Speech_Actors_01-24/`` (the official
archive's name). The seven fields: modality (``03`` audio only), vocal channel (``01`` speech;
``02`` song, which the speech presets do not use), emotion, intensity (``01`` normal, ``02``
strong; neutral has normal only), statement (``01``/``02``), repetition (``01``/``02``) and
actor (``01``-``24``; odd actors are male, even ones female). Emotions map to IEMOCAP-style
codes (as Emo-DB's do) so results line up across corpora:
01 neutral -> neu, 02 calm -> cal, 03 happy -> hap, 04 sad -> sad, 05 angry -> ang,
06 fearful -> fea, 07 disgust -> dis, 08 surprised -> sur.

Each actor has 60 speech files: 4 neutral and 8 of each other emotion (2 intensities x
2 statements x 2 repetitions), 1440 in all. The default 4 classes (ang, sad, hap, neu) are
28 per actor, 672 in all; calm is left out unless ``merge_calm`` counts it as neutral
(36 per actor, 864).

Folds (``folds="blocks"``, 6): fold k tests actors 4k+1 .. 4k+4 (01-04, 05-08, ..., 21-24;
each block 2 female and 2 male), validates on the next block (cyclically: fold 5 validates
on 01-04) and trains on the other 16 actors. ``folds="loso"`` (24): leave one actor out,
validating on the next actor (cyclically) and training on the other 22.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from ser.data.corpora.base import FileNameCorpus, Utterance
from ser.data.download import download_and_unpack
from ser.data.folds import Fold, column_folds, leave_one_speaker_out
from ser.errors import CorpusError, DownloadError

log = logging.getLogger(__name__)

OFFICIAL_URL = "https://zenodo.org/record/1188976/files/Audio_Speech_Actors_01-24.zip"
#: the folder the official speech archive is often unpacked into
SPEECH_FOLDER = "Audio_Speech_Actors_01-24"
EMOTIONS = {
    "01": "neu", "02": "cal", "03": "hap", "04": "sad",
    "05": "ang", "06": "fea", "07": "dis", "08": "sur",
}  # fmt: skip
ACTORS = tuple(f"{n:02d}" for n in range(1, 25))
FOLD_SCHEMES = ("blocks", "loso")
N_FILES = 1440
PATTERN = "Actor_01/03-01-01-01-01-01-01.wav"
LAYOUT = (
    "Actor_NN/MM-VV-EE-II-SS-RR-NN.wav (modality 03, vocal channel 01, emotion 01-08, "
    "intensity, statement, repetition, actor 01-24), e.g. "
    f"{PATTERN}, in the root or under {SPEECH_FOLDER}/"
)
#: why a song file is left out (one reason, so the skip warning counts them together)
SONG = "a song file (vocal channel 02)"
_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_FOLDER = re.compile(r"^Actor_(\d{2})$")


class RAVDESS(FileNameCorpus):
    """RAVDESS speech: 1440 utterances, 24 actors; default 4 classes ang/sad/hap/neu (672).

    Args:
        root: folder holding ``Actor_01 .. Actor_24`` (directly or under
            ``Audio_Speech_Actors_01-24/``).
        classes: emotion codes to keep, in output order
            (all 8: ``ang, sad, hap, neu, cal, dis, fea, sur``).
        merge_calm: count calm (``02``) as neutral; ``classes`` must not then hold ``cal``.
        folds: ``"blocks"`` (6 folds of 4 actors) or ``"loso"`` (leave one actor out, 24).
        download: fetch and unpack ``url`` into ``root`` when ``root`` is missing.
        url: where the official speech archive is (a mirror or ``file://`` path works too).
        sha256: expected digest of the archive, checked when given.
        skip_unparsed: skip wav files whose names do not parse, and song files, with one
            counted warning (:attr:`skipped` lists them) instead of one error naming them.
        minority_classes: classes that get the minority (sliding) segmenting policy in
            training; ``None``: the class with the fewest training utterances of the fold
            (neutral with the 4 default classes: 4 per actor against 8).

    Example:
        >>> corpus = RAVDESS(root="data/ravdess", download=False)
        >>> corpus.fold(0)
        Fold(index=0, test=('01', '02', '03', '04'), val=('05', '06', '07', '08'),
             train=('09', '10', '11', '12', '13', '14', '15', '16', '17', '18', '19', '20',
                    '21', '22', '23', '24'))
        >>> len(RAVDESS(root="data/ravdess", folds="loso").folds())
        24
    """

    name = "ravdess"
    known_classes = tuple(EMOTIONS.values())

    def __init__(
        self,
        *,
        root: str | Path = "data/ravdess",
        classes: list[str] | tuple[str, ...] = ("ang", "sad", "hap", "neu"),
        merge_calm: bool = False,
        folds: str = "blocks",
        download: bool = True,
        url: str = OFFICIAL_URL,
        sha256: str | None = None,
        skip_unparsed: bool = False,
        minority_classes: Sequence[str] | None = None,
    ) -> None:
        super().__init__(
            root=root,
            classes=classes,
            skip_unparsed=skip_unparsed,
            minority_classes=minority_classes,
        )
        if merge_calm and "cal" in self.classes:
            raise CorpusError(
                f"ravdess: data.merge_calm=true counts calm as neu, so data.classes="
                f"{list(self.classes)} cannot hold cal; drop cal or set data.merge_calm=false"
            )
        if folds not in FOLD_SCHEMES:
            raise CorpusError(
                f"ravdess: data.folds={folds!r} is not a fold scheme; valid: "
                f"{', '.join(FOLD_SCHEMES)} (blocks: 6 folds of 4 actors; loso: one per actor)"
            )
        self.merge_calm = merge_calm
        self.fold_scheme = folds
        self.download = download
        self.url = url
        self.sha256 = sha256

    def prepare(self) -> None:
        """Download the corpus into ``root`` if it is missing and download is on."""
        if _has_actor_folders(self.root) or not self.download:
            return
        if self.root.exists():
            raise CorpusError(
                f"ravdess: {self.root} exists but has no Actor_NN folders (nor "
                f"{SPEECH_FOLDER}/Actor_NN); point data.root at a RAVDESS copy (a folder "
                f"holding {PATTERN} ...) or remove it to download"
            )
        log.info("ravdess: %s is missing; downloading %s", self.root, self.url)
        try:
            download_and_unpack(url=self.url, dest=self.root, sha256=self.sha256, check=_check)
        except DownloadError as err:
            raise CorpusError(
                f"ravdess: {self.root} does not exist and the download failed ({err}). Point "
                "data.root at an existing copy, e.g. `python train.py data=ravdess "
                f"data.root=/path/to/ravdess` (a folder holding {PATTERN} ...)"
            ) from err

    def _load(self) -> list[Utterance]:
        if not self.root.is_dir():
            where = "" if self.root.is_absolute() else f" (in {Path.cwd()})"
            raise CorpusError(
                f"ravdess: RAVDESS not found at {self.root}{where}: expected "
                f"{self.root / PATTERN} ... ({LAYOUT}); set data.download=true to fetch it "
                f"({self.url}), or data.root=/path/to/ravdess or SER_RAVDESS_ROOT"
            )
        paths = _wav_files(self.root)
        if not paths:
            # a common slip: data.root one level above the copy
            below = sorted(p.parent for p in self.root.glob("*/Actor_01") if p.is_dir())
            fix = f"data.root={below[0]}" if below else "data.root=/path/to/ravdess"
            raise CorpusError(
                f"ravdess: no RAVDESS wav files in {self.root}: expected "
                f"{self.root / PATTERN} ... ({LAYOUT}); set {fix} or SER_RAVDESS_ROOT"
            )
        utterances, bad, seen = [], [], {}
        for path in paths:
            problem = _problem(path)
            if problem is None and path.stem in seen:
                problem = f"the same recording as {seen[path.stem]}"
            if problem:
                bad.append((path, problem))
                continue
            seen[path.stem] = path
            fields = path.stem.split("-")
            label = EMOTIONS[fields[2]]
            if self.merge_calm and label == "cal":
                label = "neu"
            if label in self.classes:
                actor = fields[6]
                utterances.append(
                    Utterance(
                        id=path.stem, path=path, label=label, speaker=actor,
                        gender="M" if int(actor) % 2 else "F",
                    )
                )  # fmt: skip
        self._settle_unparsed(
            bad, root=self.root, total=len(paths), expected=f"RAVDESS speech files ({LAYOUT})"
        )
        return utterances

    def folds(self) -> list[Fold]:
        if self.fold_scheme == "loso":
            return leave_one_speaker_out(ACTORS)
        return column_folds({actor: (int(actor) - 1) // 4 for actor in ACTORS})


def _has_actor_folders(root: Path) -> bool:
    """Whether ``root`` holds ``Actor_NN`` folders, directly or under the archive's folder."""
    return any(
        p.is_dir() and _FOLDER.match(p.name)
        for base in (root, root / SPEECH_FOLDER)
        for p in base.glob("Actor_*")
    )


def _wav_files(root: Path) -> list[Path]:
    """Every visible wav file one or two levels below ``root`` (and below its speech folder)."""
    bases = [root, root / SPEECH_FOLDER] if (root / SPEECH_FOLDER).is_dir() else [root]
    paths = {p for base in bases for pattern in ("*.wav", "*/*.wav") for p in base.glob(pattern)}
    return sorted(
        p for p in paths if not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _problem(path: Path) -> str | None:
    """Why ``path`` is not a RAVDESS speech file, or ``None`` when it is one."""
    folder = _FOLDER.match(path.parent.name)
    if folder is None:
        return "not in an Actor_NN folder"
    match = _NAME.match(path.stem)
    if match is None:
        return "not MM-VV-EE-II-SS-RR-NN.wav"
    modality, vocal, emotion, intensity, statement, repetition, actor = match.groups()
    if modality != "03":
        return f"modality {modality} is not audio-only (03)"
    if vocal == "02":
        return SONG
    checks = [
        (vocal == "01", f"unknown vocal channel {vocal}"),
        (emotion in EMOTIONS, f"unknown emotion code {emotion}"),
        (intensity in ("01", "02"), f"unknown intensity {intensity}"),
        (not (emotion == "01" and intensity == "02"), "neutral has no strong intensity (02)"),
        (statement in ("01", "02"), f"unknown statement {statement}"),
        (repetition in ("01", "02"), f"unknown repetition {repetition}"),
        (actor in ACTORS, f"unknown actor {actor}"),
        (actor == folder[1], f"actor {actor} in the name, folder {path.parent.name}"),
    ]
    return next((why for ok, why in checks if not ok), None)


def _check(unpacked: Path) -> None:
    """Reject an archive that is not RAVDESS speech: it must hold the 1440 speech files."""
    valid = [p for p in _wav_files(unpacked) if _problem(p) is None]
    if len(valid) != N_FILES:
        raise DownloadError(
            f"the archive holds {len(valid)} RAVDESS speech wav files in Actor_NN/ folders, "
            f"expected {N_FILES}"
        )
