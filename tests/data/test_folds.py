"""Speaker-independent folds of every corpus (ser/data/folds.py and the corpora)."""

from __future__ import annotations

import pytest

from ser.data.corpora import IEMOCAP, CorpusError, EmoDB, Manifest
from ser.data.folds import Fold, column_folds, leave_one_speaker_out, paired_folds


def check_folds(corpus, n_folds):
    """Disjoint splits covering all speakers; each speaker tested exactly once."""
    folds = corpus.folds()
    speakers = set(corpus.speakers)
    assert len(folds) == n_folds
    tested = []
    for k, fold in enumerate(folds):
        assert fold.index == k
        test, val, train = set(fold.test), set(fold.val), set(fold.train)
        assert test and val and train
        assert not (test & val or test & train or val & train)
        assert test | val | train == speakers
        tested += fold.test
    assert sorted(tested) == sorted(speakers)


def manifest_corpus(tmp_path, wav_writer, speakers, fold_of=None):
    lines = ["path,label,speaker" + (",fold" if fold_of else "")]
    for i, s in enumerate(speakers):
        wav_writer(tmp_path / f"{s}.wav", seconds=0.1, freq=300)
        label = ("neu", "ang")[i % 2]  # a corpus has at least two classes
        lines.append(f"{s}.wav,{label},{s}" + (f",{fold_of[s]}" if fold_of else ""))
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    return Manifest(manifest=tmp_path / "m.csv")


def test_iemocap_folds(iemocap_tree):
    corpus = IEMOCAP(root=iemocap_tree.root)
    assert len(corpus.speakers) == 10
    check_folds(corpus, 10)


def test_emodb_folds(emodb_root):
    corpus = EmoDB(root=emodb_root, download=False)
    check_folds(corpus, 10)
    assert all(len(f.train) == 8 for f in corpus.folds())


def test_manifest_folds_one_per_speaker(tmp_path, wav_writer):
    speakers = [f"spk{i}" for i in range(7)]
    check_folds(manifest_corpus(tmp_path, wav_writer, speakers), len(speakers))


def test_manifest_folds_one_per_fold_number(tmp_path, wav_writer):
    fold_of = {f"spk{i}": i % 4 for i in range(9)}
    check_folds(manifest_corpus(tmp_path, wav_writer, list(fold_of), fold_of), 4)


@pytest.mark.parametrize("index", [10, -1, 99])
def test_fold_out_of_range_lists_the_valid_folds(emodb_root, index):
    corpus = EmoDB(root=emodb_root, download=False)
    with pytest.raises(CorpusError) as err:
        corpus.fold(index)
    message = str(err.value)
    assert repr(index) in message
    assert "0..9" in message
    for fold in corpus.folds():
        assert f"{fold.index}: test {fold.test[0]}" in message


def test_fold_in_range(emodb_root):
    corpus = EmoDB(root=emodb_root, download=False)
    assert corpus.fold(9) == corpus.folds()[9]


def test_iemocap_fold_out_of_range(iemocap_tree):
    corpus = IEMOCAP(root=iemocap_tree.root)
    with pytest.raises(CorpusError) as err:
        corpus.fold(10)
    assert "0..9" in str(err.value) and "Ses05M" in str(err.value)


def test_fold_rejects_overlapping_or_empty_splits():
    with pytest.raises(ValueError):
        Fold(index=0, test=("a",), val=("a",), train=("b",))
    with pytest.raises(ValueError):
        Fold(index=0, test=("a",), val=("b",), train=())


def test_paired_folds_need_a_partner_for_every_speaker():
    with pytest.raises(ValueError, match="'c'"):
        paired_folds(["a", "b", "c"], {"a": "b"})


def test_scheme_functions_need_three_speakers_or_folds():
    with pytest.raises(ValueError):
        leave_one_speaker_out(["a", "b"])
    with pytest.raises(ValueError):
        column_folds({"a": 0, "b": 1})
