"""EMOVO on the shared copy: counts, folds, errors and segmenting of long utterances.

Expected values come from shared/data/emovo/README.md and SEED.md, written out here rather
than taken from the code under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import hydra
import pytest
import soundfile as sf
from omegaconf import OmegaConf

from ser.config import CONFIG_DIR
from ser.data.audio import load_audio
from ser.data.corpora import EMOVO, CorpusError

# README "Names": Italian emotion codes, and the project's codes for them
ITALIAN = {"rab": "ang", "tri": "sad", "gio": "hap", "neu": "neu",
           "dis": "dis", "pau": "fea", "sor": "sur"}  # fmt: skip
ALL7 = ("ang", "sad", "hap", "neu", "dis", "fea", "sur")
FOUR = ("ang", "sad", "hap", "neu")
SPEAKERS = ["f1", "f2", "f3", "m1", "m2", "m3"]
GENDERS = {"f1": "F", "f2": "F", "f3": "F", "m1": "M", "m2": "M", "m3": "M"}
SENTENCES = {"b1", "b2", "b3", "d1", "d2", "l1", "l2", "l3", "l4", "n1", "n2", "n3", "n4", "n5"}
# fold k: test speaker k, validation the next speaker of the same gender (cyclically)
FOLDS = [("f1", "f2"), ("f2", "f3"), ("f3", "f1"), ("m1", "m2"), ("m2", "m3"), ("m3", "m1")]
PATTERN = "f1/rab-f1-b1.wav"
# SEED.md: 300-frame segments, hop 100 for the training minority class; 25 ms / 10 ms frames
SEGMENT, HOP, WIN, STEP = 300, 100, 400, 160


# ----------------------------------------------------------------------------- counts


def test_all_seven_emotions(emovo_root):
    corpus = EMOVO(root=emovo_root, classes=ALL7)
    assert corpus.classes == ALL7
    assert len(corpus.utterances) == 588
    assert Counter(u.label for u in corpus.utterances) == {c: 84 for c in ALL7}
    assert Counter(u.speaker for u in corpus.utterances) == {s: 98 for s in SPEAKERS}
    assert corpus.counts() == {s: {c: 14 for c in ALL7} for s in SPEAKERS}


def test_default_four_class_subset(emovo_root):
    corpus = EMOVO(root=emovo_root)
    assert corpus.classes == FOUR  # rab tri gio neu, in Emo-DB's order
    assert len(corpus.utterances) == 336
    assert corpus.counts() == {s: {c: 14 for c in FOUR} for s in SPEAKERS}
    assert {s: sum(c.values()) for s, c in corpus.counts().items()} == {s: 56 for s in SPEAKERS}
    assert corpus.speakers == SPEAKERS


def test_label_speaker_and_gender_from_folder_and_name(emovo_root):
    corpus = EMOVO(root=emovo_root, classes=ALL7)
    for u in corpus.utterances:
        emotion, speaker, sentence = u.path.stem.split("-")
        assert u.path.parent == emovo_root / speaker
        assert u.id == u.path.stem
        assert u.label == ITALIAN[emotion]
        assert u.speaker == speaker
        assert u.gender == GENDERS[speaker]
        assert sentence in SENTENCES
    assert len({u.id for u in corpus.utterances}) == 588


def test_unknown_class_is_an_error(emovo_root):
    with pytest.raises(CorpusError) as err:
        EMOVO(root=emovo_root, classes=("ang", "bor"))  # boredom is Emo-DB only
    assert "bor" in str(err.value)
    for code in ALL7:
        assert code in str(err.value)


# ----------------------------------------------------------------------------- folds


def test_six_leave_one_speaker_out_folds(emovo_root):
    folds = EMOVO(root=emovo_root).folds()
    assert [f.index for f in folds] == list(range(6))
    assert [(f.test, f.val) for f in folds] == [((t,), (v,)) for t, v in FOLDS]
    for fold in folds:
        (test,), (val,) = fold.test, fold.val
        assert GENDERS[val] == GENDERS[test]
        assert set(fold.train) == set(SPEAKERS) - {test, val}
        assert len(fold.train) == 4
        assert not ({test} & {val} or {test, val} & set(fold.train))
    # every speaker is tested once and validates once
    assert sorted(f.test[0] for f in folds) == SPEAKERS
    assert sorted(f.val[0] for f in folds) == SPEAKERS


@pytest.mark.parametrize("index", [6, -1, "0"])
def test_fold_out_of_range(emovo_root, index):
    corpus = EMOVO(root=emovo_root)
    with pytest.raises(CorpusError, match=r"valid folds are 0\.\.5 .*5: test m3"):
        corpus.fold(index)


# ----------------------------------------------------------------------------- errors


def test_missing_root_is_one_clear_error(tmp_path):
    root = tmp_path / "nowhere" / "emovo"
    with pytest.raises(CorpusError) as err:
        _ = EMOVO(root=root).utterances
    message = str(err.value)
    assert f"EMOVO not found at {root}" in message
    assert str(root / PATTERN) in message
    assert "data.root=" in message and "SER_EMOVO_ROOT" in message
    assert err.value.__cause__ is None and "\n" not in message


def test_root_without_emovo_files_names_the_pattern(tmp_path):
    (tmp_path / "wav").mkdir()
    (tmp_path / "README.md").write_text("not EMOVO\n")
    with pytest.raises(CorpusError) as err:
        _ = EMOVO(root=tmp_path).utterances
    assert PATTERN in str(err.value)
    assert str(tmp_path) in str(err.value)


def test_root_one_level_too_high_names_the_copy(emovo_root, tmp_path):
    (tmp_path / "emovo" / "f1").mkdir(parents=True)
    (tmp_path / "emovo" / PATTERN).symlink_to(emovo_root / PATTERN)
    with pytest.raises(CorpusError) as err:
        _ = EMOVO(root=tmp_path).utterances
    assert PATTERN in str(err.value)
    assert f"data.root={tmp_path / 'emovo'}" in str(err.value)


@pytest.mark.parametrize(
    "bad",
    [
        "f1/xyz-f1-b2.wav",  # unknown emotion code
        "f2/rab-f1-b2.wav",  # speaker in the name differs from the folder
        "f1/rab_f1_b2.wav",  # not emotion-speaker-sentence
        "f1/rab-f1-z9.wav",  # unknown sentence
        "f4/rab-f4-b2.wav",  # unknown speaker
        "rab-f1-b2.wav",  # not in a speaker folder
    ],
)
def test_unparseable_wav_is_named(emovo_root, tmp_path, bad):
    for name in (PATTERN, bad):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).symlink_to(emovo_root / PATTERN)
    with pytest.raises(CorpusError) as err:
        _ = EMOVO(root=tmp_path).utterances
    assert str(tmp_path / bad) in str(err.value)
    assert PATTERN in str(err.value)
    assert str(tmp_path / PATTERN) + " " not in str(err.value)  # the good file is not blamed


def test_non_wav_and_hidden_files_are_ignored(emovo_root, tmp_path):
    names = ["f1/rab-f1-b1.wav", "f1/tri-f1-b1.wav", "m3/gio-m3-n5.wav", "m3/neu-m3-l4.wav"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).symlink_to(emovo_root / name)
    (tmp_path / "README.md").write_text("EMOVO\n")
    (tmp_path / "f1" / "notes.txt").write_text("not audio\n")
    (tmp_path / "f1" / "._rab-f1-b1.wav").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    corpus = EMOVO(root=tmp_path)
    assert [u.path.relative_to(tmp_path).as_posix() for u in corpus.utterances] == names


# ----------------------------------------------------------------------------- segments


def _frames(samples: int) -> int:
    """SEED.md framing: 25 ms frames every 10 ms at 16 kHz, the last partial frame dropped."""
    return 1 + (samples - WIN) // STEP


def _sliding_count(frames: int) -> int:
    """Windows of 300 at 0, 100, 200, ... that fit, plus one ending at the last frame."""
    fitting = (frames - SEGMENT) // HOP + 1
    return fitting + (1 if (frames - SEGMENT) % HOP else 0)


@pytest.fixture(scope="module")
def configured():
    """The feature extractor and segment policies as conf/ configures them for training."""
    features = hydra.utils.instantiate(OmegaConf.load(CONFIG_DIR / "features" / "logmel.yaml"))
    datamodule = OmegaConf.load(CONFIG_DIR / "datamodule" / "default.yaml")
    assert features.segment_frames(datamodule.segment_s) == SEGMENT
    train = hydra.utils.instantiate(datamodule.train_segments)
    evaluation = hydra.utils.instantiate(datamodule.eval_segments)
    return features, train, evaluation


def test_long_utterances_give_several_segments(emovo_root, configured):
    features, train, evaluation = configured
    corpus = EMOVO(root=emovo_root)
    samples = {u.path: sf.info(str(u.path)).frames for u in corpus.utterances}
    longest = max(corpus.utterances, key=lambda u: samples[u.path])
    shortest = min(corpus.utterances, key=lambda u: samples[u.path])
    assert sf.info(str(longest.path)).samplerate == 16000  # README: no resampling

    long_t = _frames(samples[longest.path])
    short_t = _frames(samples[shortest.path])
    assert long_t > 1000 and short_t <= SEGMENT  # README: 1.3 - 14 s
    # the real features of the longest file have T frames
    extracted = features(load_audio(longest.path))
    assert tuple(extracted.shape) == (3, long_t, 40)

    # evaluation: first and last 300 frames of a long utterance, one padded segment otherwise
    table = evaluation.segment([long_t, short_t], [longest.label, shortest.label], length=SEGMENT)
    assert table.utterance.tolist() == [0, 0, 1]
    assert table.start.tolist() == [0, long_t - SEGMENT, 0]
    assert table.valid.tolist() == [SEGMENT, SEGMENT, short_t]

    # training, long utterance of the minority class (one utterance against two)
    other = "neu" if longest.label != "neu" else "ang"
    table = train.segment([long_t, 250, 260], [longest.label, other, other], length=SEGMENT)
    n_long = _sliding_count(long_t)
    assert n_long > 2
    assert table.utterance.tolist() == [0] * n_long + [1, 2]
    starts = table.start.tolist()[:n_long]
    assert starts[: n_long - 1] == [HOP * k for k in range(n_long - 1)]
    assert starts[-1] == long_t - SEGMENT
    assert set(table.valid.tolist()[:n_long]) == {SEGMENT}

    # training, long utterance of a majority class: first and last 300 frames only
    table = train.segment(
        [long_t, long_t, short_t], [longest.label, longest.label, other], length=SEGMENT
    )
    assert table.utterance.tolist() == [0, 0, 1, 1, 2]
    assert table.start.tolist() == [0, long_t - SEGMENT, 0, long_t - SEGMENT, 0]


def test_segment_counts_of_a_fold(emovo_root, configured):
    """Fold 0's evaluation splits: 2 segments per utterance over 300 frames, else 1."""
    _, _, evaluation = configured
    corpus = EMOVO(root=emovo_root)
    for speaker in ("f1", "f2"):  # test and validation speakers of fold 0
        utterances = [u for u in corpus.utterances if u.speaker == speaker]
        frames = [_frames(sf.info(str(u.path)).frames) for u in utterances]
        table = evaluation.segment(frames, [u.label for u in utterances], length=SEGMENT)
        expected = sum(2 if t > SEGMENT else 1 for t in frames)
        assert len(table) == expected
        assert expected > len(utterances)  # some EMOVO utterances really are cut in two


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize("config_name", ["inspect", "config"])
def test_presets_compose(emovo_root, monkeypatch, config_name):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.delenv("SER_ROOT", raising=False)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            monkeypatch.delenv("SER_EMOVO_ROOT", raising=False)
            default = compose(config_name, overrides=["data=emovo"])
            assert default.data.root == "./data/emovo"
            monkeypatch.setenv("SER_EMOVO_ROOT", str(emovo_root))
            four = hydra.utils.instantiate(compose(config_name, overrides=["data=emovo"]).data)
            seven = compose(config_name, overrides=["data=emovo_7class"])
            seven = hydra.utils.instantiate(seven.data)
    finally:
        GlobalHydra.instance().clear()
    assert isinstance(four, EMOVO) and four.root == emovo_root
    assert four.classes == FOUR
    # every class ties at 14 utterances per speaker: the preset names the augmented class
    assert four.minority_classes == ("hap",) and seven.minority_classes == ("hap",)
    assert isinstance(seven, EMOVO) and seven.classes == ALL7
    assert len(seven.utterances) == 588


@pytest.fixture(scope="module")
def inspect_runs(emovo_root, tmp_path_factory):
    """``python -m ser.inspect data=emovo``: with SER_EMOVO_ROOT set, and with no copy."""
    found, missing = tmp_path_factory.mktemp("found"), tmp_path_factory.mktemp("missing")
    env = {k: v for k, v in os.environ.items() if k not in ("SER_EMOVO_ROOT", "SER_ROOT")}
    runs = {
        "found": (found, {**env, "SER_EMOVO_ROOT": str(emovo_root)}, [f"+json={found}/out.json"]),
        "missing": (missing, env, []),
    }
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "ser.inspect", "data=emovo", *args],
            cwd=cwd,
            env=run_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (cwd, run_env, args) in runs.items()
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = (runs[name][0], proc.returncode, out, err)
    return results


def test_inspect_shows_speakers_classes_and_folds(inspect_runs, emovo_root):
    cwd, code, out, err = inspect_runs["found"]
    assert code == 0, err
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert rows[0] == ["emovo:", str(emovo_root), "(336", "utterances)"]
    assert ["speaker", "ang", "sad", "hap", "neu", "total"] in rows
    for speaker in SPEAKERS:
        assert [speaker, "14", "14", "14", "14", "56"] in rows
    assert ["total", "84", "84", "84", "84", "336"] in rows
    assert ["fold", "test", "val", "train"] in rows
    fold_rows = [r for r in rows if r[0].isdigit()]
    assert fold_rows == [[str(k), t, v, "4", "spk"] for k, (t, v) in enumerate(FOLDS)]

    report = json.loads((cwd / "out.json").read_text())
    assert report["counts"] == {s: {c: 14 for c in FOUR} for s in SPEAKERS}
    assert [(f["fold"], f["test"], f["val"]) for f in report["folds"]] == [
        (k, [t], [v]) for k, (t, v) in enumerate(FOLDS)
    ]
    assert sorted(p.name for p in cwd.iterdir()) == ["out.json"]


def test_inspect_without_a_copy_is_a_one_line_error(inspect_runs):
    cwd, code, out, err = inspect_runs["missing"]
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: emovo: EMOVO not found at")
    assert str(Path("data") / "emovo" / PATTERN) in lines[0]
    assert "SER_EMOVO_ROOT" in lines[0]
    assert "Traceback" not in err + out
    assert list(cwd.iterdir()) == []
