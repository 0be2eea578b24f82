"""MSP-Podcast on a synthetic release tree: partitions as one fold, classes, left-out rows,
the JSON labels, bad input, the Hydra presets and a fold through the data module.

The fixture writes ``Labels/labels_consensus.csv`` and ``Audios/<FileName>`` with the
release's columns and partitions; expected values come from the rows it wrote.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import hydra
import pytest

from ser.config import CONFIG_DIR
from ser.data import SERDataModule
from ser.data.corpora import CorpusError, MSPPodcast

# the release's primary-emotion codes -> the project's codes; O and X have no class
CODE = {
    "A": "ang", "S": "sad", "H": "hap", "N": "neu",
    "C": "con", "D": "dis", "F": "fea", "U": "sur",
}  # fmt: skip
FOUR = ("ang", "sad", "hap", "neu")
ALL8 = ("ang", "sad", "hap", "neu", "con", "dis", "fea", "sur")
HEADER = ["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"]
SPLIT = {"Train": "train", "Development": "val", "Test1": "test"}
SOURCE = "https://ecs.utdallas.edu/research/researchlabs/msp-lab/MSP-Podcast.html"
#: (Split_Set, SpkrID, Gender): Unknown speakers in several partitions, and speaker 40 in both
#: test sets (the release allows that: the test sets are not speaker-independent of each other)
SPEAKERS = [
    ("Train", "11", "Female"), ("Train", "12", "Male"), ("Train", "Unknown", "Unknown"),
    ("Development", "20", "Male"), ("Development", "Unknown", "Unknown"),
    ("Test1", "30", "Female"), ("Test1", "40", "Male"), ("Test1", "Unknown", "Unknown"),
    ("Test2", "40", "Male"), ("Test2", "50", "Female"),
]  # fmt: skip


class Entry(NamedTuple):
    """One row the builder wrote."""

    file: str
    code: str
    speaker: str
    gender: str
    split_set: str

    @property
    def label(self) -> str | None:
        return CODE.get(self.code)

    def key(self) -> str:
        return f"{self.split_set}/{self.speaker}"


def build(audio: bytes, root: Path) -> list[Entry]:
    """Every code (O and X too) once per speaker, and k extra happy files for the k-th
    speaker so partitions and classes differ in size; the CSV lists them in file order."""
    entries = []
    for k, (split_set, speaker, gender) in enumerate(SPEAKERS):
        codes = "ASHNCDFUOX" + "H" * (k % 3)
        for j, code in enumerate(codes):
            name = f"MSP-PODCAST_{k + 1:04d}_{j + 1:04d}.wav"
            entries.append(Entry(name, code, speaker, gender, split_set))
    (root / "Audios").mkdir(parents=True)
    for entry in entries:
        (root / "Audios" / entry.file).write_bytes(audio)
    write_csv(root, entries)
    return entries


def write_csv(root: Path, entries: list[Entry], header: list[str] = HEADER) -> Path:
    path = root / "Labels" / "labels_consensus.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for e in entries:
            row = dict(
                FileName=e.file, EmoClass=e.code, EmoAct="4.2", EmoVal="3.8", EmoDom="4.0",
                SpkrID=e.speaker, Gender=e.gender, Split_Set=e.split_set,
            )  # fmt: skip
            writer.writerow([row[c] for c in header])
    return path


def write_json(root: Path, entries: list[Entry]) -> Path:
    path = root / "Labels" / "labels_consensus.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        e.file: {
            "EmoClass": e.code, "EmoAct": 4.2, "EmoVal": 3.8, "EmoDom": 4.0,
            # the JSON labels give numeric speaker ids as numbers
            "SpkrID": int(e.speaker) if e.speaker.isdigit() else e.speaker,
            "Gender": e.gender, "Split_Set": e.split_set,
        }
        for e in entries
    }  # fmt: skip
    path.write_text(json.dumps(data))
    return path


def expected(entries: list[Entry], classes, test_set: str = "Test1") -> dict[str, set[str]]:
    """Split -> file stems of the kept utterances."""
    splits = {"Train": "train", "Development": "val", test_set: "test"}
    result: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for e in entries:
        if e.split_set in splits and e.label in classes:
            result[splits[e.split_set]].add(Path(e.file).stem)
    return result


def by_split(corpus: MSPPodcast) -> dict[str, set[str]]:
    fold = corpus.fold(0)
    result: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for u in corpus.utterances:
        result[fold.split_of(u.speaker)].add(u.id)
    return result


def messages(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


@pytest.fixture(scope="module")
def tree(tmp_path_factory, noise_wav) -> tuple[Path, list[Entry]]:
    root = tmp_path_factory.mktemp("msp") / "MSP-Podcast"
    return root, build(noise_wav, root)


@pytest.fixture
def own_tree(tmp_path, noise_wav) -> tuple[Path, list[Entry]]:
    """A tree a test may damage."""
    root = tmp_path / "MSP-Podcast"
    return root, build(noise_wav, root)


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("classes", [ALL8, FOUR])
def test_partitions_are_the_splits_of_fold_0(tree, classes):
    root, entries = tree
    corpus = MSPPodcast(root=root, classes=classes)
    assert by_split(corpus) == expected(entries, classes)
    assert len(corpus.utterances) == sum(len(s) for s in expected(entries, classes).values())
    assert corpus.skipped == []


def test_labels_speakers_genders_and_paths(tree):
    root, entries = tree
    truth = {Path(e.file).stem: e for e in entries}
    corpus = MSPPodcast(root=root)
    assert corpus.classes == ALL8
    for u in corpus.utterances:
        entry = truth[u.id]
        assert u.label == CODE[entry.code]
        assert u.speaker == entry.key()
        assert u.gender == {"Female": "F", "Male": "M"}.get(entry.gender)
        assert u.path == root / "Audios" / entry.file
    assert {u.label for u in corpus.utterances} == set(ALL8)


def test_one_fixed_fold_keyed_by_partition_and_speaker(tree):
    root, entries = tree
    corpus = MSPPodcast(root=root)
    (fold,) = corpus.folds()
    assert fold.index == 0 and corpus.fold(0) == fold
    for split in ("train", "val", "test"):
        keys = {e.key() for e in entries if SPLIT.get(e.split_set) == split}
        assert set(getattr(fold, split)) == keys, split
    # speakers the release leaves unnamed stay in their own partition
    assert {"Train/Unknown", "Development/Unknown", "Test1/Unknown"} <= {
        *fold.train,
        *fold.val,
        *fold.test,
    }
    assert fold.split_of("Train/Unknown") == "train"
    assert fold.split_of("Test1/Unknown") == "test"


@pytest.mark.parametrize("index", [1, -1, True])
def test_other_folds_are_a_clear_error(tree, index):
    with pytest.raises(CorpusError) as err:
        MSPPodcast(root=tree[0]).fold(index)
    message = str(err.value)
    assert f"fold={index!r}" in message and "one fixed fold, 0" in message
    assert "Test1" in message and "not cross-validation" in message


def test_o_x_and_other_classes_are_left_out_and_counted(tree, caplog):
    root, entries = tree
    with caplog.at_level(logging.INFO, logger="ser.data.corpora.msp_podcast"):
        corpus = MSPPodcast(root=root, classes=FOUR)
        ids = {u.id for u in corpus.utterances}
    used = [e for e in entries if e.split_set in SPLIT]
    n_other = sum(e.code == "O" for e in used)
    n_none = sum(e.code == "X" for e in used)
    n_unselected = sum(e.label is not None and e.label not in FOUR for e in used)
    n_test2 = sum(e.split_set == "Test2" for e in entries)
    assert n_other and n_none and n_unselected and n_test2
    assert corpus.left_out == {
        "other (O)": n_other,
        "no agreement (X)": n_none,
        "of classes not in data.classes": n_unselected,
    }
    assert not ids & {Path(e.file).stem for e in entries if e.code in "OX"}
    (summary,) = [m for m in messages(caplog, logging.INFO) if "left out" in m]
    assert f"{n_other} other (O)" in summary and f"{n_none} no agreement (X)" in summary
    assert f"{n_unselected} of classes not in data.classes" in summary
    assert f"{n_test2} of Split_Set Test2" in summary
    kept = expected(entries, FOUR)
    assert f"train (Train) {len(kept['train'])}, val (Development) {len(kept['val'])}" in summary
    assert f"test (Test1) {len(kept['test'])}" in summary


def test_unknown_speakers_are_kept_and_counted_per_split(tree, caplog):
    root, entries = tree
    with caplog.at_level(logging.INFO, logger="ser.data.corpora.msp_podcast"):
        corpus = MSPPodcast(root=root)
        utterances = corpus.utterances
    unknown = Counter(
        SPLIT[e.split_set]
        for e in entries
        if e.speaker == "Unknown" and e.split_set in SPLIT and e.label in ALL8
    )
    assert unknown["train"] > 0
    assert Counter(u.speaker for u in utterances)["Train/Unknown"] == unknown["train"]
    known = {
        split: len({e.speaker for e in entries if SPLIT.get(e.split_set) == split} - {"Unknown"})
        for split in ("train", "val", "test")
    }
    (line,) = [m for m in messages(caplog, logging.INFO) if "speaker Unknown" in m]
    assert f"train {known['train']}, val {known['val']}, test {known['test']}" in line
    assert f"train {unknown['train']}, val {unknown['val']}, test {unknown['test']}" in line


def test_test2_is_the_test_split_on_request(tree, caplog):
    root, entries = tree
    with caplog.at_level(logging.INFO, logger="ser.data.corpora.msp_podcast"):
        corpus = MSPPodcast(root=root, classes=FOUR, test_set="Test2")
        splits = by_split(corpus)
    assert splits == expected(entries, FOUR, test_set="Test2")
    assert set(corpus.fold(0).test) == {e.key() for e in entries if e.split_set == "Test2"}
    n_test1 = sum(e.split_set == "Test1" for e in entries)
    (summary,) = [m for m in messages(caplog, logging.INFO) if "left out" in m]
    assert f"test (Test2) {len(splits['test'])}" in summary
    assert f"{n_test1} of Split_Set Test1" in summary


@pytest.mark.parametrize("test_set", ["Train", "Development"])
def test_a_training_partition_cannot_test(tmp_path, test_set):
    with pytest.raises(CorpusError, match=rf"data.test_set='{test_set}'"):
        MSPPodcast(root=tmp_path, test_set=test_set)


def test_an_absent_test_set_lists_the_partitions(tree):
    root, entries = tree
    with pytest.raises(CorpusError) as err:
        _ = MSPPodcast(root=root, test_set="Test3").utterances
    message = str(err.value)
    assert "Split_Set ['Test3']" in message
    for split_set, n in Counter(e.split_set for e in entries).items():
        assert f"{split_set} ({n})" in message


def test_json_labels_when_there_is_no_csv(own_tree):
    root, entries = own_tree
    from_csv = MSPPodcast(root=root).utterances
    dropped = next(e for e in entries if e.split_set == "Test1" and e.label)
    write_json(root, [e for e in reversed(entries) if e != dropped])
    assert MSPPodcast(root=root).utterances == from_csv  # the CSV wins while it is there
    (root / "Labels" / "labels_consensus.csv").unlink()
    from_json = MSPPodcast(root=root).utterances
    assert from_json == [u for u in from_csv if u.id != Path(dropped.file).stem]
    assert len(from_json) == len(from_csv) - 1


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("column", ["FileName", "EmoClass", "SpkrID", "Gender", "Split_Set"])
def test_a_missing_column_names_the_file_and_the_column(own_tree, column):
    root, entries = own_tree
    path = write_csv(root, entries, header=[c for c in HEADER if c != column])
    with pytest.raises(CorpusError) as err:
        _ = MSPPodcast(root=root).utterances
    message = str(err.value)
    assert f"{path} has no column(s) [{column!r}]" in message and "\n" not in message


def test_a_json_entry_without_a_key_names_it(own_tree):
    root, entries = own_tree
    (root / "Labels" / "labels_consensus.csv").unlink()
    path = write_json(root, entries)
    data = json.loads(path.read_text())
    del data[entries[3].file]["Split_Set"]
    path.write_text(json.dumps(data))
    with pytest.raises(CorpusError) as err:
        _ = MSPPodcast(root=root).utterances
    message = str(err.value)
    assert str(path) in message and f"entry {entries[3].file!r}" in message
    assert "['Split_Set']" in message


def test_an_unknown_code_is_named_or_skipped(own_tree, caplog):
    root, entries = own_tree
    bad = entries[5]._replace(code="Z")
    changed = [bad if e == entries[5] else e for e in entries]
    # an unknown code in a partition that is not used is never read
    changed.append(Entry("MSP-PODCAST_9999_0001.wav", "?", "50", "Female", "Test2"))
    path = write_csv(root, changed)
    line = changed.index(bad) + 2  # after the header
    with pytest.raises(CorpusError) as err:
        _ = MSPPodcast(root=root).utterances
    message = str(err.value)
    assert f"line {line} ({bad.file}): unknown EmoClass code 'Z'" in message
    assert str(path) in message and "data.skip_unparsed=true" in message
    assert "'?'" not in message

    corpus = MSPPodcast(root=root, skip_unparsed=True)
    with caplog.at_level(logging.WARNING):
        ids = {u.id for u in corpus.utterances}
    assert corpus.skipped == [(bad.file, "unknown EmoClass code 'Z'")]
    assert ids == set().union(*expected(entries, ALL8).values()) - {Path(bad.file).stem}
    (warning,) = messages(caplog, logging.WARNING)
    n_used = sum(e.split_set in SPLIT for e in entries)
    assert f"skipped 1 of {n_used} rows of {path}" in warning
    assert "1 x unknown EmoClass code 'Z'" in warning


def test_a_listed_file_missing_from_audios_is_named_or_skipped(own_tree, caplog):
    root, entries = own_tree
    gone = [e for e in entries if e.split_set == "Development" and e.label in FOUR][:2]
    for e in gone:
        (root / "Audios" / e.file).unlink()
    # a missing file of a left-out class or partition does not matter
    (root / "Audios" / next(e.file for e in entries if e.code == "X")).unlink()
    (root / "Audios" / next(e.file for e in entries if e.split_set == "Test2")).unlink()
    with pytest.raises(CorpusError) as err:
        _ = MSPPodcast(root=root, classes=FOUR).utterances
    message = str(err.value)
    assert message.startswith("msp_podcast: 2 of ")
    for e in gone:
        assert f"({e.file}): not in {root / 'Audios'}" in message

    corpus = MSPPodcast(root=root, classes=FOUR, skip_unparsed=True)
    with caplog.at_level(logging.WARNING):
        splits = by_split(corpus)
    full = expected(entries, FOUR)
    assert splits == full | {"val": full["val"] - {Path(e.file).stem for e in gone}}
    assert sorted(f for f, _ in corpus.skipped) == sorted(e.file for e in gone)
    (warning,) = messages(caplog, logging.WARNING)
    n_kept = sum(len(s) for s in full.values())
    assert f"skipped 2 of {n_kept} files listed in" in warning and "2 x not in" in warning


def test_a_repeated_file_name_is_an_error(own_tree):
    root, entries = own_tree
    write_csv(root, [*entries, entries[0]])
    with pytest.raises(CorpusError, match=rf"line {len(entries) + 2} \({entries[0].file}\)"):
        _ = MSPPodcast(root=root).utterances


def test_a_known_speaker_in_two_partitions_is_named(own_tree):
    root, entries = own_tree
    moved = [
        e._replace(split_set="Development") if e.speaker == "12" and e.code == "A" else e
        for e in entries
    ]
    write_csv(root, moved)
    with pytest.raises(CorpusError) as err:
        _ = MSPPodcast(root=root).utterances
    assert "SpkrID 12 in Development and Train" in str(err.value)


def test_missing_root_says_how_to_get_the_corpus(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(CorpusError) as err:
        _ = MSPPodcast(root=root).utterances
    message = str(err.value)
    assert f"MSP-Podcast not found at {root}" in message
    assert "no download" in message and "licensed" in message and SOURCE in message
    assert "data.root=" in message and "SER_MSP_PODCAST_ROOT" in message
    assert "\n" not in message


def test_missing_labels_file_names_the_layout(own_tree):
    root, _ = own_tree
    (root / "Labels" / "labels_consensus.csv").unlink()
    with pytest.raises(CorpusError) as err:
        _ = MSPPodcast(root=root).utterances
    message = str(err.value)
    assert f"no labels file in {root}" in message
    assert str(root / "Labels" / "labels_consensus.csv") in message
    assert str(root / "Labels" / "labels_consensus.json") in message
    assert "Audios/<FileName>" in message
    # data.root one level above the release folder: the message names the release folder
    with pytest.raises(CorpusError, match=r"set data\.root=/path/to/MSP-Podcast "):
        _ = MSPPodcast(root=root.parent).utterances
    write_json(root, [])
    with pytest.raises(CorpusError, match=rf"set data.root={root} "):
        _ = MSPPodcast(root=root.parent).utterances


def test_missing_audio_folder_is_one_error(own_tree):
    root, _ = own_tree
    for path in (root / "Audios").iterdir():
        path.unlink()
    (root / "Audios").rmdir()
    with pytest.raises(CorpusError, match=r"no Audios/ folder in "):
        _ = MSPPodcast(root=root).utterances


# ----------------------------------------------------------------------------- configs


def test_presets_compose(tree, monkeypatch):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ser.sweep import plan_sweep

    root, entries = tree
    monkeypatch.delenv("SER_ROOT", raising=False)
    monkeypatch.delenv("SER_MSP_PODCAST_ROOT", raising=False)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            default_root = compose("inspect", overrides=["data=msp_podcast"]).data.root
            four = compose("config", overrides=["data=msp_podcast_4class", f"data.root={root}"])
            monkeypatch.setenv("SER_MSP_PODCAST_ROOT", str(root))
            every = compose("config", overrides=["data=msp_podcast", "data.test_set=Test2"])
            sweep = compose("sweep", overrides=["data=msp_podcast"], return_hydra_config=True)
            plan = plan_sweep(sweep, "sweep").line()
    finally:
        GlobalHydra.instance().clear()
    assert default_root == "./data/msp_podcast"
    four, every = hydra.utils.instantiate(four.data), hydra.utils.instantiate(every.data)
    assert isinstance(four, MSPPodcast) and four.root == root and four.classes == FOUR
    assert four.test_set == "Test1" and not four.skip_unparsed
    assert by_split(four) == expected(entries, FOUR)
    assert every.classes == ALL8 and by_split(every) == expected(entries, ALL8, "Test2")
    assert " x 1 fold x " in plan  # one fixed fold: a sweep runs fold 0 only


# ----------------------------------------------------------------------------- data module


def test_fold_0_through_the_data_module(tree, tmp_path):
    root, entries = tree
    dm = SERDataModule(
        corpus=MSPPodcast(root=root, classes=FOUR),
        fold=0,
        cache_dir=tmp_path / "cache",
        batch_size=4,
        progress=False,
    )
    dm.prepare_data()
    dm.setup("fit")
    for split, stems in expected(entries, FOUR).items():
        assert {u.id for u in dm.utterances[split]} == stems, split
        assert len(dm.datasets[split]) == len(stems)  # 0.1 s: one segment each
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape[0] == 4
