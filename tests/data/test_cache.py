"""Per-utterance feature cache (ser/data/cache.py)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import soundfile as sf
import torch

from ser.data.audio import AudioError, load_audio
from ser.data.cache import FEATURE_VERSION, CorruptEntryError, FeatureCache, _store
from ser.data.corpora import Utterance
from ser.data.features import LogMel3D
from ser.io import write_bytes_atomic

FEATURES = LogMel3D()
NAMES = ["03a01Fa", "08a05Fe", "09b02Tb", "11a04Nd", "12b02Wb", "13b10La", "14b10Ad", "16a01Wb"]


class CountingExtract:
    """The real extraction (load_audio + LogMel3D), counting its calls."""

    def __init__(self):
        self.calls: list[str] = []

    def __call__(self, utterance: Utterance) -> torch.Tensor:
        self.calls.append(utterance.id)
        return FEATURES(load_audio(utterance.path, min_samples=FEATURES.win_length))


@pytest.fixture
def wavs(emodb_root, tmp_path):
    """Copies of a few Emo-DB files that a test may modify."""
    folder = tmp_path / "wav"
    folder.mkdir()
    for name in NAMES:
        shutil.copy(emodb_root / "wav" / f"{name}.wav", folder)
    return folder


def utterances(folder, names=NAMES):
    return [Utterance(id=n, path=folder / f"{n}.wav", label="x", speaker=n[:2]) for n in names]


def make_cache(root, config=None):
    return FeatureCache(
        root=root,
        corpus_name="test",
        corpus_identity="identity",
        feature_config=config or FEATURES.config(),
    )


def test_second_fill_computes_nothing(wavs, tmp_path):
    cache, utts = make_cache(tmp_path / "cache"), utterances(wavs)
    first, second = CountingExtract(), CountingExtract()
    report = cache.fill(utts, first, progress=False)
    assert (report.computed, report.cached, report.bad) == (len(utts), 0, {})
    assert sorted(first.calls) == sorted(NAMES)
    report = cache.fill(utts, second, progress=False)
    assert second.calls == []
    assert (report.computed, report.cached, report.bad) == (0, len(utts), {})
    for utt, features in zip(utts, cache.load(utts), strict=True):
        torch.testing.assert_close(features, FEATURES(load_audio(utt.path)), rtol=0, atol=0)


def test_a_changed_feature_config_gives_a_new_directory(tmp_path):
    base = make_cache(tmp_path)
    assert make_cache(tmp_path).directory == base.directory
    other = make_cache(tmp_path, LogMel3D(n_mels=64).config())
    assert other.directory != base.directory
    assert other.directory.parent == base.directory.parent
    other_corpus = FeatureCache(
        root=tmp_path,
        corpus_name="test",
        corpus_identity="another root",
        feature_config=FEATURES.config(),
    )
    assert other_corpus.directory != base.directory


def test_each_waveform_version_has_its_own_directory_and_the_unperturbed_keeps_its_key(
    wavs, tmp_path
):
    def cache(variant):
        return FeatureCache(
            root=tmp_path,
            corpus_name="test",
            corpus_identity="identity",
            feature_config=FEATURES.config(),
            variant=variant,
        )

    # the key of the versions before the option: corpus, features and version only
    meta = {"corpus": "identity", "features": FEATURES.config(), "version": FEATURE_VERSION}
    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
    assert cache(None).directory == cache({}).directory == tmp_path / f"test-{key}"
    assert make_cache(tmp_path).directory == cache(None).directory
    slow, fast = cache({"steps": [{"speed": 0.9}]}), cache({"steps": [{"speed": 1.1}]})
    assert len({slow.directory, fast.directory, cache(None).directory}) == 3
    utts = utterances(wavs, NAMES[:2])
    slow.fill(utts, CountingExtract(), progress=False)
    stored = json.loads((slow.directory / "meta.json").read_text())
    assert stored["variant"] == {"steps": [{"speed": 0.9}]}
    assert not cache(None).directory.exists()


def test_a_changed_config_recomputes(wavs, tmp_path):
    utts = utterances(wavs, NAMES[:2])
    make_cache(tmp_path).fill(utts, CountingExtract(), progress=False)
    extract = CountingExtract()
    report = make_cache(tmp_path, LogMel3D(n_mels=64).config()).fill(utts, extract, progress=False)
    assert report.computed == 2 and len(extract.calls) == 2


def test_peak_normalisation_has_its_own_entries(wavs, tmp_path):
    """features.peak_normalize changes the cache key: neither setting reads the other's."""
    peak = LogMel3D(peak_normalize=True)
    utts = utterances(wavs, NAMES[:3])
    plain_cache, peak_cache = make_cache(tmp_path), make_cache(tmp_path, peak.config())
    assert peak_cache.directory != plain_cache.directory
    assert (
        plain_cache.directory
        == make_cache(tmp_path, LogMel3D(peak_normalize=False).config()).directory
    )
    plain_cache.fill(utts, CountingExtract(), progress=False)
    calls = []

    def extract_peak(utterance):
        calls.append(utterance.id)
        return peak(load_audio(utterance.path, min_samples=peak.win_length))

    report = peak_cache.fill(utts, extract_peak, progress=False)
    assert (report.computed, report.cached) == (3, 0) and sorted(calls) == NAMES[:3]
    for utt, plain, peaked in zip(utts, plain_cache.load(utts), peak_cache.load(utts), strict=True):
        wave = load_audio(utt.path)
        torch.testing.assert_close(peaked, peak(wave), rtol=0, atol=0)
        torch.testing.assert_close(plain, FEATURES(wave), rtol=0, atol=0)
        assert not torch.allclose(plain, peaked)  # Emo-DB's peaks are not 1


def test_modifying_an_audio_file_invalidates_only_its_entry(wavs, tmp_path):
    cache, utts = make_cache(tmp_path / "cache"), utterances(wavs)
    cache.fill(utts, CountingExtract(), progress=False)
    before = cache.load(utts)

    changed = wavs / f"{NAMES[2]}.wav"
    data, rate = sf.read(changed, dtype="int16")
    sf.write(changed, (data // 2).astype(np.int16), rate, subtype="PCM_16")
    stat = changed.stat()  # same size; make sure the modification time moves on
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))

    extract = CountingExtract()
    report = cache.fill(utts, extract, progress=False)
    assert extract.calls == [NAMES[2]]
    assert (report.computed, report.cached) == (1, len(utts) - 1)
    after = cache.load(utts)
    for name, old, new in zip(NAMES, before, after, strict=True):
        assert torch.equal(old, new) == (name != NAMES[2]), name
    torch.testing.assert_close(after[2], FEATURES(load_audio(changed)), rtol=0, atol=0)


def test_a_bad_file_is_recorded_and_not_retried(wavs, tmp_path):
    bad = wavs / "14a01Ea.wav"
    bad.write_bytes(b"RIFF....WAVE broken")
    utts = utterances(wavs, [*NAMES[:3], "14a01Ea"])
    cache = make_cache(tmp_path / "cache")
    extract = CountingExtract()
    report = cache.fill(utts, extract, progress=False)
    assert report.computed == 3
    assert list(report.bad) == ["14a01Ea"]
    assert str(bad) in report.bad["14a01Ea"]
    assert cache.path_for(utts[3]).with_suffix(".bad").is_file()

    again = CountingExtract()
    report = cache.fill(utts, again, progress=False)
    assert again.calls == []
    assert (report.computed, report.cached) == (0, 3)
    assert list(report.bad) == ["14a01Ea"] and str(bad) in report.bad["14a01Ea"]
    with pytest.raises(FileNotFoundError, match="14a01Ea"):
        cache.load(utts[3:])


def test_other_errors_are_not_recorded_as_bad_audio(wavs, tmp_path):
    cache, utts = make_cache(tmp_path / "cache"), utterances(wavs, NAMES[:1])

    def broken(utterance):
        raise RuntimeError("bug in the extractor")

    with pytest.raises(RuntimeError):
        cache.fill(utts, broken, progress=False)
    assert not list(cache.directory.glob("*.bad"))
    assert cache.fill(utts, CountingExtract(), progress=False).computed == 1


def test_load_before_fill_says_what_to_do(wavs, tmp_path):
    cache = make_cache(tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="prepare_data"):
        cache.load(utterances(wavs, NAMES[:1]))


def test_audio_error_type_is_what_is_recorded(wavs, tmp_path):
    cache, utts = make_cache(tmp_path / "cache"), utterances(wavs, NAMES[:2])

    def refuse_first(utterance):
        if utterance.id == NAMES[0]:
            raise AudioError(f"{utterance.path}: rejected")
        return CountingExtract()(utterance)

    report = cache.fill(utts, refuse_first, progress=False)
    assert report.bad == {NAMES[0]: f"{utts[0].path}: rejected"}
    assert report.computed == 1


WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from ser.data.audio import load_audio
    from ser.data.cache import FEATURE_VERSION, CorruptEntryError, FeatureCache
    from ser.data.corpora import Utterance
    from ser.data.features import LogMel3D

    cache_root, go, folder = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[4])
    names = json.loads(sys.argv[3])
    extract = LogMel3D()
    cache = FeatureCache(root=cache_root, corpus_name="test", corpus_identity="identity",
                         feature_config=extract.config())
    utts = [Utterance(id=n, path=folder / f"{n}.wav", label="x", speaker=n[:2]) for n in names]
    Path(sys.argv[5]).touch()  # ready: imports done
    deadline = time.monotonic() + 120
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    report = cache.fill(utts, lambda u: extract(load_audio(u.path, min_samples=400)),
                        progress=False)
    print(json.dumps({"computed": report.computed, "cached": report.cached,
                      "bad": report.bad}))
    """
)


@pytest.mark.slow  # seconds: left out of make test-fast
def test_concurrent_writers(emodb_root, tmp_path):
    names = sorted(p.stem for p in (emodb_root / "wav").glob("*.wav"))[:40]
    cache_root, go = tmp_path / "cache", tmp_path / "go"
    workers = 3
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(cache_root),
                str(go),
                json.dumps(names),
                str(emodb_root / "wav"),
                str(tmp_path / f"ready{i}"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for i in range(workers)
    ]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(
        (tmp_path / f"ready{i}").exists() or procs[i].poll() is not None for i in range(workers)
    ):
        time.sleep(0.02)
    go.touch()  # all imported: start filling at (nearly) the same moment
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    for report in reports:
        assert report["bad"] == {}
        assert report["computed"] + report["cached"] == len(names)
    # each entry was computed by at least one of them, and they shared the work: in their
    # own random orders, re-checking each entry, they cannot all compute every entry (that
    # would take the same order in all three)
    assert len(names) <= sum(r["computed"] for r in reports) < workers * len(names)

    cache = make_cache(cache_root)
    files = sorted(p.name for p in cache.directory.iterdir())
    entries = [cache.path_for(u).name for u in utterances(emodb_root / "wav", names)]
    assert files == sorted([*entries, "meta.json"])
    assert not [f for f in files if f.endswith(".tmp") or f.startswith(".")]
    meta = json.loads((cache.directory / "meta.json").read_text())
    assert meta["features"] == FEATURES.config()
    for utt in utterances(emodb_root / "wav", names):
        stored = np.load(cache.path_for(utt))
        assert stored.dtype == np.float32
        expected = FEATURES(load_audio(utt.path, min_samples=FEATURES.win_length))
        torch.testing.assert_close(torch.from_numpy(stored), expected)


@pytest.mark.parametrize("written", ["entry", "damaged entry", "bad record"])
def test_what_another_process_writes_after_the_scan_is_taken(wavs, tmp_path, caplog, written):
    cache, utts = make_cache(tmp_path / "cache"), utterances(wavs, NAMES[:4])
    extract, other = CountingExtract(), []

    def extract_while_another_process_writes(utterance):
        if not other:  # first call, after the scan: another process writes one of the others
            other.append(next(u for u in utts if u.id != utterance.id))
            target = cache.path_for(other[0])
            features = FEATURES(load_audio(other[0].path, min_samples=FEATURES.win_length))
            if written == "entry":
                _store(target, features)
            elif written == "damaged entry":  # a full disk, say, on the other process's side
                _store(target, features)
                write_bytes_atomic(target, DAMAGE["truncated"](target.read_bytes()))
            else:
                write_bytes_atomic(target.with_suffix(".bad"), b"unreadable: elsewhere")
        return extract(utterance)

    with caplog.at_level(logging.WARNING, logger="ser.data.cache"):
        report = cache.fill(utts, extract_while_another_process_writes, progress=False)
    others = sorted(u.id for u in utts if u is not other[0])
    counts = (report.computed, report.cached, report.recomputed, report.bad)
    if written == "entry":
        assert sorted(extract.calls) == others
        assert counts == (3, 1, 0, {})
    elif written == "damaged entry":  # deleted and computed again, as the scan would
        assert sorted(extract.calls) == NAMES[:4]
        assert counts == (4, 0, 1, {})
        assert str(cache.path_for(other[0])) in caplog.text
    else:
        assert sorted(extract.calls) == others
        assert counts == (3, 0, 0, {other[0].id: "unreadable: elsewhere"})
        utts.remove(other[0])
    for utt, features in zip(utts, cache.load(utts), strict=True):
        torch.testing.assert_close(features, FEATURES(load_audio(utt.path)), rtol=0, atol=0)


def test_cache_files_get_the_permissions_of_ordinary_files(wavs, tmp_path):
    # a shared cache must be readable by whoever may read files created in that folder
    cache, utts = make_cache(tmp_path / "cache"), utterances(wavs, NAMES[:1])
    cache.fill(utts, CountingExtract(), progress=False)
    reference = cache.directory / "reference"
    reference.write_bytes(b"")
    mode = reference.stat().st_mode & 0o777
    assert cache.path_for(utts[0]).stat().st_mode & 0o777 == mode
    assert (cache.directory / "meta.json").stat().st_mode & 0o777 == mode


def test_a_refused_read_is_reported_but_retried_next_time(wavs, tmp_path):
    cache, utts = make_cache(tmp_path / "cache"), utterances(wavs, NAMES)

    def refused_once(utterance):
        raise AudioError(f"{utterance.path}: cannot read audio (System error)", permanent=False)

    report = cache.fill(utts, refused_once, progress=False)
    assert list(report.bad) == NAMES  # the corpus's order (errors quote the first few)
    assert not list(cache.directory.glob("*.bad"))
    extract = CountingExtract()
    assert cache.fill(utts, extract, progress=False).computed == len(NAMES)
    assert sorted(extract.calls) == sorted(NAMES)


# ----------------------------------------------------------------------------- damaged entries

#: ways an entry gets damaged: each takes the entry's bytes and returns what is left of them
DAMAGE = {
    "truncated": lambda data: data[: len(data) // 2],  # a full disk, a killed writer
    "zero bytes": lambda data: b"",
    "bad header": lambda data: b"\x00" * 16 + data[16:],
}


def filled(tmp_path, wavs, names=NAMES[:3]):
    """A cache holding ``names``, the utterances and each entry's original bytes."""
    cache, utts = make_cache(tmp_path / "cache"), utterances(wavs, names)
    cache.fill(utts, CountingExtract(), progress=False)
    return cache, utts, [cache.path_for(u).read_bytes() for u in utts]


def write_non_finite(path, value):
    """Replace the entry at ``path`` by a well-formed one holding one ``value``."""
    array = np.load(path)
    array[1, 5, 7] = value
    np.save(path, array)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_fill_recomputes_a_damaged_entry(wavs, tmp_path, caplog, damage):
    cache, utts, original = filled(tmp_path, wavs)
    path = cache.path_for(utts[1])
    path.write_bytes(DAMAGE[damage](original[1]))
    extract = CountingExtract()
    with caplog.at_level(logging.WARNING, logger="ser.data.cache"):
        report = cache.fill(utts, extract, progress=False)
    assert extract.calls == [utts[1].id]
    assert (report.computed, report.cached, report.recomputed, report.bad) == (1, 2, 1, {})
    assert [path.read_bytes() for path in map(cache.path_for, utts)] == original
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1
    assert str(path) in warning[0].getMessage() and utts[1].id in warning[0].getMessage()


def test_an_audio_error_while_recomputing_is_reported(wavs, tmp_path):
    cache, utts, _ = filled(tmp_path, wavs)
    damaged = cache.path_for(utts[0])
    damaged.write_bytes(b"")
    audio, stat = utts[0].path, utts[0].path.stat()
    audio.write_bytes(b"\x00" * stat.st_size)  # the audio broke too, keeping size and mtime
    os.utime(audio, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert cache.path_for(utts[0]) == damaged
    report = cache.fill(utts, CountingExtract(), progress=False)
    assert (report.computed, report.cached, report.recomputed) == (0, 2, 1)
    assert list(report.bad) == [utts[0].id] and str(audio) in report.bad[utts[0].id]
    assert not damaged.exists() and damaged.with_suffix(".bad").is_file()


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_load_recomputes_an_entry_damaged_after_fill(wavs, tmp_path, caplog, damage):
    cache, utts, original = filled(tmp_path, wavs)
    expected = cache.load(utts)
    path = cache.path_for(utts[2])
    path.write_bytes(DAMAGE[damage](original[2]))
    extract = CountingExtract()
    with caplog.at_level(logging.WARNING, logger="ser.data.cache"):
        features = cache.load(utts, extract)
    assert extract.calls == [utts[2].id]
    for got, want in zip(features, expected, strict=True):
        assert torch.equal(got, want)
    assert path.read_bytes() == original[2]
    assert str(path) in caplog.text and utts[2].id in caplog.text


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_load_recomputes_an_entry_that_is_not_finite(wavs, tmp_path, caplog, value):
    cache, utts, original = filled(tmp_path, wavs)
    path = cache.path_for(utts[0])
    write_non_finite(path, value)
    extract = CountingExtract()
    with caplog.at_level(logging.WARNING, logger="ser.data.cache"):
        features = cache.load(utts, extract)
    assert extract.calls == [utts[0].id]
    assert all(torch.isfinite(f).all() for f in features)
    assert path.read_bytes() == original[0]
    assert str(path) in caplog.text and "not finite" in caplog.text


@pytest.mark.parametrize("damage", [*DAMAGE, "not finite"])
def test_load_without_extract_names_the_damaged_file(wavs, tmp_path, damage):
    cache, utts, original = filled(tmp_path, wavs)
    path = cache.path_for(utts[1])
    if damage == "not finite":
        write_non_finite(path, np.nan)
    else:
        path.write_bytes(DAMAGE[damage](original[1]))
    with pytest.raises(CorruptEntryError, match=re.escape(str(path))) as raised:
        cache.load(utts)
    assert utts[1].id in str(raised.value) and "prepare_data()" in str(raised.value)
    # the entry is gone, so the next prepare_data() (fill) recomputes it
    assert not path.exists()
    assert cache.fill(utts, CountingExtract(), progress=False).computed == 1
    assert path.read_bytes() == original[1]


def test_load_with_extract_computes_a_missing_entry(wavs, tmp_path):
    cache, utts = make_cache(tmp_path / "cache"), utterances(wavs, NAMES[:2])
    extract = CountingExtract()
    features = cache.load(utts, extract)
    assert extract.calls == NAMES[:2]
    for utt, got in zip(utts, features, strict=True):
        torch.testing.assert_close(got, FEATURES(load_audio(utt.path)), rtol=0, atol=0)
    again = cache.load(utts)  # stored: no extract needed any more
    assert all(torch.equal(a, b) for a, b in zip(again, features, strict=True))
