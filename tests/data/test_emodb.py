"""Emo-DB on the shared copy: counts and genders from shared/data/emodb/README.md."""

from __future__ import annotations

from collections import Counter

import pytest

from ser.data.corpora import CorpusError, EmoDB

ALL7 = ("ang", "sad", "hap", "neu", "bor", "dis", "fea")
# README: "E emotion (German initial)" and the module's mapping to IEMOCAP-style codes
LETTER = {"W": "ang", "L": "bor", "E": "dis", "A": "fea", "F": "hap", "T": "sad", "N": "neu"}
# README "Counts in this copy"
EMOTION_COUNTS = {"W": 127, "L": 81, "E": 46, "A": 69, "F": 71, "T": 62, "N": 79}
FOUR_CLASS = {"ang": 127, "hap": 71, "neu": 79, "sad": 62}
SPEAKER_COUNTS = {
    "03": 49, "08": 58, "09": 43, "10": 38, "11": 55,
    "12": 35, "13": 61, "14": 69, "15": 56, "16": 71,
}  # fmt: skip
# README: "03 m, 08 f, 09 f, 10 m, 11 m, 12 m, 13 f, 14 f, 15 m, 16 f"
GENDERS = {
    "03": "M", "08": "F", "09": "F", "10": "M", "11": "M",
    "12": "M", "13": "F", "14": "F", "15": "M", "16": "F",
}  # fmt: skip


def test_all_seven_classes(emodb_root):
    corpus = EmoDB(root=emodb_root, classes=ALL7, download=False)
    assert len(corpus.utterances) == sum(EMOTION_COUNTS.values()) == 535
    by_class = Counter(u.label for u in corpus.utterances)
    assert by_class == {LETTER[e]: n for e, n in EMOTION_COUNTS.items()}
    assert Counter(u.speaker for u in corpus.utterances) == SPEAKER_COUNTS
    totals = {s: sum(c.values()) for s, c in corpus.counts().items()}
    assert totals == SPEAKER_COUNTS


def test_default_four_class_subset(emodb_root):
    corpus = EmoDB(root=emodb_root, download=False)
    assert corpus.classes == ("ang", "sad", "hap", "neu")
    assert len(corpus.utterances) == 339
    assert Counter(u.label for u in corpus.utterances) == FOUR_CLASS
    assert sum(sum(c.values()) for c in corpus.counts().values()) == 339


def test_label_speaker_and_gender_from_the_file_name(emodb_root):
    corpus = EmoDB(root=emodb_root, classes=ALL7, download=False)
    for u in corpus.utterances:
        name = u.path.name  # SSTTTEV.wav
        assert u.path.parent == emodb_root / "wav"
        assert u.id == name[:-4]
        assert u.speaker == name[:2]
        assert u.label == LETTER[name[5]]
        assert u.gender == GENDERS[u.speaker]
    assert {u.speaker: u.gender for u in corpus.utterances} == GENDERS


def test_unknown_class_is_an_error(emodb_root):
    with pytest.raises(CorpusError) as err:
        EmoDB(root=emodb_root, classes=("ang", "joy"), download=False)
    assert "joy" in str(err.value)
    for code in ALL7:
        assert code in str(err.value)  # the message lists the valid codes


def test_stray_files_are_ignored(emodb_root, tmp_path):
    wav = tmp_path / "emodb" / "wav"
    wav.mkdir(parents=True)
    names = ["03a01Fa.wav", "03a01Nc.wav", "08b02Wb.wav", "16a05Tc.wav"]
    for name in names:
        (wav / name).symlink_to(emodb_root / "wav" / name)
    (wav / "notes.wav").symlink_to(emodb_root / "wav" / names[0])
    (wav / "99a01Fa.wav").symlink_to(emodb_root / "wav" / names[0])  # no such speaker
    (wav / "03a01Fa.txt").write_text("label file")
    corpus = EmoDB(root=tmp_path / "emodb", download=False)
    assert sorted(u.path.name for u in corpus.utterances) == names


def test_root_without_wav_folder(tmp_path):
    with pytest.raises(CorpusError) as err:
        _ = EmoDB(root=tmp_path, download=False).utterances
    assert str(tmp_path) in str(err.value)
    assert "data.root" in str(err.value)


def test_folds_pair_male_and_female(emodb_root):
    corpus = EmoDB(root=emodb_root, download=False)
    folds = corpus.folds()
    assert [f.test for f in folds] == [(s,) for s in sorted(GENDERS)]
    for fold in folds:
        (test,) = fold.test
        (val,) = fold.val
        assert {GENDERS[test], GENDERS[val]} == {"F", "M"}
        # the pairing is symmetric: the partner's fold validates on this speaker
        assert folds[sorted(GENDERS).index(val)].val == (test,)


def test_a_requested_class_without_utterances_is_an_error(emodb_root, tmp_path):
    wav = tmp_path / "emodb" / "wav"
    wav.mkdir(parents=True)
    for name in ["03a01Fa.wav", "08b02Wb.wav", "16a05Tc.wav"]:
        (wav / name).symlink_to(emodb_root / "wav" / name)
    with pytest.raises(CorpusError, match=r"no utterances of class\(es\) \['neu'\]"):
        _ = EmoDB(root=tmp_path / "emodb", download=False).utterances
