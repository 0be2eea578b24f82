"""bench/synthetic_iemocap.py: IEMOCAP's speakers, folds and class counts, as a manifest."""

import csv
import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser.data.corpora import Manifest

BENCH = Path(__file__).resolve().parents[2] / "bench"
spec = importlib.util.spec_from_file_location("synthetic_iemocap", BENCH / "synthetic_iemocap.py")
synthetic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(synthetic)

# shared/docs/IEMOCAP.md, subset (a): improvised, neu / hap / sad / ang
IEMOCAP_TOTALS = {"neu": 1099, "hap": 284, "sad": 608, "ang": 289}


def test_the_full_plan_has_iemocap_s_counts_and_mean_length():
    rows = synthetic.plan(scale=1.0, mean_seconds=4.5, seed=0)
    assert len(rows) == 2280
    assert Counter(r["label"] for r in rows) == IEMOCAP_TOTALS
    assert Counter(r["speaker"] for r in rows)["Ses03M"] == 274
    seconds = np.array([r["samples"] for r in rows]) / synthetic.SAMPLE_RATE
    assert seconds.mean() == pytest.approx(4.5, rel=0.05)
    assert seconds.min() >= 0.6 and seconds.max() <= 20.0


def test_a_scaled_corpus_loads_with_iemocap_s_folds(tmp_path):
    manifest = synthetic.write_corpus(tmp_path / "synth", scale=0.02, mean_seconds=1.0)
    corpus = Manifest(manifest=manifest)
    speakers = [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]
    assert sorted(corpus.speakers) == speakers
    counts = Counter((u.speaker, u.label) for u in corpus.utterances)
    for speaker, per_class in synthetic.COUNTS.items():
        for label, n in zip(synthetic.CLASSES, per_class, strict=True):
            assert counts[speaker, label] == max(1, round(n * 0.02))
    folds = corpus.folds()
    assert len(folds) == 10
    for fold in folds:
        [test], [val] = fold.test, fold.val
        assert test[:5] == val[:5] and test != val  # the other speaker of the session
        assert len(fold.train) == 8
    utterance = corpus.utterances[0]
    audio, rate = sf.read(utterance.path)
    assert rate == 16_000 and audio.ndim == 1 and len(audio) >= 0.6 * rate
    assert 0.05 < np.abs(audio).max() <= 1.0


def test_rerun_keeps_the_corpus_and_other_settings_are_refused(tmp_path):
    out = tmp_path / "synth"
    manifest = synthetic.write_corpus(out, scale=0.01, mean_seconds=1.0)
    before = manifest.stat().st_mtime_ns, sorted(p.name for p in out.rglob("*.wav"))
    assert synthetic.write_corpus(out, scale=0.01, mean_seconds=1.0) == manifest
    assert (manifest.stat().st_mtime_ns, sorted(p.name for p in out.rglob("*.wav"))) == before
    with pytest.raises(SystemExit, match=r"already holds a corpus written with .*'scale': 0\.01"):
        synthetic.write_corpus(out, scale=0.02, mean_seconds=1.0)
    with manifest.open() as f:
        assert next(csv.reader(f)) == ["path", "label", "speaker", "gender", "session"]
