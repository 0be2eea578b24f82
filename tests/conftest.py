"""Shared fixtures: shared Emo-DB and EMOVO copies, Emo-DB's feature cache, a mock IEMOCAP tree.

The IEMOCAP tree follows ``shared/docs/IEMOCAP.md`` ("Fixtures"): it keeps everything of a
real copy a loader could trip on, and returns the ground truth it wrote so tests compute
expected counts from it, not from the parser under test.
"""

from __future__ import annotations

import io
import os
import random
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]

# An xdist worker (make test) shares the cores with the others: one thread each, also in the
# train.py / sweep.py processes tests start (they inherit the environment). Set before torch
# is imported, which reads it once.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def shared_copy(corpus: str, *, marker: str, expected: str) -> Path:
    """The shared copy of ``corpus`` (``SER_<CORPUS>_ROOT`` or ``<repo>/../shared/data/<corpus>``);
    the test fails, naming what to set, when ``marker`` is not a folder in it."""
    variable = f"SER_{corpus.upper()}_ROOT"
    root = Path(os.environ.get(variable) or REPO.parent / "shared" / "data" / corpus)
    if not (root / marker).is_dir():
        pytest.fail(
            f"no {corpus} copy at {root} (expected {root}/{expected}): set {variable} to a "
            "folder holding it"
        )
    return root


# ----------------------------------------------------------------------------- Emo-DB


@pytest.fixture(scope="session")
def emodb_root() -> Path:
    """The shared Emo-DB copy (``SER_EMODB_ROOT`` or ``<repo>/../shared/data/emodb``)."""
    return shared_copy("emodb", marker="wav", expected="wav/03a01Fa.wav ...")


@pytest.fixture(scope="session")
def emodb_cache_dir(emodb_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A feature cache filled once for the 4-class Emo-DB corpus (default features).

    Read-only for tests: a test that changes cache contents makes its own.
    """
    from ser.data import SERDataModule
    from ser.data.corpora import EmoDB

    cache_dir = tmp_path_factory.mktemp("emodb-cache")
    corpus = EmoDB(root=emodb_root, download=False)
    SERDataModule(corpus=corpus, fold=0, cache_dir=cache_dir, progress=False).prepare_data()
    return cache_dir


# ----------------------------------------------------------------------------- EMOVO


@pytest.fixture(scope="session")
def emovo_root() -> Path:
    """The shared EMOVO copy (``SER_EMOVO_ROOT`` or ``<repo>/../shared/data/emovo``)."""
    return shared_copy("emovo", marker="f1", expected="f1/rab-f1-b1.wav ... m3/")


def write_tone(path: Path, *, seconds: float, freq: float, sample_rate: int = 16000, seed=0):
    """A tone plus a little noise, 16-bit PCM mono."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, sample_rate, subtype="PCM_16")


@pytest.fixture(scope="session")
def noise_wav() -> bytes:
    """0.1 s of 16 kHz noise as 16-bit wav bytes: made once, copied into every file of a
    synthetic corpus tree (RAVDESS, CREMA-D, SAVEE)."""
    buffer = io.BytesIO()
    sf.write(buffer, 0.1 * np.random.default_rng(0).standard_normal(1600), 16000, format="WAV")
    return buffer.getvalue()


# ----------------------------------------------------------------------------- IEMOCAP


class IemocapUtt(NamedTuple):
    """Ground truth of one labelled utterance the builder wrote."""

    id: str
    label: str
    speaker: str
    improvised: bool
    has_wav: bool


#: labels drawn for the utterances of the mock tree (real codes, 'xxx' = no majority)
LABEL_POOL = ["neu", "hap", "sad", "ang", "exc", "fru", "xxx", "neu", "sur", "fea"]
CATEGORY = {
    "neu": "Neutral",
    "hap": "Happiness",
    "sad": "Sadness",
    "ang": "Anger",
    "exc": "Excited",
    "fru": "Frustration",
    "xxx": "Other",
    "sur": "Surprise",
    "fea": "Fear",
}
#: a labelled utterance id whose wav is missing (it has a transcription only)
NO_WAV_ID = "Ses02F_impro01_M099"
#: a wav that only the hidden AppleDouble label file mentions (must not be loaded)
HIDDEN_ONLY_ID = "Ses01F_impro01_F900"


def _dialogs(session: int) -> list[str]:
    s = f"Ses0{session}"
    dialogs = [f"{s}F_impro01", f"{s}M_impro02", f"{s}F_script01_1", f"{s}M_script02_2"]
    if session == 3:
        dialogs += ["Ses03M_impro05a", "Ses03M_impro05b", "Ses03M_impro08a", "Ses03M_impro08b"]
    if session == 5:
        dialogs += ["Ses05M_script01_1b"]
    return dialogs


def _summary(start: float, utt_id: str, label: str) -> str:
    return f"[{start:.4f} - {start + 1.5:.4f}]\t{utt_id}\t{label}\t[2.5000, 3.0000, 2.5000]"


def _block(start: float, utt_id: str, label: str, n_annotators: int) -> list[str]:
    """One summary line and a varying number of annotator lines (C-..., A-...)."""
    name = CATEGORY[label] if label != "xxx" else "Frustration"
    other = "Neutral" if label != "neu" else "Sadness"
    lines = [_summary(start, utt_id, label)]
    for k in range(n_annotators):
        lines.append(f"C-E{k + 1}:\t{name if k % 2 == 0 else other};\t()")
    lines.append(f"C-F{n_annotators}:\t{name};\t(curious)")
    for k in range(n_annotators - 1):
        lines.append(f"A-E{k + 1}:\tval 3; act 2; dom  2;\t()")
    lines.append("")
    return lines


def build_iemocap(root: Path, *, seed: int = 7) -> list[IemocapUtt]:
    """Write a small ``IEMOCAP_full_release`` tree under ``root``; return its ground truth."""
    rng = random.Random(seed)
    truth: list[IemocapUtt] = []
    for session in range(1, 6):
        sdir = root / f"Session{session}"
        emo = sdir / "dialog" / "EmoEvaluation"
        for sub in ("Categorical", "Attribute", "Self-evaluation"):
            (emo / sub).mkdir(parents=True, exist_ok=True)
        (sdir / "dialog" / "transcriptions").mkdir(parents=True, exist_ok=True)
        (sdir / "sentences" / "ForcedAlignment").mkdir(parents=True, exist_ok=True)
        for dialog in _dialogs(session):
            improvised = "_impro" in dialog
            lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            transcript, categorical, self_eval = [], [], []
            index = {"F": 0, "M": 0}
            n_utts = rng.randint(11, 13)
            # both genders speak in every dialog; the first turns of each dialog cover the
            # four default classes for both speakers, then exc, fru and xxx
            genders = ["F", "M"] * 4 + [rng.choice("FM") for _ in range(n_utts - 8)]
            fixed = ["ang", "ang", "sad", "sad", "hap", "hap", "neu", "neu", "exc", "fru", "xxx"]
            for turn, gender in enumerate(genders):
                label = fixed[turn] if turn < len(fixed) else rng.choice(LABEL_POOL)
                utt_id = f"{dialog}_{gender}{index[gender]:03d}"
                index[gender] += 1
                start = 2.0 * turn + 0.29
                lines += _block(start, utt_id, label, n_annotators=2 + turn % 3)
                transcript.append(f"{utt_id} [{start:08.4f}-{start + 1.5:08.4f}]: Hello there.")
                categorical.append(f"{utt_id} :{CATEGORY[label]}; ()")
                # the self-evaluation disagrees with the majority label: a loader that
                # read it (instead of the summary file) would mislabel
                self_eval.append(_summary(start, utt_id, "ang" if label != "ang" else "neu"))
                speaker = f"Ses0{session}{gender}"
                truth.append(IemocapUtt(utt_id, label, speaker, improvised, True))
                write_tone(
                    sdir / "sentences" / "wav" / dialog / f"{utt_id}.wav",
                    seconds=rng.choice([0.2, 0.3, 0.4]),
                    freq=200 + 37 * (len(truth) % 150),
                    seed=len(truth),
                )
            if dialog == "Ses02F_impro01":
                lines += _block(40.0, NO_WAV_ID, "ang", n_annotators=3)
                transcript.append(f"{NO_WAV_ID} [040.0000-041.5000]: No audio for me.")
                truth.append(IemocapUtt(NO_WAV_ID, "ang", "Ses02M", True, False))
                # a non-wav file named like the missing utterance, in the wav folder
                stray = sdir / "sentences" / "wav" / dialog / f"{NO_WAV_ID}.txt"
                stray.write_text("not audio\n")
            (emo / f"{dialog}.txt").write_text("\n".join(lines) + "\n")
            (emo / "Categorical" / f"{dialog}_e2_cat.txt").write_text("\n".join(categorical))
            (emo / "Attribute" / f"{dialog}_e3_atr.txt").write_text(
                "\n".join(f"{t.split()[0]} :act 2; val 3; dom  2; ()" for t in categorical)
            )
            (emo / "Self-evaluation" / f"{dialog}.txt").write_text("\n".join(self_eval) + "\n")
            (sdir / "dialog" / "transcriptions" / f"{dialog}.txt").write_text(
                "\n".join(transcript) + "\n"
            )
        # stray files a copied tree can hold
        (emo / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1\x00\xff")
        (sdir / "sentences" / "wav" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    # a hidden AppleDouble copy of a label file, naming a wav that no real label file names
    emo1 = root / "Session1" / "dialog" / "EmoEvaluation"
    (emo1 / "._Ses01F_impro01.txt").write_bytes(
        b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X\n"
        + _summary(1.0, HIDDEN_ONLY_ID, "ang").encode()
    )
    wav1 = root / "Session1" / "sentences" / "wav" / "Ses01F_impro01"
    write_tone(wav1 / f"{HIDDEN_ONLY_ID}.wav", seconds=0.3, freq=440)
    (wav1 / "._Ses01F_impro01_F000.wav").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    # a whole-dialog wav (not an utterance)
    write_tone(root / "Session1" / "dialog" / "wav" / "Ses01F_impro01.wav", seconds=0.5, freq=300)
    return truth


class IemocapTree(NamedTuple):
    """A built mock tree: its root, ground truth and the ids of its traps."""

    root: Path
    truth: list[IemocapUtt]
    no_wav_id: str = NO_WAV_ID
    hidden_only_id: str = HIDDEN_ONLY_ID


@pytest.fixture(scope="session")
def iemocap_tree(tmp_path_factory: pytest.TempPathFactory) -> IemocapTree:
    """A mock IEMOCAP tree built once (read-only for tests)."""
    root = tmp_path_factory.mktemp("iemocap") / "IEMOCAP_full_release"
    return IemocapTree(root, build_iemocap(root))


@pytest.fixture
def iemocap_builder():
    """The tree builder itself, for tests that need a tree of their own to alter."""
    return build_iemocap


@pytest.fixture
def wav_writer():
    """``write(path, seconds=..., freq=..., sample_rate=16000)``: a short 16-bit tone."""
    return write_tone


# ----------------------------------------------------------------------------- manifest

#: Emo-DB emotion letter -> class code (shared/data/emodb/README.md, ser's codes)
EMODB_LETTER = {"W": "ang", "T": "sad", "F": "hap", "N": "neu"}


def build_emodb_manifest(
    emodb_root: Path, folder: Path, *, speakers=("03", "08", "09", "10"), per_class: int = 2
) -> Path:
    """Copy a few 4-class Emo-DB files of ``speakers`` into ``folder``; write ``corpus.csv``.

    Copies, not links: tests may modify the audio.
    """
    (folder / "audio").mkdir(parents=True)
    lines = ["path,label,speaker,gender"]
    for speaker in speakers:
        taken: dict[str, int] = {}
        for wav in sorted((emodb_root / "wav").glob(f"{speaker}*.wav")):
            label = EMODB_LETTER.get(wav.stem[5])
            if label is None or taken.get(label, 0) >= per_class:
                continue
            taken[label] = taken.get(label, 0) + 1
            shutil.copy(wav, folder / "audio" / wav.name)
            lines.append(f"audio/{wav.name},{label},{speaker},")
    manifest = folder / "corpus.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


@pytest.fixture(scope="session")
def small_emodb(emodb_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide manifest of 48 Emo-DB files: speakers 03 (the test speaker of fold 0),
    08 (validation), 09 and 10, 3 files per class each. Read-only for tests."""
    return build_emodb_manifest(emodb_root, tmp_path_factory.mktemp("small-emodb"), per_class=3)


@pytest.fixture
def manifest_builder():
    """:func:`build_emodb_manifest` itself, for tests that need other speakers."""
    return build_emodb_manifest


@pytest.fixture
def emodb_manifest(emodb_root: Path, tmp_path: Path) -> Path:
    """A manifest corpus of 4 Emo-DB speakers (03, 08, 09, 10), 2 files per class each.

    Leave-one-speaker-out fold 0: test 03, validation 08, training 09 and 10.
    """
    return build_emodb_manifest(emodb_root, tmp_path / "small-corpus")


# ----------------------------------------------------------------------------- Hydra configs


@pytest.fixture
def compose_config(emodb_root: Path, emodb_cache_dir: Path, tmp_path: Path, monkeypatch):
    """``compose(overrides, config_name="config")``: the real config tree, run folder in tmp.

    Emo-DB points at the shared copy and the feature cache at the session's filled cache;
    the Hydra runtime values are set as ``train.py`` would set them.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from ser.config import CONFIG_DIR

    monkeypatch.setenv("SER_EMODB_ROOT", str(emodb_root))

    def _compose(overrides: list[str], *, config_name: str = "config", run_dir: Path | None = None):
        run_dir = run_dir or tmp_path / "run"
        GlobalHydra.instance().clear()
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            cfg = compose(
                config_name,
                overrides=[
                    f"paths.root_dir={tmp_path}",
                    f"paths.cache_dir={emodb_cache_dir}",
                    f"paths.output_dir={run_dir}",
                    f"hydra.run.dir={run_dir}",
                    *overrides,
                ],
                return_hydra_config=True,
            )
        HydraConfig().set_config(cfg)
        with open_dict(cfg):
            del cfg.hydra
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


# ----------------------------------------------------------------------------- inference


@pytest.fixture
def trained(compose_config, tmp_path):
    """A debug ASRNN trained on Emo-DB fold 0 (test speaker 03): (results, best checkpoint)."""
    cfg = compose_config(
        ["model=asrnn", "debug=fast", "trainer.max_epochs=3", "model.optimizer.lr=0.003"],
        run_dir=tmp_path / "run",
    )
    from ser.task import train

    results = train(cfg)
    return results, Path(results["best_checkpoint"])


@pytest.fixture
def audio_dir(tmp_path, emodb_root):
    """Four test-speaker files, a corrupt file, a file with NaN samples and a stereo 44.1 kHz
    file."""
    folder = tmp_path / "audio"
    folder.mkdir()
    names = ["03a01Fa", "03a02Ta", "03a04Nc", "03a05Wa"]
    for name in names:
        shutil.copy(emodb_root / "wav" / f"{name}.wav", folder / f"{name}.wav")
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00not really a wave file")
    nan_wave, rate = sf.read(emodb_root / "wav" / "03a01Nc.wav", dtype="float32")
    nan_wave[1000:1100] = np.nan
    sf.write(folder / "nan.wav", nan_wave, rate, subtype="FLOAT")
    wave, rate = sf.read(emodb_root / "wav" / "03a01Wa.wav", dtype="float32")
    import torch
    import torchaudio

    wave = torchaudio.functional.resample(torch.from_numpy(wave), rate, 44100).numpy()
    sf.write(folder / "stereo.flac", np.stack([wave, 0.5 * wave], axis=1), 44100)
    return folder, names


# ----------------------------------------------------------------------------- encoders


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny WavLM folder (:func:`tiny_encoders.save_tiny_wavlm`: padded batches with
    attention masks)."""
    from tiny_encoders import save_tiny_wavlm

    return save_tiny_wavlm(tmp_path_factory.mktemp("tiny-wavlm"))


#: test files of end-to-end fits, CLI subprocesses and sweeps: marked ``slow``, so that
#: ``make test-fast`` (``pytest -m "not slow"``) is the unit tier for the edit loop
SLOW_FILES = {
    "test_sweep.py", "test_search.py", "test_protocol.py", "test_runlock.py", "test_train.py",
    "test_evaluate.py", "test_sync_check.py", "test_sweep_timing.py", "test_launcher.py",
    "test_inference.py", "test_resident.py", "test_averaging.py", "test_frontends.py",
    "test_predict.py", "test_augment.py", "test_checkpoint.py", "test_schedules.py",
    "test_callbacks.py", "test_stream.py", "test_errors.py", "test_cli.py",
    "test_docs_commands.py", "test_quiet.py", "test_loggers.py",
}  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
