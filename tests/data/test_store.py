"""The packed frame store (ser/data/store.py): shards on disk read segment by segment, packed
once, checked when opened, rebuilt when damaged, and the same batches as in memory."""

from __future__ import annotations

import errno
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ser.data import SERDataModule
from ser.data.cache import FeatureCache
from ser.data.corpora import EmoDB, Utterance
from ser.data.dataset import collate_segments
from ser.data.store import (
    DiskFrames,
    FrameStore,
    MemoryFrames,
    StoreDamagedError,
    pack,
    store_directory,
)
from ser.errors import ConfigError

CHANNELS, DIMS = 3, 4


def corpus_entries(tmp_path: Path, lengths: list[int]) -> tuple[FeatureCache, list[Utterance]]:
    """A cache holding one entry per utterance: ``(3, T, 4)`` frames whose values encode
    (utterance, frame, channel, dim), so a misplaced row shows."""
    cache = FeatureCache(
        root=tmp_path / "cache", corpus_name="toy", corpus_identity="toy", feature_config={}
    )
    cache.directory.mkdir(parents=True)
    utterances = []
    for index, frames in enumerate(lengths):
        audio = tmp_path / "audio" / f"u{index}.wav"
        audio.parent.mkdir(exist_ok=True)
        audio.write_bytes(b"x" * (index + 1))
        utterance = Utterance(id=f"u{index}", path=audio, label="a", speaker="s")
        values = (
            index * 1e5
            + np.arange(frames)[None, :, None] * 10
            + np.arange(CHANNELS)[:, None, None] * 1e-1
            + np.arange(DIMS)[None, None, :] * 1e-2
        )
        np.save(cache.path_for(utterance), values.astype(np.float32))
        utterances.append(utterance)
    return cache, utterances


def expected_rows(cache: FeatureCache, utterances: list[Utterance]) -> np.ndarray:
    """The store's rows by hand: each entry transposed to time-major, concatenated."""
    return np.concatenate([np.load(cache.path_for(u)).transpose(1, 0, 2) for u in utterances])


LENGTHS = [5, 40, 1, 17, 33, 8, 60, 2]
FRAME_BYTES = CHANNELS * DIMS * 4


def test_pack_writes_whole_utterances_in_shards_and_reads_them_back(tmp_path):
    cache, utterances = corpus_entries(tmp_path, LENGTHS)
    store = pack(cache, utterances, shard_bytes=50 * FRAME_BYTES, progress=False)
    assert store.lengths.tolist() == LENGTHS
    assert store.offsets.tolist() == np.concatenate([[0], np.cumsum(LENGTHS)[:-1]]).tolist()
    shards = store.frames.shards
    assert len(shards) > 2
    boundaries = set(store.offsets.tolist()) | {sum(LENGTHS)}
    assert set(store.frames.first_row.tolist()) <= boundaries  # no utterance split
    rows = expected_rows(cache, utterances)
    assert np.array_equal(store.frames.read_rows(0, len(rows)).numpy(), rows)
    assert np.array_equal(store.frames.read_rows(3, 70).numpy(), rows[3:70])  # across shards


def test_read_segments_equal_slices_then_the_fill_frame(tmp_path):
    cache, utterances = corpus_entries(tmp_path, LENGTHS)
    store = pack(cache, utterances, shard_bytes=50 * FRAME_BYTES, progress=False)
    rows = expected_rows(cache, utterances)
    begin = torch.tensor([int(store.offsets[u]) for u in (6, 1, 2, 4)]) + torch.tensor([3, 0, 0, 9])
    valid = torch.tensor([20, 40, 1, 24])
    fill = -torch.arange(CHANNELS * DIMS, dtype=torch.float32).reshape(CHANNELS, DIMS) - 1
    for frames in (store.frames, MemoryFrames(torch.from_numpy(rows))):
        batch = frames.read_segments(begin, valid, 30, fill=fill)
        assert batch.shape == (4, 30, CHANNELS, DIMS)
        for i, (b, v) in enumerate(zip(begin.tolist(), valid.tolist(), strict=True)):
            assert np.array_equal(batch[i, : min(v, 30)].numpy(), rows[b : b + min(v, 30)])
            assert torch.equal(batch[i, v:], fill.expand(max(0, 30 - v), CHANNELS, DIMS))


def test_a_packed_store_is_reused_and_keyed_by_the_utterances(tmp_path):
    cache, utterances = corpus_entries(tmp_path, LENGTHS)
    first = pack(cache, utterances, progress=False)
    stamp = (first.directory / "index.npz").stat().st_mtime_ns
    again = pack(cache, utterances, progress=False)
    assert again.directory == first.directory
    assert (again.directory / "index.npz").stat().st_mtime_ns == stamp  # not packed again
    subset = pack(cache, utterances[::2], progress=False)
    assert subset.directory != first.directory
    assert subset.lengths.tolist() == LENGTHS[::2]
    assert np.array_equal(
        subset.frames.read_rows(0, sum(LENGTHS[::2])).numpy(),
        expected_rows(cache, utterances[::2]),
    )


@pytest.mark.parametrize(
    "damage",
    ["truncate", "delete", "garble_header", "delete_index"],
)
def test_a_damaged_store_is_detected_deleted_and_packed_again(tmp_path, damage, caplog):
    cache, utterances = corpus_entries(tmp_path, LENGTHS)
    store = pack(cache, utterances, shard_bytes=50 * FRAME_BYTES, progress=False)
    shard = store.frames.shards[1][0]
    if damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:-7])
    elif damage == "delete":
        shard.unlink()
    elif damage == "garble_header":
        shard.write_bytes(b"not a numpy file" + shard.read_bytes()[16:])
    else:
        (store.directory / "index.npz").unlink()
    with pytest.raises(StoreDamagedError, match=str(store.directory)):
        FrameStore(store.directory)
    repacked = pack(cache, utterances, shard_bytes=50 * FRAME_BYTES, progress=False)
    assert "damaged frame store" in caplog.text
    rows = expected_rows(cache, utterances)
    assert np.array_equal(repacked.frames.read_rows(0, len(rows)).numpy(), rows)


def test_a_shard_truncated_while_open_is_an_error_naming_it(tmp_path):
    cache, utterances = corpus_entries(tmp_path, LENGTHS)
    store = pack(cache, utterances, progress=False)
    shard = store.frames.shards[0][0]
    shard.write_bytes(shard.read_bytes()[: len(shard.read_bytes()) // 2])
    with pytest.raises(StoreDamagedError, match=rf"{shard}.*delete"):
        store.frames.read_rows(0, sum(LENGTHS))


def test_a_failed_write_leaves_nothing_and_the_next_call_packs(tmp_path, monkeypatch):
    cache, utterances = corpus_entries(tmp_path, LENGTHS)
    real_savez = np.savez

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError, match="No space left"):
        pack(cache, utterances, progress=False)
    assert not store_directory(cache, utterances).exists()
    assert [p.name for p in cache.directory.iterdir() if p.is_dir()] == []  # no temp folder
    monkeypatch.setattr(np, "savez", real_savez)
    store = pack(cache, utterances, progress=False)
    assert store.lengths.tolist() == LENGTHS


def test_two_packers_at_once_leave_one_store(tmp_path):
    cache, utterances = corpus_entries(tmp_path, LENGTHS * 20)
    results, errors = [], []

    def packer():
        try:
            results.append(pack(cache, utterances, shard_bytes=200 * FRAME_BYTES, progress=False))
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=packer) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({r.directory for r in results}) == 1
    assert [p.name for p in cache.directory.iterdir() if p.is_dir()] == [results[0].directory.name]
    rows = expected_rows(cache, utterances)
    assert np.array_equal(results[0].frames.read_rows(0, len(rows)).numpy(), rows)


def test_disk_frames_travel_to_workers_and_devices(tmp_path):
    cache, utterances = corpus_entries(tmp_path, LENGTHS)
    frames = pack(cache, utterances, shard_bytes=50 * FRAME_BYTES, progress=False).frames
    frames.read_rows(0, 5)  # opens a descriptor, which must not travel
    copy = pickle.loads(pickle.dumps(frames))
    assert isinstance(copy, DiskFrames) and copy._fds == {}
    rows = expected_rows(cache, utterances)
    assert np.array_equal(copy.read_rows(0, len(rows)).numpy(), rows)
    resident = frames.to("cpu")
    assert torch.equal(resident.frames, torch.from_numpy(rows))
    both = frames + frames
    assert both.num_rows == 2 * len(rows)
    assert np.array_equal(both.read_rows(len(rows) + 3, len(rows) + 9).numpy(), rows[3:9])


def test_an_unknown_store_is_refused(emodb_root, tmp_path):
    with pytest.raises(ConfigError, match=r"datamodule.store=.ram.*disk, memory"):
        SERDataModule(corpus=EmoDB(root=emodb_root), fold=0, cache_dir=tmp_path, store="ram")


def test_disk_and_memory_give_the_same_fold(emodb_root, emodb_cache_dir, tmp_path):
    """Emo-DB fold 2: the same statistics and the same batches (loader with a worker
    process too) from the packed store as from memory."""
    corpus = EmoDB(root=emodb_root, download=False)
    modules = {}
    for store in ("disk", "memory"):
        dm = SERDataModule(
            corpus=corpus, fold=2, cache_dir=emodb_cache_dir, progress=False, store=store
        )
        dm.prepare_data()
        dm.setup("fit")
        modules[store] = dm
    disk, memory = modules["disk"], modules["memory"]
    assert isinstance(disk.datasets["train"].frames, DiskFrames)
    assert torch.equal(disk.normalizer.mean, memory.normalizer.mean)
    assert torch.equal(disk.normalizer.std, memory.normalizer.std)
    for split in ("train", "val", "test"):
        indices = list(range(len(disk.datasets[split])))
        a = disk.datasets[split].__getitems__(indices)
        b = memory.datasets[split].__getitems__(indices)
        assert torch.equal(a["x"], b["x"]), split
        assert torch.equal(a["y"], b["y"])
    loader = DataLoader(
        disk.datasets["val"], batch_size=16, num_workers=1, collate_fn=collate_segments
    )
    from_worker = torch.cat([batch["x"] for batch in loader])
    direct = memory.datasets["val"].__getitems__(range(len(memory.datasets["val"])))["x"]
    assert torch.equal(from_worker, direct)
