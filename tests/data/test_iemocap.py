"""IEMOCAP metadata parser on a mock tree (shared/docs/IEMOCAP.md)."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from ser.data.corpora import IEMOCAP, CorpusError

DEFAULT = ("ang", "sad", "hap", "neu")
#: IEMOCAP.md: fold k tests speaker k of this order
SPEAKER_ORDER = [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]


def expected(truth, classes, *, scripted=False, merge_exc=False):
    """``{id: (label, speaker)}`` of the subset, computed from the builder's ground truth."""
    out = {}
    for t in truth:
        label = "hap" if merge_exc and t.label == "exc" else t.label
        if t.has_wav and label in classes and (t.improvised or scripted):
            out[t.id] = (label, t.speaker)
    return out


def parsed(corpus):
    return {u.id: (u.label, u.speaker) for u in corpus.utterances}


def test_default_subset_is_improvised_four_classes(iemocap_tree):
    corpus = IEMOCAP(root=iemocap_tree.root)
    assert corpus.classes == DEFAULT
    assert parsed(corpus) == expected(iemocap_tree.truth, DEFAULT)
    assert all(u.improvised for u in corpus.utterances)
    # the fixture holds scripted utterances and other labels that must have been dropped
    assert any(not t.improvised and t.label in DEFAULT for t in iemocap_tree.truth)
    assert any(t.improvised and t.label not in DEFAULT for t in iemocap_tree.truth)


def test_every_label_speaker_and_path(iemocap_tree):
    labels = tuple(sorted({t.label for t in iemocap_tree.truth}))
    corpus = IEMOCAP(root=iemocap_tree.root, classes=labels, include_scripted=True)
    truth = {t.id: t for t in iemocap_tree.truth if t.has_wav}
    assert {u.id for u in corpus.utterances} == set(truth)
    for u in corpus.utterances:
        t = truth[u.id]
        assert (u.label, u.speaker, u.improvised) == (t.label, t.speaker, t.improvised), u.id
        assert u.gender == t.speaker[-1]
        assert u.session == t.speaker[:5]
        assert u.path.name == f"{u.id}.wav"
        assert u.path.parent.name == u.id.rsplit("_", 1)[0]  # sentences/wav/<dialog>/
        assert u.path.is_file()


SUFFIXED = ["Ses03M_impro05a", "Ses03M_impro05b", "Ses03M_impro08a", "Ses03M_impro08b"]


@pytest.mark.parametrize("dialog", [*SUFFIXED, "Ses05M_script01_1b"])
def test_suffixed_dialogs_speaker_from_the_end_of_the_id(iemocap_tree, dialog):
    labels = tuple(sorted({t.label for t in iemocap_tree.truth}))
    corpus = IEMOCAP(root=iemocap_tree.root, classes=labels, include_scripted=True)
    got = {u.id: u.speaker for u in corpus.utterances if u.id.startswith(dialog + "_")}
    want = {t.id: t.speaker for t in iemocap_tree.truth if t.id.startswith(dialog + "_")}
    assert got == want
    # both actors speak; the letter after the session digits (M) is not the speaker
    assert {s[-1] for s in got.values()} == {"F", "M"}


def test_include_scripted(iemocap_tree):
    corpus = IEMOCAP(root=iemocap_tree.root, include_scripted=True)
    assert parsed(corpus) == expected(iemocap_tree.truth, DEFAULT, scripted=True)
    assert {u.improvised for u in corpus.utterances} == {True, False}


@pytest.mark.parametrize("scripted", [False, True])
def test_merge_exc_relabels_excited_as_happy(iemocap_tree, scripted):
    corpus = IEMOCAP(root=iemocap_tree.root, include_scripted=scripted, merge_exc=True)
    want = expected(iemocap_tree.truth, DEFAULT, scripted=scripted, merge_exc=True)
    assert parsed(corpus) == want
    n_hap = sum(
        t.has_wav and t.label in ("hap", "exc") and (scripted or t.improvised)
        for t in iemocap_tree.truth
    )
    assert Counter(u.label for u in corpus.utterances)["hap"] == n_hap
    without = IEMOCAP(root=iemocap_tree.root, include_scripted=scripted)
    assert len(corpus.utterances) > len(without.utterances)


def test_minority_classes_option(iemocap_tree):
    # None (the default in Python): the data module's automatic choice; data=iemocap: hap
    assert IEMOCAP(root=iemocap_tree.root).minority_classes is None
    corpus = IEMOCAP(root=iemocap_tree.root, minority_classes=["hap"])
    assert corpus.minority_classes == ("hap",)
    assert parsed(corpus) == parsed(IEMOCAP(root=iemocap_tree.root))  # the same utterances


def test_custom_class_set_keeps_its_order(iemocap_tree):
    classes = ("xxx", "fru", "exc")
    corpus = IEMOCAP(root=iemocap_tree.root, classes=classes, include_scripted=True)
    assert corpus.classes == classes
    assert parsed(corpus) == expected(iemocap_tree.truth, classes, scripted=True)
    assert all(list(c) == list(classes) for c in corpus.counts().values())


def test_counts_per_speaker(iemocap_tree):
    corpus = IEMOCAP(root=iemocap_tree.root)
    want = Counter(
        (t.speaker, t.label)
        for t in iemocap_tree.truth
        if t.has_wav and t.improvised and t.label in DEFAULT
    )
    counts = corpus.counts()
    assert list(counts) == SPEAKER_ORDER
    for speaker, per_class in counts.items():
        assert per_class == {c: want[speaker, c] for c in DEFAULT}, speaker
    assert sum(sum(c.values()) for c in counts.values()) == len(corpus.utterances)


def test_stray_files_are_ignored(iemocap_tree):
    labels = tuple(sorted({t.label for t in iemocap_tree.truth}))
    corpus = IEMOCAP(root=iemocap_tree.root, classes=labels, include_scripted=True)
    ids = [u.id for u in corpus.utterances]
    assert len(ids) == len(set(ids))  # the Self-evaluation copies of the labels are not read
    # only the hidden ._ label file names this utterance (its wav exists)
    assert iemocap_tree.hidden_only_id not in ids
    hidden_wav = next(iemocap_tree.root.rglob(f"{iemocap_tree.hidden_only_id}.wav"))
    assert hidden_wav.is_file()
    assert all(
        u.path.suffix == ".wav" and not u.path.name.startswith(".") for u in corpus.utterances
    )


def test_labelled_id_without_wav_is_skipped_with_a_warning(iemocap_tree, caplog):
    no_wav = [t for t in iemocap_tree.truth if not t.has_wav and t.improvised]
    assert [t.id for t in no_wav] == [iemocap_tree.no_wav_id]
    # a non-wav file named like it lies in the wav folder: it is not its audio
    assert next(iemocap_tree.root.rglob(f"{iemocap_tree.no_wav_id}.*")).suffix != ".wav"
    with caplog.at_level(logging.WARNING, logger="ser.data.corpora.iemocap"):
        corpus = IEMOCAP(root=iemocap_tree.root)
        ids = {u.id for u in corpus.utterances}
    assert iemocap_tree.no_wav_id not in ids
    assert f"{len(no_wav)} labelled utterances have no wav file" in caplog.text


@pytest.mark.parametrize("kind", ["empty", "missing", "emodb-like"])
def test_root_that_is_not_iemocap(tmp_path, kind):
    root = tmp_path / "not-iemocap"
    if kind != "missing":
        root.mkdir()
    if kind == "emodb-like":
        (root / "wav").mkdir()
        (root / "wav" / "03a01Fa.wav").write_bytes(b"")
    with pytest.raises(CorpusError) as err:
        _ = IEMOCAP(root=root).utterances
    assert str(root) in str(err.value)
    assert "data.root" in str(err.value)


def test_unparseable_id_names_the_label_file(tmp_path, iemocap_builder):
    root = tmp_path / "IEMOCAP_full_release"
    iemocap_builder(root)
    label_file = root / "Session4" / "dialog" / "EmoEvaluation" / "Ses04F_impro01.txt"
    label_file.write_text(label_file.read_text() + "[1.0 - 2.0]\tSes04F_impro01\tneu\t[1, 2, 3]\n")
    with pytest.raises(CorpusError) as err:
        _ = IEMOCAP(root=root).utterances
    assert str(label_file) in str(err.value)


def test_ten_folds_by_session_in_documented_order(iemocap_tree):
    corpus = IEMOCAP(root=iemocap_tree.root)
    folds = corpus.folds()
    assert [f.test for f in folds] == [(s,) for s in SPEAKER_ORDER]
    for k, fold in enumerate(folds):
        assert fold.index == k
        (test,) = fold.test
        (val,) = fold.val
        assert val[:5] == test[:5] and val != test  # the other speaker of the session
        assert set(fold.train) == {s for s in SPEAKER_ORDER if s[:5] != test[:5]}
