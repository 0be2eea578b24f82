"""CREMA-D on a synthetic tree with the official names: counts, genders, folds, errors and
the Hydra presets.

The fixture writes ``AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav`` for some actors and a
``VideoDemographics.csv`` for all 91; expected values come from what it wrote.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import hydra
import pytest

from ser.config import CONFIG_DIR
from ser.data.corpora import CREMAD, CorpusError

# the CREMA-D README: emotion codes -> the project's codes
CODE = {"ANG": "ang", "DIS": "dis", "FEA": "fea", "HAP": "hap", "NEU": "neu", "SAD": "sad"}
FOUR = ("ang", "sad", "hap", "neu")
ALL6 = ("ang", "sad", "hap", "neu", "dis", "fea")
ACTORS = [str(n) for n in range(1001, 1092)]
SENTENCES = ["IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI"]
LEVELS = ["LO", "MD", "HI", "XX"]
SOURCE = "https://github.com/CheyneyComputerScience/CREMA-D"


class Tree(NamedTuple):
    root: Path
    written: list[Path]
    genders: dict[str, str]


def build(
    audio: bytes, root: Path, actors=("1001", "1002", "1040", "1050", "1091"), *, csv=True
) -> Tree:
    """``audio`` in a few files per actor (every emotion, several sentences and levels) and,
    with ``csv``, the demographics of all 91 actors (genders drawn at random)."""
    rng = random.Random(5)
    genders = {a: rng.choice(["Male", "Female"]) for a in ACTORS}
    wav_dir = root / "AudioWAV"
    wav_dir.mkdir(parents=True)
    written = []
    for i, actor in enumerate(actors):
        for j, emotion in enumerate(CODE):
            for sentence in SENTENCES[(i + j) % 4 :: 4]:
                level = LEVELS[(i + j + len(sentence)) % 4]
                written.append(wav_dir / f"{actor}_{sentence}_{emotion}_{level}.wav")
    if "1040" in actors:
        written.append(wav_dir / "1040_ITH_SAD_X.wav")  # the distribution's one-letter level
    for path in written:
        path.write_bytes(audio)
    if csv:
        lines = ['"ActorID","Age","Sex","Race","Ethnicity"']
        lines += [f'{a},30,"{g}","Caucasian","Not Hispanic"' for a, g in genders.items()]
        (root / "VideoDemographics.csv").write_text("\n".join(lines) + "\n")
    return Tree(root, written, {a: g[0] for a, g in genders.items()} if csv else {})


def label_of(path: Path) -> str:
    return CODE[path.stem.split("_")[2]]


@pytest.fixture(scope="module")
def tree(tmp_path_factory, noise_wav):
    return build(noise_wav, tmp_path_factory.mktemp("crema") / "CREMA-D")


# ----------------------------------------------------------------------------- counts


@pytest.mark.parametrize("classes", [FOUR, ALL6])
def test_counts_from_the_names(tree, classes):
    corpus = CREMAD(root=tree.root, classes=classes)
    expected = Counter((p.stem[:4], label_of(p)) for p in tree.written if label_of(p) in classes)
    speakers = sorted({s for s, _ in expected})
    assert corpus.speakers == speakers
    assert corpus.counts() == {s: {c: expected[s, c] for c in classes} for s in speakers}
    assert len(corpus.utterances) == sum(expected.values())
    assert corpus.skipped == []


def test_label_speaker_and_gender(tree):
    corpus = CREMAD(root=tree.root, classes=ALL6)
    assert sorted(u.path for u in corpus.utterances) == sorted(tree.written)
    for u in corpus.utterances:
        actor, _, emotion, _ = u.path.stem.split("_")
        assert u.id == u.path.stem
        assert u.label == CODE[emotion]
        assert u.speaker == actor
        assert u.gender == tree.genders[actor]
    assert "1040_ITH_SAD_X" in {u.id for u in corpus.utterances}


def test_genders_unknown_without_demographics(tmp_path, noise_wav):
    tree = build(noise_wav, tmp_path / "CREMA-D", csv=False)
    corpus = CREMAD(root=tree.root)
    assert {u.gender for u in corpus.utterances} == {None}
    # the actors are then dealt by id
    assert [f.test for f in corpus.folds()] == [tuple(ACTORS[k::5]) for k in range(5)]


# ----------------------------------------------------------------------------- folds


def test_five_gender_balanced_folds(tree):
    folds = CREMAD(root=tree.root).folds()
    assert [f.index for f in folds] == list(range(5))
    for k, fold in enumerate(folds):
        test, val, train = set(fold.test), set(fold.val), set(fold.train)
        assert not (test & val or test & train or val & train)
        assert test | val | train == set(ACTORS)
        assert fold.val == folds[(k + 1) % 5].test
    assert sorted(a for f in folds for a in f.test) == ACTORS  # each actor tested once
    assert {len(f.test) for f in folds} <= {18, 19}
    for gender in "FM":
        per_fold = [sum(tree.genders[a] == gender for a in f.test) for f in folds]
        assert max(per_fold) - min(per_fold) <= 1, (gender, per_fold)
        assert sum(per_fold) == sum(g == gender for g in tree.genders.values())


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("1001_DFA_XYZ_XX.wav", "unknown emotion code 'XYZ'"),
        ("1001_DFA_ANG.wav", "not <actor>_<sentence>_<emotion>_<level>.wav"),
        ("0999_DFA_ANG_XX.wav", "unknown actor '0999'"),
        ("1001_ABC_ANG_XX.wav", "unknown sentence 'ABC'"),
        ("1001_DFA_ANG_ZZ.wav", "unknown level 'ZZ'"),
    ],
)
def test_bad_names_are_named_or_skipped(tmp_path, caplog, bad, reason, noise_wav):
    tree = build(noise_wav, tmp_path / "CREMA-D", actors=("1001",))
    (tree.root / "AudioWAV" / bad).write_bytes(noise_wav)
    with pytest.raises(CorpusError) as err:
        _ = CREMAD(root=tree.root).utterances
    message = str(err.value)
    assert f"{tree.root / 'AudioWAV' / bad} ({reason})" in message
    assert "data.skip_unparsed=true" in message and "\n" not in message

    corpus = CREMAD(root=tree.root, classes=ALL6, skip_unparsed=True)
    with caplog.at_level(logging.WARNING):
        assert sorted(u.path for u in corpus.utterances) == sorted(tree.written)
    assert corpus.skipped == [(tree.root / "AudioWAV" / bad, reason)]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"skipped 1 of {len(tree.written) + 1} wav files" in warning
    assert f"1 x {reason}" in warning


def test_several_unknown_codes_are_counted(tmp_path, caplog, noise_wav):
    tree = build(noise_wav, tmp_path / "CREMA-D", actors=("1002",))
    bad = ["1002_IEO_BOR_LO.wav", "1002_TIE_CAL_HI.wav", "1002_IOM_SUR_XX.wav"]
    for name in bad:
        (tree.root / "AudioWAV" / name).write_bytes(noise_wav)
    with pytest.raises(CorpusError, match=r"3 wav file\(s\) .*unknown emotion code 'BOR'"):
        _ = CREMAD(root=tree.root).utterances
    corpus = CREMAD(root=tree.root, skip_unparsed=True)
    with caplog.at_level(logging.WARNING):
        n = len(corpus.utterances)
    assert n == sum(label_of(p) in FOUR for p in tree.written)
    assert sorted(p.name for p, _ in corpus.skipped) == sorted(bad)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "skipped 3 of" in warning


def test_non_audio_files_are_ignored(tmp_path, noise_wav):
    tree = build(noise_wav, tmp_path / "CREMA-D", actors=("1003",))
    (tree.root / "AudioWAV" / "README.txt").write_text("not audio\n")
    (tree.root / "AudioWAV" / "._1003_DFA_ANG_XX.wav").write_bytes(b"\x00\x05\x16\x07")
    (tree.root / "SentenceFilenames.csv").write_text("Stimulus_Number,Filename\n")
    (tree.root / "AudioMP3").mkdir()
    (tree.root / "AudioMP3" / "1003_DFA_XYZ_XX.mp3").write_bytes(b"ID3")
    corpus = CREMAD(root=tree.root, classes=ALL6)
    assert sorted(u.path for u in corpus.utterances) == sorted(tree.written)


def test_missing_root_says_where_to_get_the_corpus(tmp_path):
    root = tmp_path / "nowhere" / "CREMA-D"
    with pytest.raises(CorpusError) as err:
        _ = CREMAD(root=root).utterances
    message = str(err.value)
    assert f"CREMA-D not found at {root}" in message
    assert str(root / "AudioWAV" / "1001_DFA_ANG_XX.wav") in message
    assert SOURCE in message and "no download" in message
    assert "data.root=" in message and "SER_CREMA_D_ROOT" in message
    assert "\n" not in message


@pytest.mark.parametrize("where", ["AudioWAV", "parent"])
def test_root_at_the_wrong_level_names_the_copy(tmp_path, where, noise_wav):
    tree = build(noise_wav, tmp_path / "corpora" / "CREMA-D", actors=("1004",))
    root = tree.root / "AudioWAV" if where == "AudioWAV" else tmp_path / "corpora"
    with pytest.raises(CorpusError) as err:
        _ = CREMAD(root=root).utterances
    assert f"data.root={tree.root} " in str(err.value)


def test_git_lfs_pointers_are_an_error(tmp_path, noise_wav):
    tree = build(noise_wav, tmp_path / "CREMA-D", actors=("1005",))
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:ab12\nsize 4242\n"
    for path in tree.written:
        path.write_bytes(pointer)
    with pytest.raises(CorpusError) as err:
        _ = CREMAD(root=tree.root).utterances
    assert "Git LFS pointer" in str(err.value) and "git lfs pull" in str(err.value)
    assert str(sorted(tree.written)[0]) in str(err.value)


def test_malformed_demographics_name_the_file(tmp_path, noise_wav):
    tree = build(noise_wav, tmp_path / "CREMA-D", actors=("1006",))
    csv = tree.root / "VideoDemographics.csv"
    csv.write_text('"ActorID","Age","Gender"\n1006,30,"Male"\n')
    with pytest.raises(CorpusError, match=r"VideoDemographics\.csv has no column\(s\) \['Sex'\]"):
        CREMAD(root=tree.root).folds()
    csv.write_text('"ActorID","Sex"\n1006,"Unknown"\n')
    with pytest.raises(CorpusError) as err:
        _ = CREMAD(root=tree.root).utterances
    assert f"{csv} line 2" in str(err.value) and "'Unknown'" in str(err.value)


# ----------------------------------------------------------------------------- configs


def test_presets_compose(tree, monkeypatch):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ser.sweep import plan_sweep

    monkeypatch.delenv("SER_ROOT", raising=False)
    monkeypatch.delenv("SER_CREMA_D_ROOT", raising=False)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            default_root = compose("inspect", overrides=["data=crema_d"]).data.root
            four = compose("config", overrides=["data=crema_d", f"data.root={tree.root}"])
            monkeypatch.setenv("SER_CREMA_D_ROOT", str(tree.root))
            every = compose("inspect", overrides=["data=crema_d_all"])
            sweep = compose("sweep", overrides=["data=crema_d"], return_hydra_config=True)
            plan = plan_sweep(sweep, "sweep").line()
    finally:
        GlobalHydra.instance().clear()
    assert default_root == "./data/crema_d"
    four, every = hydra.utils.instantiate(four.data), hydra.utils.instantiate(every.data)
    assert isinstance(four, CREMAD) and four.root == tree.root and four.classes == FOUR
    assert isinstance(every, CREMAD) and every.root == tree.root and every.classes == ALL6
    assert len(every.utterances) == len(tree.written)
    assert plan == "sweep: 20 runs (4 models x 5 folds x 1 seed)"
