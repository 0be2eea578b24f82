"""Z-score statistics from a fold's training segments only (SEED.md "Normalisation")."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from ser.data import SERDataModule
from ser.data.audio import load_audio
from ser.data.corpora import Manifest
from ser.data.features import LogMel3D
from ser.data.normalization import (
    NonFiniteFeaturesError,
    Normalizer,
    coverage,
    fit_normalizer,
)
from ser.data.segments import FirstLast, SegmentTable
from ser.data.store import MemoryFrames
from ser.errors import ConfigError


def covered_frames(frames, offsets, table):
    """Every frame the segments cover, once per covering segment (no padding)."""
    parts = [
        frames[offsets[u] + s : offsets[u] + s + v]
        for u, s, v in zip(table.utterance, table.start, table.valid, strict=True)
    ]
    return torch.cat(parts).double()


def per_row(runs, total_frames):
    """The count of each store row from ``(start, stop, count)`` runs."""
    weights = np.zeros(total_frames, dtype=np.int64)
    for start, stop, count in zip(*runs, strict=True):
        weights[start:stop] += count
    return weights


def runs_of(weights):
    """Each row of positive weight as a run of its own (valid input for fit_normalizer)."""
    rows = np.flatnonzero(weights > 0)
    return rows, rows + 1, weights[rows]


def test_coverage_counts_covering_segments_without_padding():
    offsets = np.array([0, 50, 400])
    # utterance 0: 50 frames (short: one padded segment); 1: 350 frames, first+last of 300
    table = FirstLast().segment([50, 350], ["a", "b"], length=300)
    runs = coverage(table, offsets)
    weights = per_row(runs, total_frames=500)
    assert weights[:50].tolist() == [1] * 50
    assert weights[50:100].tolist() == [1] * 50  # only the first segment
    assert weights[100:350].tolist() == [2] * 250  # first and last overlap
    assert weights[350:400].tolist() == [1] * 50  # only the last
    assert weights[400:].tolist() == [0] * 100  # not in the table (another split)
    starts, stops, counts = runs
    assert (counts > 0).all() and (starts < stops).all()


def test_coverage_of_random_segments_equals_counting_row_by_row():
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 700, size=40)
    offsets = np.concatenate([[0], np.cumsum(lengths + 5)[:-1]])  # gaps: other splits
    keep = rng.random(40) < 0.7
    table = (
        FirstLast()
        .segment(lengths, ["a"] * 40, length=300)
        .subset(
            np.flatnonzero(keep[FirstLast().segment(lengths, ["a"] * 40, length=300).utterance])
        )
    )
    expected = np.zeros(int(offsets[-1] + lengths[-1]), dtype=np.int64)
    for u, start, valid in zip(table.utterance, table.start, table.valid, strict=True):
        expected[offsets[u] + start : offsets[u] + start + valid] += 1
    assert np.array_equal(per_row(coverage(table, offsets), len(expected)), expected)


def test_statistics_from_the_given_segments_only():
    gen = torch.Generator().manual_seed(0)
    frames = torch.randn(900, 3, 40, generator=gen) * 3 + 5
    frames[600:] += 100  # frames of other splits: far away, must not count
    offsets = np.array([0, 120, 600])
    table = FirstLast().segment([120, 480], ["a", "b"], length=300)  # utterances 0 and 1
    normalizer = fit_normalizer(MemoryFrames(frames), coverage(table, offsets))
    x = covered_frames(frames, offsets, table)
    torch.testing.assert_close(normalizer.mean, x.mean(0).float())
    torch.testing.assert_close(normalizer.std, x.std(0, unbiased=False).float())
    assert normalizer.mean.shape == normalizer.std.shape == (3, 40)
    # zero padding would have pulled the mean towards 0
    assert (normalizer.mean > 4).all()


def test_normalizer_applies_per_channel_and_band():
    mean = torch.arange(6, dtype=torch.float32).reshape(3, 2)
    std = torch.full((3, 2), 2.0)
    frames = torch.ones(4, 3, 2) * 10
    out = Normalizer(mean=mean, std=std)(frames)
    torch.testing.assert_close(out[0], (10 - mean) / 2)
    restored = Normalizer.from_state_dict(Normalizer(mean=mean, std=std).state_dict())
    torch.testing.assert_close(restored.mean, mean)
    torch.testing.assert_close(restored.std, std)


def test_constant_band_does_not_divide_by_zero():
    frames = torch.ones(10, 3, 4)
    normalizer = fit_normalizer(MemoryFrames(frames), runs_of(np.ones(10, dtype=np.int64)))
    assert torch.isfinite(normalizer(frames)).all()


def test_no_training_frame_is_an_error():
    with pytest.raises(ValueError):
        fit_normalizer(MemoryFrames(torch.ones(5, 3, 4)), runs_of(np.zeros(5, dtype=np.int64)))


def store_and_weights(rows=1000, seed=0):
    """A random frame store far from 0 and weights 0..3 (about a quarter of them 0)."""
    gen = np.random.default_rng(seed)
    frames = torch.from_numpy(gen.normal(50.0, 4.0, size=(rows, 3, 40)).astype(np.float32))
    return frames, gen.integers(0, 4, size=rows)


def reference_statistics(frames, weights):
    """Weighted mean and std in float64 numpy, from the rows of positive weight only."""
    keep = weights > 0
    x, w = frames.numpy()[keep].astype(np.float64), weights[keep].astype(np.float64)
    mean = np.einsum("t,tcf->cf", w, x) / w.sum()
    var = np.einsum("t,tcf->cf", w, (x - mean) ** 2) / w.sum()
    return torch.from_numpy(mean).float(), torch.from_numpy(np.sqrt(var)).float()


@pytest.mark.parametrize("chunk_frames", [1, 7, 999, 1000, 65536])
def test_chunked_statistics_equal_a_float64_reference(chunk_frames):
    frames, weights = store_and_weights()
    frames[weights == 0] += 1e6  # other splits' frames: would dominate if they were read
    mean, std = reference_statistics(frames, weights)
    normalizer = fit_normalizer(MemoryFrames(frames), runs_of(weights), chunk_frames=chunk_frames)
    torch.testing.assert_close(normalizer.mean, mean, rtol=1e-6, atol=0)
    torch.testing.assert_close(normalizer.std, std, rtol=1e-5, atol=0)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_non_finite_training_frame_is_an_error_naming_its_row(value):
    frames, weights = store_and_weights()
    weights[[523, 800]] = 1
    frames[523, 2, 7] = frames[800, 0, 0] = value
    with pytest.raises(NonFiniteFeaturesError, match=r"NaN/Inf .*frame row 523\b") as raised:
        fit_normalizer(MemoryFrames(frames), runs_of(weights), chunk_frames=100)
    assert raised.value.row == 523
    assert isinstance(raised.value, ValueError)


def test_a_non_finite_frame_outside_training_is_ignored():
    """A test speaker's broken frame neither raises nor changes the statistics."""
    frames, weights = store_and_weights()
    weights[[523, 524]] = 0
    expected = fit_normalizer(MemoryFrames(frames), runs_of(weights), chunk_frames=100)
    frames[523] = np.nan
    frames[524, 1] = np.inf
    normalizer = fit_normalizer(MemoryFrames(frames), runs_of(weights), chunk_frames=100)
    assert torch.equal(normalizer.mean, expected.mean)
    assert torch.equal(normalizer.std, expected.std)


# ------------------------------------------------------------- through SERDataModule


def datamodule(manifest, cache_dir, **kwargs):
    dm = SERDataModule(
        corpus=Manifest(manifest=manifest), fold=0, cache_dir=cache_dir, progress=False, **kwargs
    )
    dm.prepare_data()
    dm.setup("fit")
    return dm


def change_audio(path):
    """Halve the samples (a new recording of the same length) and move the mtime on."""
    data, rate = sf.read(path, dtype="int16")
    sf.write(path, (data // 2).astype(np.int16), rate, subtype="PCM_16")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


def split_file(dm, split):
    return dm.utterances[split][0].path


def test_fold_statistics_are_those_of_the_training_utterances(emodb_manifest, tmp_path):
    dm = datamodule(emodb_manifest, tmp_path / "cache")
    assert dm.fold.test == ("03",) and dm.fold.val == ("08",)
    assert {u.speaker for u in dm.utterances["train"]} == {"09", "10"}
    extract = LogMel3D()
    # Emo-DB files are 2 s (198 frames < 300): each training frame is in one segment
    train = torch.cat(
        [extract(load_audio(u.path)).permute(1, 0, 2) for u in dm.utterances["train"]]
    ).double()
    torch.testing.assert_close(dm.normalizer.mean, train.mean(0).float(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        dm.normalizer.std, train.std(0, unbiased=False).float(), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("split", ["test", "val"])
def test_statistics_ignore_test_and_validation_audio(emodb_manifest, tmp_path, split):
    cache = tmp_path / "cache"
    before = datamodule(emodb_manifest, cache)
    change_audio(split_file(before, split))
    after = datamodule(emodb_manifest, cache)
    assert torch.equal(after.normalizer.mean, before.normalizer.mean)
    assert torch.equal(after.normalizer.std, before.normalizer.std)
    # the change did reach that split's features
    changed = after.datasets[split].__getitems__([0])["x"]
    assert not torch.equal(changed, before.datasets[split].__getitems__([0])["x"])


def test_statistics_follow_the_training_audio(emodb_manifest, tmp_path):
    cache = tmp_path / "cache"
    before = datamodule(emodb_manifest, cache)
    change_audio(split_file(before, "train"))
    after = datamodule(emodb_manifest, cache)
    assert not torch.allclose(after.normalizer.mean, before.normalizer.mean)
    assert not torch.allclose(after.normalizer.std, before.normalizer.std)


def normalised_frames(dm, split="train"):
    """The normalised frames ``split``'s segments cover, in segment order (no padding)."""
    ds = dm.datasets[split]
    x = ds.__getitems__(list(range(len(ds))))["x"]  # (N, 3, L, n_mels)
    valid = torch.from_numpy(ds.table.valid)
    mask = torch.arange(x.shape[2])[None, :] < valid[:, None]  # (N, L)
    return x.permute(0, 2, 1, 3)[mask].double()  # (frames, 3, n_mels)


def raw_frames(dm, split):
    """The features, before normalisation, of the frames :func:`normalised_frames` returns."""
    extract, table = LogMel3D(), dm.datasets[split].table
    raw = [extract(load_audio(u.path)).permute(1, 0, 2) for u in dm.utterances[split]]
    return torch.cat(
        [
            raw[u][s : s + v]
            for u, s, v in zip(table.utterance, table.start, table.valid, strict=True)
        ]
    ).double()


@pytest.mark.parametrize("segment_s", [3.0, 1.0])
def test_normalised_training_segments_have_zero_mean_unit_std(emodb_manifest, tmp_path, segment_s):
    # 100 frames: first and last segments of a 198-frame file overlap (frames counted twice)
    dm = datamodule(
        emodb_manifest,
        tmp_path / "cache",
        segment_s=segment_s,
        train_segments=FirstLast(),
    )
    frames = normalised_frames(dm)
    torch.testing.assert_close(
        frames.mean(0), torch.zeros(3, 40, dtype=torch.float64), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(
        frames.std(0, unbiased=False), torch.ones(3, 40, dtype=torch.float64), atol=1e-4, rtol=0
    )
    # validation frames are normalised with the training statistics, not with their own
    val = normalised_frames(dm, "val")
    mean, std = dm.normalizer.mean.double(), dm.normalizer.std.double()
    torch.testing.assert_close(val, (raw_frames(dm, "val") - mean) / std, atol=1e-4, rtol=1e-4)
    # their own statistics differ from the training ones, so the comparison above can tell
    assert val.mean(0).abs().max() > 0.1


def test_weights_follow_the_segments(tmp_path):
    """A frame covered by two training segments counts twice."""
    frames = torch.zeros(10, 1, 1)
    frames[:5] = 1.0
    frames[5:] = 3.0
    table = SegmentTable(np.array([0, 0]), np.array([0, 5]), np.array([10, 5]))
    normalizer = fit_normalizer(MemoryFrames(frames), coverage(table, np.array([0])))
    # frames 5..9 (value 3) are in both segments: mean (5*1 + 10*3) / 15
    assert normalizer.mean.item() == pytest.approx(35 / 15)


@pytest.mark.parametrize("padding", ["mean", "zeros"])
def test_padding_modes_pad_short_segments_and_keep_padding_out_of_the_statistics(
    emodb_manifest, tmp_path, padding
):
    dm = datamodule(emodb_manifest, tmp_path / "cache", padding=padding)
    extract = LogMel3D()
    raw = {
        split: [extract(load_audio(u.path)) for u in dm.utterances[split]]  # (3, T, 40) each
        for split in ("train", "test")
    }
    # statistics of the training frames alone (2 s files: each frame in one segment)
    train = torch.cat([f.permute(1, 0, 2) for f in raw["train"]]).double()
    mean, std = train.mean(0).float(), train.std(0, unbiased=False).float()
    torch.testing.assert_close(dm.normalizer.mean, mean, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(dm.normalizer.std, std, rtol=1e-4, atol=1e-4)
    for split in ("train", "test"):
        ds = dm.datasets[split]
        x = ds.__getitems__(list(range(len(ds))))["x"]
        for row, utt in enumerate(ds.table.utterance.tolist()):
            features = raw[split][utt]
            frames = features.shape[1]
            assert frames < 300 and ds.table.valid[row] == frames
            padded = torch.zeros(3, 300, 40)
            if padding == "zeros":  # the original: pad with zeros, then the z-score
                padded[:, :frames] = features
                expected = (padded - mean[:, None]) / std[:, None]
            else:  # the z-score, then zeros (the training mean)
                padded[:, :frames] = (features - mean[:, None]) / std[:, None]
                expected = padded
            torch.testing.assert_close(x[row], expected, rtol=1e-3, atol=1e-3)
        pad = x[:, :, -1]  # the last frame of every (short) segment is padding
        if padding == "zeros":
            torch.testing.assert_close(pad, (-mean / std).expand_as(pad), rtol=1e-4, atol=1e-4)
            assert (pad.abs() > 0.1).any()
        else:
            assert (pad == 0).all()


def test_unknown_padding_is_a_clear_error(emodb_manifest, tmp_path):
    with pytest.raises(ConfigError, match=r"datamodule\.padding='same': choose one of mean, zeros"):
        SERDataModule(corpus=Manifest(manifest=emodb_manifest), fold=0, padding="same")
