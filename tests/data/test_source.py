"""ser.data.source: the one audio -> front-end -> cache path of training, evaluation and
inference."""

from __future__ import annotations

import pytest
import torch

from ser.data import SERDataModule
from ser.data.audio import load_audio
from ser.data.corpora import Manifest
from ser.data.features import LogMel3D
from ser.data.source import FeatureSource
from ser.errors import AudioError


class RefusesOneRecording(LogMel3D):
    """Log-mel that fails, like a front-end's own bug would, on one recording (known by its
    first samples): the real failure path, since no front-end here fails on the shared
    copies' real files."""

    kind = "refuses-one"

    def __init__(self, first_samples: list[float]) -> None:
        super().__init__()
        self.first_samples = first_samples

    def config(self) -> dict:
        return {**super().config(), "first_samples": self.first_samples}

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        head = torch.tensor(self.first_samples)
        if torch.allclose(waveform[: len(head)], head):
            raise RuntimeError("internal failure")
        return super().forward(waveform)


def test_cached_features_are_the_front_end_s_on_the_audio_as_read(emodb_manifest, tmp_path):
    corpus = Manifest(manifest=emodb_manifest)
    source = FeatureSource(LogMel3D(), cache_dir=tmp_path, progress=False)
    utterances = corpus.utterances[:4]
    assert source.fill(corpus, utterances).computed == 4
    for utterance, cached in zip(utterances, source.load(corpus, utterances), strict=True):
        expected = LogMel3D()(load_audio(utterance.path, sample_rate=16000, min_samples=400))
        torch.testing.assert_close(cached, expected)
    in_memory, bad = FeatureSource(LogMel3D(), progress=False).features(corpus, utterances)
    assert bad == {}
    for a, b in zip(in_memory, source.load(corpus, utterances), strict=True):
        torch.testing.assert_close(a, b)


def test_a_front_end_failure_names_the_file_and_is_skipped_like_bad_audio(emodb_manifest, tmp_path):
    corpus = Manifest(manifest=emodb_manifest)
    victim, other = corpus.utterances[0], corpus.utterances[1]
    frontend = RefusesOneRecording(load_audio(victim.path, sample_rate=16000)[:32].tolist())
    with pytest.raises(AudioError, match=rf"{victim.path}: refuses-one features failed "
                       r"\(RuntimeError: internal failure\)"):  # fmt: skip
        FeatureSource(frontend).extract(victim)
    # in a batch, the failure is that file's alone
    outcomes = FeatureSource(frontend).extract_many([victim, other])
    assert isinstance(outcomes[0], AudioError) and str(victim.path) in str(outcomes[0])
    assert isinstance(outcomes[1], torch.Tensor)
    strict = SERDataModule(corpus=corpus, fold=0, features=frontend, cache_dir=tmp_path,
                           progress=False)  # fmt: skip
    with pytest.raises(AudioError, match="skip_bad_audio=true"):
        strict.setup("fit")
    lenient = SERDataModule(corpus=corpus, fold=0, features=frontend, cache_dir=tmp_path,
                            progress=False, skip_bad_audio=True)  # fmt: skip
    lenient.setup("fit")
    dropped = {d["id"]: d["reason"] for d in lenient.dropped}
    assert list(dropped) == [victim.id]
    assert "refuses-one features failed" in dropped[victim.id]


@pytest.mark.slow  # two fresh processes import torch
def test_a_fill_in_two_processes_stores_what_one_process_stores(emodb_root, tmp_path, monkeypatch):
    """Enough utterances for several chunks, one of them unreadable: the same entries, bit
    for bit, the same bad record, and every utterance counted once."""
    from ser.data import cache
    from ser.data.cache import FILL_CHUNK
    from ser.data.corpora import EmoDB

    monkeypatch.setattr(cache, "PARALLEL_AFTER_S", 0.0)  # parallel however fast the chunk
    pools = []
    real_pool = cache.ProcessPoolExecutor
    monkeypatch.setattr(
        cache, "ProcessPoolExecutor", lambda *a, **k: pools.append(a) or real_pool(*a, **k)
    )

    corpus = EmoDB(root=emodb_root, download=False)
    utterances = corpus.utterances[: 2 * FILL_CHUNK + 5]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wav file")
    utterances[7] = type(utterances[7])(
        id="broken", path=broken, label=utterances[7].label, speaker=utterances[7].speaker
    )
    serial = FeatureSource(LogMel3D(), cache_dir=tmp_path / "one", progress=False)
    parallel = FeatureSource(LogMel3D(), cache_dir=tmp_path / "two", progress=False, workers=2)
    one = serial.fill(corpus, utterances)
    assert pools == []
    two = parallel.fill(corpus, utterances)
    assert [args[0] for args in pools] == [2]
    assert two.computed == one.computed == len(utterances) - 1
    assert two.cached == 0 and list(two.bad) == list(one.bad) == ["broken"]
    for utterance in utterances:
        if utterance.id == "broken":
            continue
        a = serial.cache(corpus).path_for(utterance).read_bytes()
        assert parallel.cache(corpus).path_for(utterance).read_bytes() == a, utterance.id
    again = parallel.fill(corpus, utterances)
    assert (again.computed, again.cached, list(again.bad)) == (0, len(utterances) - 1, ["broken"])
