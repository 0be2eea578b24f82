"""SAVEE on synthetic trees with the official names (``AudioData/<SPK>/a01.wav`` and flat
``<SPK>_a01.wav``): counts, folds, errors and the Hydra presets.

Expected values come from the names the fixtures wrote and the SAVEE naming scheme (4 male
speakers; 15 sentences per emotion, 30 neutral), written out here.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import hydra
import pytest

from ser.config import CONFIG_DIR
from ser.data.corpora import SAVEE, CorpusError

# the SAVEE documentation: emotion prefix -> the project's code, and sentences per emotion
CODE = {"a": "ang", "d": "dis", "f": "fea", "h": "hap", "n": "neu", "sa": "sad", "su": "sur"}
N_SENTENCES = {"a": 15, "d": 15, "f": 15, "h": 15, "n": 30, "sa": 15, "su": 15}
FOUR = ("ang", "sad", "hap", "neu")
ALL7 = ("ang", "sad", "hap", "neu", "dis", "fea", "sur")
SPEAKERS = ["DC", "JE", "JK", "KL"]
SOURCE = "http://kahlan.eps.surrey.ac.uk/savee/"


def names() -> list[str]:
    """``a01 .. su15`` and ``n01 .. n30``: the 120 recordings of one speaker."""
    return [f"{e}{k:02d}" for e, n in N_SENTENCES.items() for k in range(1, n + 1)]


def build(audio: bytes, root: Path, *, flat: bool = False, speakers=SPEAKERS) -> list[Path]:
    """``audio`` in the official ``AudioData/<SPK>/<name>.wav`` tree, or in flat
    ``<SPK>_<name>.wav`` files."""
    written = []
    for speaker in speakers:
        for name in names():
            if flat:
                path = root / f"{speaker}_{name}.wav"
            else:
                path = root / "AudioData" / speaker / f"{name}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(audio)
            written.append(path)
    return written


def parse(path: Path) -> tuple[str, str]:
    """(speaker, class) of a written file."""
    if "_" in path.stem:
        speaker, name = path.stem.split("_")
    else:
        speaker, name = path.parent.name, path.stem
    return speaker, CODE[name.rstrip("0123456789")]


@pytest.fixture(scope="module")
def tree(tmp_path_factory, noise_wav):
    root = tmp_path_factory.mktemp("savee") / "savee"
    return root, build(noise_wav, root)


# ----------------------------------------------------------------------------- counts


@pytest.mark.parametrize("classes", [FOUR, ALL7])
def test_counts_from_the_names(tree, classes):
    root, written = tree
    corpus = SAVEE(root=root, classes=classes)
    expected = Counter(parse(p) for p in written if parse(p)[1] in classes)
    assert corpus.speakers == SPEAKERS
    assert corpus.counts() == {s: {c: expected[s, c] for c in classes} for s in SPEAKERS}
    assert len(corpus.utterances) == sum(expected.values())
    assert len(corpus.utterances) == {FOUR: 300, ALL7: 480}[classes]


def test_label_speaker_and_gender(tree):
    root, written = tree
    corpus = SAVEE(root=root, classes=ALL7)
    assert sorted(u.path for u in corpus.utterances) == sorted(written)
    for u in corpus.utterances:
        assert (u.speaker, u.label) == parse(u.path)
        assert u.id == f"{u.speaker}_{u.path.stem}"
        assert u.gender == "M"


@pytest.mark.parametrize("layout", ["flat", "flat in a folder", "speaker folders"])
def test_other_layouts_give_the_same_utterances(tree, tmp_path, layout, noise_wav):
    root, _ = tree
    if layout == "speaker folders":  # data.root at AudioData itself
        other = root / "AudioData"
    else:
        other = tmp_path / "savee"
        build(noise_wav, other / "ALL" if layout == "flat in a folder" else other, flat=True)
    reference = SAVEE(root=root, classes=ALL7)
    corpus = SAVEE(root=other, classes=ALL7)
    assert [(u.id, u.label, u.speaker) for u in corpus.utterances] == [
        (u.id, u.label, u.speaker) for u in reference.utterances
    ]


# ----------------------------------------------------------------------------- folds


def test_leave_one_speaker_out(tree):
    folds = SAVEE(root=tree[0]).folds()
    assert [(f.test, f.val) for f in folds] == [
        (("DC",), ("JE",)), (("JE",), ("JK",)), (("JK",), ("KL",)), (("KL",), ("DC",))
    ]  # fmt: skip
    for fold in folds:
        test, val, train = set(fold.test), set(fold.val), set(fold.train)
        assert not (test & val or test & train or val & train)
        assert test | val | train == set(SPEAKERS) and len(train) == 2
    assert sorted(s for f in folds for s in f.test) == SPEAKERS


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("AudioData/DC/x01.wav", "unknown emotion code 'x'"),
        ("AudioData/DC/a16.wav", "no sentence 16 of emotion 'a' (01-15)"),
        ("AudioData/DC/a1.wav", "not <emotion><NN>.wav nor <speaker>_<emotion><NN>.wav"),
        ("AudioData/XY/a01.wav", "<emotion><NN>.wav not in a speaker folder (DC JE JK KL)"),
        ("XY_a01.wav", "unknown speaker 'XY'"),
        ("AudioData/DC/JE_a01.wav", "speaker 'JE' in the name, folder 'DC'"),
        ("DC_n01.wav", "the same recording as"),
    ],
)
def test_bad_names_are_named_or_skipped(tmp_path, caplog, bad, reason, noise_wav):
    written = build(noise_wav, tmp_path, speakers=["DC"])
    (tmp_path / bad).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / bad).write_bytes(noise_wav)
    with pytest.raises(CorpusError) as err:
        _ = SAVEE(root=tmp_path).utterances
    message = str(err.value)
    assert f"{tmp_path / bad} ({reason}" in message
    assert "data.skip_unparsed=true" in message and "\n" not in message

    corpus = SAVEE(root=tmp_path, classes=ALL7, skip_unparsed=True)
    with caplog.at_level(logging.WARNING):
        assert sorted(u.path for u in corpus.utterances) == sorted(written)
    assert [p for p, _ in corpus.skipped] == [tmp_path / bad]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"skipped 1 of {len(written) + 1} wav files" in warning


def test_non_audio_files_are_ignored(tmp_path, noise_wav):
    written = build(noise_wav, tmp_path, speakers=["KL"])
    (tmp_path / "Info.txt").write_text("SAVEE\n")
    (tmp_path / "AudioData" / "KL" / "a01.lab").write_text("0 1 a\n")
    (tmp_path / "AudioData" / "KL" / "._a01.wav").write_bytes(b"\x00\x05\x16\x07")
    corpus = SAVEE(root=tmp_path, classes=ALL7)
    assert sorted(u.path for u in corpus.utterances) == sorted(written)


def test_missing_root_says_where_to_get_the_corpus(tmp_path):
    root = tmp_path / "nowhere" / "savee"
    with pytest.raises(CorpusError) as err:
        _ = SAVEE(root=root).utterances
    message = str(err.value)
    assert f"SAVEE not found at {root}" in message
    assert str(root / "AudioData" / "DC" / "a01.wav") in message
    assert SOURCE in message and "no download" in message
    assert "data.root=" in message and "SER_SAVEE_ROOT" in message
    assert "\n" not in message


def test_root_without_savee_files(tmp_path):
    (tmp_path / "README.md").write_text("not SAVEE\n")
    with pytest.raises(CorpusError, match="no SAVEE wav files in") as err:
        _ = SAVEE(root=tmp_path).utterances
    assert "AudioData/DC/a01.wav" in str(err.value)


# ----------------------------------------------------------------------------- configs


def test_presets_compose(tree, monkeypatch):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ser.sweep import plan_sweep

    root, written = tree
    monkeypatch.delenv("SER_ROOT", raising=False)
    monkeypatch.delenv("SER_SAVEE_ROOT", raising=False)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            default_root = compose("inspect", overrides=["data=savee"]).data.root
            four = compose("config", overrides=["data=savee", f"data.root={root}"])
            monkeypatch.setenv("SER_SAVEE_ROOT", str(root))
            every = compose("inspect", overrides=["data=savee_all"])
            sweep = compose("sweep", overrides=["data=savee"], return_hydra_config=True)
            plan = plan_sweep(sweep, "sweep").line()
    finally:
        GlobalHydra.instance().clear()
    assert default_root == "./data/savee"
    four, every = hydra.utils.instantiate(four.data), hydra.utils.instantiate(every.data)
    assert isinstance(four, SAVEE) and four.root == root and four.classes == FOUR
    assert isinstance(every, SAVEE) and every.root == root and every.classes == ALL7
    # ang, sad and hap tie at 15 per speaker: the preset names the augmented class
    assert four.minority_classes == ("hap",) and every.minority_classes == ("hap",)
    assert len(every.utterances) == len(written)
    assert plan == "sweep: 16 runs (4 models x 4 folds x 1 seed)"
