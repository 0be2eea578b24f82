"""CSV manifest corpus: columns, paths, ids and folds (ser/data/corpora/manifest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ser.data.corpora import CorpusError, Manifest


def make_corpus(folder: Path, rows: list[dict], wav_writer, *, header=None, bom=False) -> Path:
    """Write the audio the rows name (relative to ``folder``) and the manifest CSV."""
    header = header or list(rows[0])
    for row in rows:
        path = Path(row["path"])
        path = path if path.is_absolute() else folder / path
        if not path.exists():
            wav_writer(path, seconds=0.1, freq=300)
    lines = [",".join(header)] + [",".join(str(r.get(c, "")) for c in header) for r in rows]
    manifest = folder / "corpus.csv"
    manifest.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def rows_for(speakers, labels=("ang", "hap"), **extra):
    rows = []
    for s in speakers:
        for i, label in enumerate(labels):
            row = {"path": f"audio/{s}/{s}_{i}.wav", "label": label, "speaker": s}
            row.update({k: v[s] for k, v in extra.items()})
            rows.append(row)
    return rows


def test_required_columns_missing(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,label,gender\na.wav,ang,F\n")
    with pytest.raises(CorpusError) as err:
        Manifest(manifest=manifest)
    message = str(err.value)
    assert str(manifest) in message
    assert "'path'" in message and "'speaker'" in message
    assert "'label'" not in message.split("has no column(s)")[1].split("]")[0]


def test_missing_manifest_file(tmp_path):
    with pytest.raises(CorpusError) as err:
        Manifest(manifest=tmp_path / "nope.csv")
    assert str(tmp_path / "nope.csv") in str(err.value)


def test_missing_audio_paths(tmp_path, wav_writer):
    manifest = make_corpus(tmp_path, rows_for(["a", "b", "c"]), wav_writer)
    (tmp_path / "audio" / "b" / "b_1.wav").unlink()
    with pytest.raises(CorpusError) as err:
        _ = Manifest(manifest=manifest).utterances
    assert str(tmp_path / "audio" / "b" / "b_1.wav") in str(err.value)
    assert str(manifest) in str(err.value)


def test_relative_paths_are_relative_to_the_manifest_folder(tmp_path, wav_writer):
    folder = tmp_path / "corpus"
    rows = rows_for(["a", "b", "c"])
    outside = tmp_path / "elsewhere" / "x.flac"
    wav_writer(outside.with_suffix(".wav"), seconds=0.1, freq=300)
    outside.with_suffix(".wav").rename(outside)
    rows.append({"path": str(outside), "label": "hap", "speaker": "c"})
    manifest = make_corpus(folder, rows, wav_writer)
    corpus = Manifest(manifest=manifest)
    by_id = {u.id: u for u in corpus.utterances}
    assert by_id["audio/a/a_0"].path == folder / "audio" / "a" / "a_0.wav"
    assert by_id["audio/a/a_0"].label == "ang"
    assert by_id["audio/a/a_0"].speaker == "a"
    assert by_id[str(outside.with_suffix(""))].path == outside  # absolute path kept
    assert len(by_id) == len(rows)


def test_root_argument_moves_the_base_folder(tmp_path, wav_writer):
    base = tmp_path / "audio-root"
    rows = rows_for(["a", "b", "c"])
    for r in rows:
        wav_writer(base / r["path"], seconds=0.1, freq=300)
    manifest = tmp_path / "lists" / "m.csv"
    manifest.parent.mkdir()
    manifest.write_text(
        "path,label,speaker\n" + "".join(f"{r['path']},{r['label']},{r['speaker']}\n" for r in rows)
    )
    corpus = Manifest(manifest=manifest, root=base)
    assert {u.path for u in corpus.utterances} == {base / r["path"] for r in rows}
    assert {u.id for u in corpus.utterances} == {r["path"][:-4] for r in rows}


def test_classes_default_to_sorted_labels_and_filter(tmp_path, wav_writer):
    manifest = make_corpus(
        tmp_path, rows_for(["a", "b", "c"], labels=("sad", "ang", "neu")), wav_writer
    )
    assert Manifest(manifest=manifest).classes == ("ang", "neu", "sad")
    corpus = Manifest(manifest=manifest, classes=["sad", "ang"])
    assert corpus.classes == ("sad", "ang")
    assert {u.label for u in corpus.utterances} == {"sad", "ang"}
    assert len(corpus.utterances) == 6


def test_header_with_byte_order_mark(tmp_path, wav_writer):
    # spreadsheet programs save "CSV UTF-8" with a BOM before the first column name
    manifest = make_corpus(tmp_path, rows_for(["a", "b", "c"]), wav_writer, bom=True)
    assert len(Manifest(manifest=manifest).utterances) == 6


def test_fold_column_gives_the_folds(tmp_path, wav_writer):
    fold_of = {"a": 0, "b": 0, "c": 1, "d": 2, "e": 3}
    manifest = make_corpus(tmp_path, rows_for(list(fold_of), fold=fold_of), wav_writer)
    folds = Manifest(manifest=manifest).folds()
    assert len(folds) == 4
    members = {k: tuple(sorted(s for s, f in fold_of.items() if f == k)) for k in range(4)}
    for k, fold in enumerate(folds):
        assert fold.test == members[k]
        assert fold.val == members[(k + 1) % 4]  # the next fold validates (cyclically)
        assert set(fold.train) == set(fold_of) - set(fold.test) - set(fold.val)


@pytest.mark.parametrize("numbers", [{"a": 1, "b": 2, "c": 3}, {"a": 0, "b": 1, "c": 3}])
def test_fold_numbers_must_be_zero_based_and_contiguous(tmp_path, wav_writer, numbers):
    manifest = make_corpus(tmp_path, rows_for(list(numbers), fold=numbers), wav_writer)
    with pytest.raises(CorpusError) as err:
        Manifest(manifest=manifest).folds()
    assert str(manifest) in str(err.value)


def test_speaker_with_two_fold_numbers(tmp_path, wav_writer):
    rows = rows_for(["a", "b", "c"], fold={"a": 0, "b": 1, "c": 2})
    rows[1]["fold"] = 2  # a's second utterance
    manifest = make_corpus(tmp_path, rows, wav_writer)
    with pytest.raises(CorpusError) as err:
        Manifest(manifest=manifest).folds()
    assert "'a'" in str(err.value)


def test_leave_one_speaker_out_validates_on_the_session_partner(tmp_path, wav_writer):
    sessions = {"a": "s1", "b": "s1", "c": "s2", "d": "s2", "e": "s3"}
    manifest = make_corpus(tmp_path, rows_for(list(sessions), session=sessions), wav_writer)
    folds = {f.test: f for f in Manifest(manifest=manifest).folds()}
    assert list(folds) == [("a",), ("b",), ("c",), ("d",), ("e",)]
    assert folds["a",].val == ("b",)
    assert folds["d",].val == ("c",)
    # e is alone in its session: the next speaker in sorted order (cyclically) validates
    assert folds["e",].val == ("a",)
    assert folds["a",].train == ("c", "d", "e")


def test_leave_one_speaker_out_without_sessions_uses_the_next_speaker(tmp_path, wav_writer):
    speakers = ["s3", "s1", "s4", "s2"]
    manifest = make_corpus(tmp_path, rows_for(speakers), wav_writer)
    folds = Manifest(manifest=manifest).folds()
    order = sorted(speakers)
    assert [f.test for f in folds] == [(s,) for s in order]
    assert [f.val for f in folds] == [(order[(k + 1) % 4],) for k in range(4)]


def test_one_session_for_everybody_falls_back_to_the_next_speaker(tmp_path, wav_writer):
    sessions = dict.fromkeys(["a", "b", "c"], "s1")
    manifest = make_corpus(tmp_path, rows_for(list(sessions), session=sessions), wav_writer)
    folds = Manifest(manifest=manifest).folds()
    assert [f.val for f in folds] == [("b",), ("c",), ("a",)]
    assert all(f.train for f in folds)


def test_too_few_speakers(tmp_path, wav_writer):
    manifest = make_corpus(tmp_path, rows_for(["a", "b"]), wav_writer)
    with pytest.raises(CorpusError) as err:
        Manifest(manifest=manifest).folds()
    assert str(manifest) in str(err.value)


def test_a_recording_listed_twice_is_an_error(tmp_path, wav_writer):
    rows = rows_for(["s1", "s2", "s3"])
    rows.append(dict(rows[0], speaker="s2"))  # the same file under another speaker
    manifest = make_corpus(tmp_path, rows, wav_writer)
    with pytest.raises(CorpusError, match="the same path is listed more than once"):
        _ = Manifest(manifest=manifest).utterances


def test_two_files_with_the_same_id_are_an_error(tmp_path, wav_writer):
    rows = rows_for(["s1", "s2", "s3"])
    rows.append(dict(rows[0], path=rows[0]["path"].replace(".wav", ".flac")))
    wav_writer(tmp_path / rows[-1]["path"], seconds=0.1, freq=200)
    manifest = make_corpus(tmp_path, rows, wav_writer)
    with pytest.raises(CorpusError, match="the same id is listed more than once"):
        _ = Manifest(manifest=manifest).utterances


def test_labels_differing_in_case_or_space_are_one_class_and_the_merge_is_logged(
    tmp_path, wav_writer, caplog
):
    rows = rows_for(["a", "b", "c"], labels=("ang", "sad"))
    rows[2]["label"] = "ANG"  # speaker b
    rows[4]["label"] = '" Ang "'  # speaker c, quoted so the CSV keeps the spaces
    manifest = make_corpus(tmp_path, rows, wav_writer)
    with caplog.at_level("WARNING", logger="ser.data.corpora.manifest"):
        corpus = Manifest(manifest=manifest)
    assert corpus.classes == ("ang", "sad")
    assert [u.label for u in corpus.utterances] == ["ang", "sad"] * 3
    assert "ang <- ' Ang ', 'ANG', 'ang'" in caplog.text
    # data.classes is compared the same way
    assert Manifest(manifest=manifest, classes=["SAD", "Ang"]).classes == ("sad", "ang")


def test_no_classes_are_refused_up_front(tmp_path, wav_writer):
    manifest = make_corpus(tmp_path, rows_for(["a", "b", "c"]), wav_writer)
    with pytest.raises(CorpusError, match=r"data.classes=\[\]: give the classes to keep"):
        Manifest(manifest=manifest, classes=[])


@pytest.mark.parametrize("one_class", ["option", "label"])
def test_one_class_can_be_scored_but_not_trained(tmp_path, wav_writer, one_class):
    """Scoring a checkpoint on one class is legitimate (ser.evaluate); a classifier needs two."""
    from ser.data import SERDataModule

    labels = ("ang",) if one_class == "label" else ("ang", "sad")
    manifest = make_corpus(tmp_path, rows_for(["a", "b", "c"], labels=labels), wav_writer)
    corpus = Manifest(manifest=manifest, classes=["ang"] if one_class == "option" else None)
    assert corpus.classes == ("ang",) and {u.label for u in corpus.utterances} == {"ang"}
    with pytest.raises(CorpusError, match=r"data.classes=\['ang'\].*at least two classes"):
        SERDataModule(corpus=corpus, fold=0, cache_dir=tmp_path / "cache", progress=False)


def test_a_manifest_without_rows_says_so(tmp_path):
    manifest = tmp_path / "empty.csv"
    manifest.write_text("path,label,speaker\n")
    with pytest.raises(CorpusError, match=r"empty.csv has no rows, only its header"):
        Manifest(manifest=manifest)
