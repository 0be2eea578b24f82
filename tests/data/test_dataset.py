"""Segments gathered batch-wise from a frame store (ser/data/dataset.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ser.data.cache import read_npy_header
from ser.data.dataset import SegmentDataset, collate_segments
from ser.data.normalization import Normalizer
from ser.data.segments import FirstLast, Sliding
from ser.data.store import DiskFrames, MemoryFrames
from ser.errors import ConfigError

L = 300


def disk_frames(directory, frames: torch.Tensor, cuts: list[int]) -> DiskFrames:
    """``frames`` written as ``.npy`` shards split at the rows ``cuts``."""
    shards = []
    for index, (start, stop) in enumerate(zip([0, *cuts], [*cuts, len(frames)], strict=True)):
        path = directory / f"shard-{index}.npy"
        np.save(path, frames[start:stop].numpy())
        shards.append((path, read_npy_header(path)[2], stop - start))
    return DiskFrames(shards, channels=frames.shape[1], dims=frames.shape[2])


@pytest.fixture(params=["memory", "disk"])
def split(request, tmp_path):
    """Four utterances (short, exact, long, long) in a store that also holds other frames,
    in memory or in two shards on disk."""
    lengths = [120, 300, 450, 620]
    gap = 7  # frames of other utterances between them in the store
    offsets, position = [], 3
    for n in lengths:
        offsets.append(position)
        position += n + gap
    # distinct, non-zero values everywhere so padding and misplaced rows are visible
    frames = torch.arange(position * 3 * 40, dtype=torch.float32).reshape(position, 3, 40) + 1
    table = Sliding(hop_s=1.0).segment(lengths, ["a"] * 4, length=L)
    stored = (
        MemoryFrames(frames)
        if request.param == "memory"
        else disk_frames(tmp_path, frames, [offsets[2] - 2])  # a cut between utterances
    )
    dataset = SegmentDataset(
        frames=stored,
        offsets=torch.tensor(offsets),
        labels=torch.tensor([2, 0, 1, 3]),
        table=table,
        length=L,
    )
    return dataset, frames, offsets, lengths


def by_hand(frames, offset, start, valid):
    """The segment sliced out of the store: (3, L, 40), zeros after ``valid`` frames."""
    x = torch.zeros(L, 3, 40)
    x[:valid] = frames[offset + start : offset + start + valid]
    return x.permute(1, 0, 2)


def rebuilt(split, **options) -> SegmentDataset:
    """The fixture's split again, with ``options`` (normalizer, padding)."""
    dataset, _, offsets, _ = split
    return SegmentDataset(
        frames=dataset.frames,
        offsets=torch.tensor(offsets),
        labels=dataset.labels,
        table=dataset.table,
        length=L,
        **options,
    )


def test_batch_equals_slicing_the_store_by_hand(split):
    dataset, frames, offsets, _ = split
    indices = list(range(len(dataset)))[::-1]  # any order
    batch = dataset.__getitems__(indices)
    assert batch["x"].shape == (len(indices), 3, L, 40)
    assert batch["x"].dtype == torch.float32
    table = dataset.table
    for row, seg in enumerate(indices):
        utt = int(table.utterance[seg])
        expected = by_hand(frames, offsets[utt], int(table.start[seg]), int(table.valid[seg]))
        assert torch.equal(batch["x"][row], expected), seg
        assert batch["utt"][row] == utt
        assert batch["seg"][row] == seg
        assert batch["y"][row] == dataset.labels[utt]


def test_padding_frames_are_exactly_zero(split):
    dataset, *_ = split
    batch = dataset.__getitems__(range(len(dataset)))
    for row in range(len(dataset)):
        valid = int(dataset.table.valid[row])
        assert (batch["x"][row, :, valid:] == 0).all()
        assert (batch["x"][row, :, :valid] != 0).all()  # no data frame is zero in the store
    assert int(dataset.table.valid[0]) == 120  # the short utterance is padded


@pytest.mark.parametrize("padding", ["mean", "zeros"])
def test_padding_frames_hold_the_z_score_of_the_padding_mode(split, padding):
    """``mean``: zeros after the z-score; ``zeros``: the z-score of zero features,
    ``-mean / std`` (here worked out by hand)."""
    mean = torch.tensor([1.0, -4.0, 0.5]).repeat_interleave(40).reshape(3, 40)
    std = torch.tensor([2.0, 4.0, 0.5]).repeat_interleave(40).reshape(3, 40)
    padded = rebuilt(split, normalizer=Normalizer(mean=mean, std=std), padding=padding)
    expected = {"mean": [0.0, 0.0, 0.0], "zeros": [-0.5, 1.0, -1.0]}[padding]
    pad = torch.tensor(expected).repeat_interleave(40).reshape(3, 40)
    batch = padded.__getitems__(range(len(padded)))
    for row in range(len(padded)):
        valid = int(padded.table.valid[row])
        assert torch.equal(batch["x"][row, :, valid:], pad[:, None].expand(3, L - valid, 40))
    assert int(padded.table.valid[0]) == 120  # the short utterance is padded
    assert torch.equal(padded[0]["x"], batch["x"][0])  # single items too


def test_an_unknown_padding_is_refused(split):
    with pytest.raises(ConfigError, match=r"datamodule\.padding='edge': choose one of mean, zeros"):
        rebuilt(split, padding="edge")


def test_the_normalizer_applies_to_the_frames_not_the_padding(split):
    _, frames, offsets, _ = split
    mean = torch.linspace(-3, 3, 120).reshape(3, 40)
    std = torch.linspace(0.5, 2, 120).reshape(3, 40)
    normalized = rebuilt(split, normalizer=Normalizer(mean=mean, std=std))
    batch = normalized.__getitems__(range(len(normalized)))
    table = normalized.table
    for row in range(len(normalized)):
        utt, start, valid = (int(a[row]) for a in (table.utterance, table.start, table.valid))
        raw = frames[offsets[utt] + start : offsets[utt] + start + valid]
        expected = ((raw - mean) / std).permute(1, 0, 2)
        torch.testing.assert_close(batch["x"][row, :, :valid], expected, rtol=0, atol=1e-6)
        assert (batch["x"][row, :, valid:] == 0).all()
    assert batch["x"].is_contiguous()


def test_single_item_equals_the_batched_path(split):
    dataset, *_ = split
    batch = dataset.__getitems__(list(range(len(dataset))))
    for index in range(len(dataset)):
        item = dataset[index]
        assert set(item) == {"x", "y", "utt", "seg"}
        for key, value in item.items():
            assert torch.equal(value, batch[key][index]), (index, key)


def test_loader_batches_equal_direct_gathering(split):
    dataset, *_ = split
    loader = DataLoader(dataset, batch_size=4, shuffle=False, collate_fn=collate_segments)
    batches = list(loader)
    assert len(dataset) == 1 + 1 + 3 + 5  # sliding: 0 | 0 | 0,100,150 | 0,100,200,300,320
    assert [len(b["seg"]) for b in batches] == [4, 4, 2]
    x = torch.cat([b["x"] for b in batches])
    assert torch.equal(x, dataset.__getitems__(list(range(len(dataset))))["x"])


def test_default_collate_of_single_items_gives_the_same_batch(split):
    dataset, *_ = split
    items = [dataset[i] for i in (1, 5)]
    batch = collate_segments(items)
    direct = dataset.__getitems__([1, 5])
    for key in direct:
        assert torch.equal(batch[key], direct[key])


def test_utt_indexes_the_split_utterances_not_the_store():
    lengths = [100, 350]
    frames = torch.randn(1000, 3, 40)
    table = FirstLast().segment(lengths, ["a", "b"], length=L)
    dataset = SegmentDataset(
        frames=MemoryFrames(frames),
        offsets=torch.tensor([600, 200]),
        labels=torch.tensor([1, 0]),
        table=table,
        length=L,
    )
    batch = dataset.__getitems__([0, 1, 2])
    assert batch["utt"].tolist() == [0, 1, 1]
    assert batch["y"].tolist() == [1, 0, 0]
    assert torch.equal(batch["x"][0, :, :100], frames[600:700].permute(1, 0, 2))
    assert torch.equal(batch["x"][2], frames[250:550].permute(1, 0, 2))
    assert np.array_equal(dataset.table.start, [0, 0, 50])
