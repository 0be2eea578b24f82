"""RAVDESS speech on synthetic trees with the official names: counts, folds, errors, download,
the Hydra presets, ``ser.inspect`` and one fold through the data module.

Expected values come from the names the fixtures wrote and the RAVDESS naming scheme
(modality-vocal-emotion-intensity-statement-repetition-actor; odd actors male), written
out here rather than taken from the code under test.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import hydra
import pytest

from ser.config import CONFIG_DIR
from ser.data import SERDataModule
from ser.data.corpora import RAVDESS, CorpusError
from ser.data.download import DownloadError

# the RAVDESS README: emotion field -> the project's code (calm: cal)
CODE = {"01": "neu", "02": "cal", "03": "hap", "04": "sad",
        "05": "ang", "06": "fea", "07": "dis", "08": "sur"}  # fmt: skip
FOUR = ("ang", "sad", "hap", "neu")
ALL8 = ("ang", "sad", "hap", "neu", "cal", "dis", "fea", "sur")
ACTORS = [f"{n:02d}" for n in range(1, 25)]
SPEECH = "Audio_Speech_Actors_01-24"
PATTERN = "Actor_01/03-01-01-01-01-01-01.wav"


def speech_names(actor: str, *, statements=("01", "02"), repetitions=("01", "02")) -> list[str]:
    """Every official speech file name of ``actor``: neutral at normal intensity only."""
    return [
        f"03-01-{emotion}-{intensity}-{statement}-{repetition}-{actor}.wav"
        for emotion in CODE
        for intensity in (("01",) if emotion == "01" else ("01", "02"))
        for statement in statements
        for repetition in repetitions
    ]


def build(audio: bytes, root: Path, actors=ACTORS, *, nest: bool = False, **names) -> list[Path]:
    """Write ``audio`` as ``Actor_NN/<name>.wav`` for ``actors`` (under ``SPEECH/`` when
    ``nest``)."""
    base = root / SPEECH if nest else root
    written = []
    for actor in actors:
        for name in speech_names(actor, **names):
            path = base / f"Actor_{actor}" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(audio)
            written.append(path)
    return written


def fields(path: Path) -> dict[str, str]:
    keys = ("modality", "vocal", "emotion", "intensity", "statement", "repetition", "actor")
    return dict(zip(keys, path.stem.split("-"), strict=True))


def truth(written: list[Path], classes, *, merge_calm: bool = False) -> Counter:
    """``(actor, class) -> n`` of the files written."""
    counts = Counter()
    for path in written:
        f = fields(path)
        label = CODE[f["emotion"]]
        label = "neu" if merge_calm and label == "cal" else label
        if label in classes:
            counts[f["actor"], label] += 1
    return counts


@pytest.fixture(scope="module")
def full(tmp_path_factory, noise_wav):
    """All 24 actors, 60 speech files each, as the official archive unpacks."""
    root = tmp_path_factory.mktemp("ravdess") / "ravdess"
    return root, build(noise_wav, root)


def small(audio: bytes, root: Path, actors=ACTORS[:12]) -> list[Path]:
    """One statement and repetition per actor: 1 neutral and 2 of each other emotion."""
    return build(audio, root, actors, statements=("01",), repetitions=("01",))


# ----------------------------------------------------------------------------- counts


def test_full_tree_counts(full):
    root, written = full
    assert len(written) == 24 * 60
    corpus = RAVDESS(root=root, download=False)
    expected = truth(written, FOUR)
    assert corpus.classes == FOUR
    assert corpus.counts() == {a: {c: expected[a, c] for c in FOUR} for a in ACTORS}
    assert len(corpus.utterances) == sum(expected.values()) == 672
    assert {a: sum(c.values()) for a, c in corpus.counts().items()} == {a: 28 for a in ACTORS}
    assert corpus.skipped == []

    every = RAVDESS(root=root, classes=ALL8, download=False)
    assert len(every.utterances) == len(written) == 1440
    assert Counter(u.label for u in every.utterances) == Counter(
        CODE[fields(p)["emotion"]] for p in written
    )


def test_calm_is_left_out_or_merged_into_neutral(full):
    root, written = full
    plain = RAVDESS(root=root, download=False)
    merged = RAVDESS(root=root, merge_calm=True, download=False)
    calm = {p.stem for p in written if fields(p)["emotion"] == "02"}
    assert calm and not calm & {u.id for u in plain.utterances}
    assert {u.id for u in merged.utterances if u.label == "neu"} == calm | {
        u.id for u in plain.utterances if u.label == "neu"
    }
    expected = truth(written, FOUR, merge_calm=True)
    assert merged.counts() == {a: {c: expected[a, c] for c in FOUR} for a in ACTORS}
    assert len(merged.utterances) == len(plain.utterances) + len(calm) == 864


def test_merge_calm_with_a_calm_class_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match=r"data\.merge_calm=true .* cannot hold cal"):
        RAVDESS(root=tmp_path, classes=ALL8, merge_calm=True)


def test_label_speaker_and_gender_from_the_name(full):
    root, _ = full
    corpus = RAVDESS(root=root, classes=ALL8, download=False)
    for u in corpus.utterances:
        f = fields(u.path)
        assert u.path.parent == root / f"Actor_{f['actor']}"
        assert u.id == u.path.stem
        assert u.label == CODE[f["emotion"]]
        assert u.speaker == f["actor"]
        assert u.gender == ("M" if int(f["actor"]) % 2 == 1 else "F")
    assert corpus.speakers == ACTORS


def test_actor_folders_under_the_archive_folder(tmp_path, noise_wav):
    flat, nested = tmp_path / "flat", tmp_path / "nested"
    small(noise_wav, flat, ACTORS[:3])
    written = build(
        noise_wav, nested, ACTORS[:3], nest=True, statements=("01",), repetitions=("01",)
    )
    assert not list(nested.glob("Actor_*"))
    corpus = RAVDESS(root=nested, download=False)
    assert {u.path for u in corpus.utterances} == {
        p for p in written if CODE[fields(p)["emotion"]] in FOUR
    }
    assert all(u.path.parent.parent == nested / SPEECH for u in corpus.utterances)
    reference = RAVDESS(root=flat, download=False)
    assert [(u.id, u.label, u.speaker) for u in corpus.utterances] == [
        (u.id, u.label, u.speaker) for u in reference.utterances
    ]


# ----------------------------------------------------------------------------- folds


def check_disjoint(folds, speakers):
    for fold in folds:
        test, val, train = set(fold.test), set(fold.val), set(fold.train)
        assert not (test & val or test & train or val & train)
        assert test | val | train == set(speakers)
    tested = [s for fold in folds for s in fold.test]
    assert sorted(tested) == sorted(speakers)  # every speaker tested exactly once


def test_six_folds_of_four_actors(full):
    folds = RAVDESS(root=full[0], download=False).folds()
    assert len(folds) == 6
    check_disjoint(folds, ACTORS)
    for k, fold in enumerate(folds):
        assert fold.index == k
        assert fold.test == tuple(ACTORS[4 * k : 4 * k + 4])
        assert fold.val == folds[(k + 1) % 6].test
        genders = Counter("M" if int(a) % 2 else "F" for a in fold.test)
        assert genders == {"F": 2, "M": 2}


def test_leave_one_actor_out(full):
    corpus = RAVDESS(root=full[0], folds="loso", download=False)
    folds = corpus.folds()
    assert [f.test for f in folds] == [(a,) for a in ACTORS]
    assert [f.val for f in folds] == [(ACTORS[(k + 1) % 24],) for k in range(24)]
    check_disjoint(folds, ACTORS)
    with pytest.raises(CorpusError, match=r"valid folds are 0\.\.23 "):
        corpus.fold(24)


def test_unknown_fold_scheme_is_an_error(tmp_path):
    with pytest.raises(CorpusError) as err:
        RAVDESS(root=tmp_path, folds="lopo")
    assert "data.folds='lopo'" in str(err.value)
    assert "blocks" in str(err.value) and "loso" in str(err.value)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "bad",
    [
        "Actor_01/03-01-05-01-01-01.wav",  # six fields
        "Actor_01/03-01-05-01-01-01-01-extra.wav",  # not the pattern
        "Actor_01/01-01-05-01-01-01-01.wav",  # modality 01: audio-video
        "Actor_01/03-01-09-01-01-01-01.wav",  # no emotion 09
        "Actor_01/03-01-01-02-01-01-01.wav",  # neutral has no strong intensity
        "Actor_01/03-01-05-01-01-03-01.wav",  # no third repetition
        "Actor_01/03-01-05-01-01-01-02.wav",  # actor 02 in actor 01's folder
        "Actor_25/03-01-05-01-01-01-25.wav",  # no actor 25
        "03-01-05-01-01-01-01.wav",  # not in an Actor_NN folder
        "speech/03-01-05-01-01-01-01.wav",  # nor here
    ],
)
def test_unparseable_wav_is_named_or_skipped(tmp_path, caplog, bad, noise_wav):
    written = small(noise_wav, tmp_path, ACTORS[:2])
    (tmp_path / bad).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / bad).write_bytes(noise_wav)
    with pytest.raises(CorpusError) as err:
        _ = RAVDESS(root=tmp_path, download=False).utterances
    message = str(err.value)
    assert str(tmp_path / bad) in message
    assert "1 wav file(s)" in message and "data.skip_unparsed=true" in message
    assert "\n" not in message
    assert not any(str(p) in message for p in written)  # the good files are not blamed

    corpus = RAVDESS(root=tmp_path, skip_unparsed=True, download=False)
    with caplog.at_level(logging.WARNING):
        ids = {u.id for u in corpus.utterances}
    assert ids == {p.stem for p in written if CODE[fields(p)["emotion"]] in FOUR}
    assert [p for p, _ in corpus.skipped] == [tmp_path / bad]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"skipped 1 of {len(written) + 1} wav files" in warning
    assert str(tmp_path / bad) in warning


def test_song_files_are_an_error_or_skipped_and_counted(tmp_path, caplog, noise_wav):
    written = small(noise_wav, tmp_path, ACTORS[:2])
    songs = [tmp_path / f"Actor_{a}" / f"03-02-03-01-01-01-{a}.wav" for a in ACTORS[:2]]
    songs.append(tmp_path / "Actor_01" / "03-02-04-02-02-02-01.wav")
    for path in songs:
        path.write_bytes(noise_wav)
    bad_name = tmp_path / "Actor_02" / "03-01-05.wav"
    bad_name.write_bytes(noise_wav)
    with pytest.raises(CorpusError) as err:
        _ = RAVDESS(root=tmp_path, download=False).utterances
    message = str(err.value)
    assert "4 wav file(s)" in message and "song file (vocal channel 02)" in message
    assert str(sorted(songs)[0]) in message

    corpus = RAVDESS(root=tmp_path, classes=ALL8, skip_unparsed=True, download=False)
    with caplog.at_level(logging.WARNING):
        assert {u.path for u in corpus.utterances} == set(written)
    assert sorted(p for p, _ in corpus.skipped) == sorted([*songs, bad_name])
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"skipped 4 of {len(written) + 4} wav files" in warning
    assert "3 x a song file (vocal channel 02)" in warning
    assert "1 x not MM-VV-EE-II-SS-RR-NN.wav" in warning


def test_non_audio_and_hidden_files_are_ignored(tmp_path, noise_wav):
    written = small(noise_wav, tmp_path, ACTORS[:2])
    (tmp_path / "README.md").write_text("RAVDESS\n")
    (tmp_path / "Actor_01" / "notes.csv").write_text("a,b\n")
    (tmp_path / "Actor_01" / "03-01-05-01-01-01-01.txt").write_text("not audio\n")
    (tmp_path / "Actor_01" / "._03-01-05-01-01-01-01.wav").write_bytes(b"\x00\x05\x16\x07")
    (tmp_path / ".trash").mkdir()
    (tmp_path / ".trash" / "junk.wav").write_bytes(noise_wav)
    corpus = RAVDESS(root=tmp_path, classes=ALL8, download=False)
    assert sorted(u.path for u in corpus.utterances) == sorted(written)


def test_missing_root_is_one_clear_error(tmp_path):
    root = tmp_path / "nowhere" / "ravdess"
    with pytest.raises(CorpusError) as err:
        _ = RAVDESS(root=root, download=False).utterances
    message = str(err.value)
    assert f"RAVDESS not found at {root}" in message
    assert str(root / PATTERN) in message
    assert "data.download=true" in message and "zenodo.org" in message
    assert "data.root=" in message and "SER_RAVDESS_ROOT" in message
    assert "\n" not in message and err.value.__cause__ is None


def test_root_one_level_too_high_names_the_copy(tmp_path, noise_wav):
    small(noise_wav, tmp_path / "corpora" / "ravdess", ACTORS[:1])
    with pytest.raises(CorpusError) as err:
        _ = RAVDESS(root=tmp_path / "corpora", download=False).utterances
    assert f"data.root={tmp_path / 'corpora' / 'ravdess'}" in str(err.value)


def test_unknown_class_is_an_error(tmp_path):
    with pytest.raises(CorpusError) as err:
        RAVDESS(root=tmp_path, classes=("ang", "bor"))  # boredom is Emo-DB only
    for code in ("bor", *ALL8):
        assert code in str(err.value)


# ----------------------------------------------------------------------------- download


@pytest.fixture(scope="module")
def archives(full, tmp_path_factory):
    """The full tree zipped as the official archive (Actor_NN/ at the top), and one short of
    a file."""
    root, written = full
    folder = tmp_path_factory.mktemp("archives")
    with (
        zipfile.ZipFile(folder / "speech.zip", "w", zipfile.ZIP_STORED) as good,
        zipfile.ZipFile(folder / "short.zip", "w", zipfile.ZIP_STORED) as short,
    ):
        for path in written:
            good.write(path, path.relative_to(root).as_posix())
            if path != written[-1]:
                short.write(path, path.relative_to(root).as_posix())
    return folder


def test_prepare_downloads_a_missing_root(archives, full, tmp_path):
    root = tmp_path / "new" / "ravdess"
    corpus = RAVDESS(root=root, url=(archives / "speech.zip").as_uri())
    corpus.prepare()
    expected = truth(full[1], FOUR)
    assert len(corpus.utterances) == sum(expected.values())
    assert corpus.counts() == RAVDESS(root=full[0], download=False).counts()
    assert sorted(p.name for p in root.parent.iterdir()) == ["ravdess"]  # no leftovers
    corpus.prepare()  # already there: nothing to do


def test_download_checks_sha256_and_content(archives, tmp_path):
    url = (archives / "speech.zip").as_uri()
    digest = hashlib.sha256((archives / "speech.zip").read_bytes()).hexdigest()
    RAVDESS(root=tmp_path / "ok", url=url, sha256=digest).prepare()
    assert len(list((tmp_path / "ok").glob("Actor_*/*.wav"))) == 1440
    with pytest.raises(CorpusError, match="SHA-256"):
        RAVDESS(root=tmp_path / "wrong", url=url, sha256="0" * 64).prepare()
    with pytest.raises(CorpusError, match="expected 1440") as err:
        RAVDESS(root=tmp_path / "short", url=(archives / "short.zip").as_uri()).prepare()
    assert isinstance(err.value.__cause__, DownloadError)
    assert "data.root" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok"]  # nothing half-unpacked


def test_existing_root_without_actor_folders_is_not_overwritten(archives, tmp_path):
    root = tmp_path / "ravdess"
    root.mkdir()
    (root / "mine.txt").write_text("keep me")
    with pytest.raises(CorpusError, match="has no Actor_NN folders"):
        RAVDESS(root=root, url=(archives / "speech.zip").as_uri()).prepare()
    assert [p.name for p in root.iterdir()] == ["mine.txt"]


def test_no_download_when_switched_off(tmp_path):
    root = tmp_path / "ravdess"
    RAVDESS(root=root, url="http://127.0.0.1:1/never", download=False).prepare()
    assert not root.exists()


# ----------------------------------------------------------------------------- configs


@pytest.fixture
def compose(monkeypatch):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.delenv("SER_ROOT", raising=False)
    monkeypatch.delenv("SER_RAVDESS_ROOT", raising=False)
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        yield hydra_compose
    GlobalHydra.instance().clear()


def test_presets_compose(full, compose, monkeypatch):
    root, written = full
    assert compose("inspect", overrides=["data=ravdess"]).data.root == "./data/ravdess"
    four = hydra.utils.instantiate(
        compose("config", overrides=["data=ravdess", f"data.root={root}"]).data
    )
    assert isinstance(four, RAVDESS) and four.root == root
    assert four.classes == FOUR and four.fold_scheme == "blocks" and four.download
    assert four.url.endswith("/Audio_Speech_Actors_01-24.zip")
    assert len(four.utterances) == sum(truth(written, FOUR).values())
    monkeypatch.setenv("SER_RAVDESS_ROOT", str(root))
    every = hydra.utils.instantiate(
        compose("inspect", overrides=["data=ravdess_all", "data.folds=loso"]).data
    )
    assert every.root == root and every.classes == ALL8
    assert len(every.utterances) == len(written)
    assert len(every.folds()) == 24


@pytest.mark.parametrize("scheme", ["blocks", "loso"])
def test_sweep_runs_every_fold(full, compose, scheme):
    from ser.sweep import plan_sweep

    overrides = ["data=ravdess", f"data.root={full[0]}", f"data.folds={scheme}"]
    cfg = compose("sweep", overrides=overrides, return_hydra_config=True)
    n_folds = len(RAVDESS(root=full[0], folds=scheme).folds())
    assert n_folds == {"blocks": 6, "loso": 24}[scheme]
    assert plan_sweep(cfg, "sweep").line() == (
        f"sweep: {4 * n_folds} runs (4 models x {n_folds} folds x 1 seed)"
    )


def test_inspect_prints_counts_and_disjoint_folds(full, tmp_path):
    root, written = full
    env = {k: v for k, v in os.environ.items() if k not in ("SER_RAVDESS_ROOT", "SER_ROOT")}
    out_json = tmp_path / "out.json"
    result = subprocess.run(
        [sys.executable, "-m", "ser.inspect", "data=ravdess", f"data.root={root}",
         f"+json={out_json}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = truth(written, FOUR)
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()]
    assert rows[0] == ["ravdess:", str(root), f"({sum(expected.values())}", "utterances)"]
    assert ["speaker", *FOUR, "total"] in rows
    for actor in ACTORS:
        counts = [expected[actor, c] for c in FOUR]
        assert [actor, *map(str, counts), str(sum(counts))] in rows

    report = json.loads(out_json.read_text())
    assert report["counts"] == {a: {c: expected[a, c] for c in FOUR} for a in ACTORS}
    folds = report["folds"]
    assert [f["fold"] for f in folds] == list(range(6))
    for fold in folds:
        test, val, train = set(fold["test"]), set(fold["val"]), set(fold["train"])
        assert len(test) == 4 and not (test & val or test & train or val & train)
        assert test | val | train == set(ACTORS)
    assert sorted(a for f in folds for a in f["test"]) == ACTORS


# ----------------------------------------------------------------------------- data module


def test_a_fold_through_the_data_module(tmp_path, noise_wav):
    written = small(noise_wav, tmp_path / "ravdess")
    corpus = RAVDESS(root=tmp_path / "ravdess", download=False)
    dm = SERDataModule(
        corpus=corpus, fold=1, cache_dir=tmp_path / "cache", batch_size=4, progress=False
    )
    dm.prepare_data()
    dm.setup("fit")
    speakers = {"test": ACTORS[4:8], "val": ACTORS[8:12], "train": ACTORS[:4]}
    for split, actors in speakers.items():
        expected = {
            p.stem
            for p in written
            if fields(p)["actor"] in actors and CODE[fields(p)["emotion"]] in FOUR
        }
        assert {u.id for u in dm.utterances[split]} == expected, split
        assert len(dm.datasets[split]) == len(expected)  # 0.1 s: one segment each
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape == (4, 3, 300, 40)
