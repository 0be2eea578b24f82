"""Frames of a fold, in memory or in a sharded store on disk read through the page cache.

The features of the utterances a run uses are packed once, from the per-utterance cache
(:mod:`ser.data.cache`), into shards of time-major frames ``(rows, channels, dims)``
float32: :func:`pack` writes ``<cache folder>/store-<key>/`` (``key``: the cached entries
packed, in order), each shard a ``.npy`` file holding whole utterances, and ``index.npz``
with each utterance's first row and length. :class:`DiskFrames` reads a batch's segments
with one ``preadv`` each into the batch's own buffer: what a process holds is the batch and
the index, whatever the corpus's size, and every process on a node (DDP ranks, the jobs of a
sweep) shares the shards through the page cache.

Why not ``mmap``: the pages of a mapped file that a process touches count in its resident
set, so after one epoch every process would report the whole store as its own (``python
bench/store.py`` measures both).

The store keeps the cache's guarantees: it is written in a temporary folder renamed into
place (a reader never sees a partial store; of two processes packing at once, the first
rename wins and the other uses it), every shard's size is checked against its header when it
is opened, and a damaged store is logged, deleted and packed again.

:class:`MemoryFrames` holds the same frames as one tensor (``datamodule.store=memory``, and
on the training device for ``datamodule.resident``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ser.data.cache import FeatureCache, entry_shape, npy_problem, read_npy_header
from ser.data.corpora import Utterance
from ser.errors import ConfigError

log = logging.getLogger(__name__)

#: where the frames of a fold live during a run (``datamodule.store``)
STORES = ("disk", "memory")

#: default shard size: small enough to write and check quickly, large enough that a corpus of
#: 100 hours is a few dozen files
SHARD_BYTES = 256 << 20


class StoreDamagedError(RuntimeError):
    """A shard of a packed store is missing, truncated or unreadable."""


def check_store(store: str) -> str:
    """``store`` if it is one of :data:`STORES`, else a :class:`ConfigError` naming them."""
    if store not in STORES:
        raise ConfigError(f"datamodule.store={store!r}: choose one of {', '.join(STORES)}")
    return store


class MemoryFrames:
    """Frames ``(rows, channels, dims)`` held as one tensor (on any device)."""

    def __init__(self, frames: torch.Tensor) -> None:
        self.frames = frames

    @property
    def num_rows(self) -> int:
        return len(self.frames)

    def read_rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` (a view)."""
        return self.frames[start:stop]

    def read_segments(
        self, begin: torch.Tensor, valid: torch.Tensor, length: int, *, fill: torch.Tensor
    ) -> torch.Tensor:
        """``(B, length, channels, dims)``: ``valid[i]`` rows from ``begin[i]``, then the
        frame ``fill``. One gather, on the frames' device, without a host synchronisation."""
        steps = torch.arange(length, device=begin.device)
        inside = (steps < valid[:, None])[..., None, None]
        rows = torch.where(inside[..., 0, 0], begin[:, None] + steps, 0)
        return torch.where(inside, self.frames[rows], fill)

    def to(self, device: str | torch.device) -> MemoryFrames:
        return MemoryFrames(self.frames.to(device))


class DiskFrames:
    """Frames in shard files, read with ``preadv`` (nothing is mapped or kept).

    Args:
        shards: ``(path, data_offset, rows)`` per shard, in row order; a segment never
            crosses two shards (a shard holds whole utterances).
        channels: channels of a frame.
        dims: values per channel.
    """

    def __init__(
        self, shards: Sequence[tuple[Path, int, int]], *, channels: int, dims: int
    ) -> None:
        self.shards = [(Path(p), int(offset), int(rows)) for p, offset, rows in shards]
        self.channels, self.dims = channels, dims
        self.frame_bytes = channels * dims * 4
        self.first_row = np.concatenate([[0], np.cumsum([r for _, _, r in self.shards])])
        self._fds: dict[int, int] = {}
        self._pid = os.getpid()

    @property
    def num_rows(self) -> int:
        return int(self.first_row[-1])

    def __add__(self, other: DiskFrames) -> DiskFrames:
        """The rows of ``self`` followed by those of ``other`` (e.g. a perturbed version)."""
        return DiskFrames(self.shards + other.shards, channels=self.channels, dims=self.dims)

    def __getstate__(self) -> dict:
        # loader workers (spawned or forked) open their own descriptors
        return {k: v for k, v in vars(self).items() if k not in ("_fds", "_pid")}

    def __setstate__(self, state: dict) -> None:
        vars(self).update(state, _fds={}, _pid=os.getpid())

    def __del__(self) -> None:
        if getattr(self, "_pid", None) == os.getpid():
            for fd in self._fds.values():
                os.close(fd)

    def _fd(self, shard: int) -> int:
        if self._pid != os.getpid():  # a forked worker: its descriptors are its own
            self._fds, self._pid = {}, os.getpid()
        if shard not in self._fds:
            self._fds[shard] = os.open(self.shards[shard][0], os.O_RDONLY)
        return self._fds[shard]

    def _read_into(self, out: np.ndarray, row: int) -> None:
        """Fill ``out`` (``(n, channels, dims)`` float32, contiguous) from ``row`` on; the
        rows must lie in one shard."""
        shard = int(np.searchsorted(self.first_row, row, side="right")) - 1
        path, data_offset, _ = self.shards[shard]
        offset = data_offset + (row - int(self.first_row[shard])) * self.frame_bytes
        got = os.preadv(self._fd(shard), [memoryview(out).cast("B")], offset)
        if got != out.nbytes:
            raise StoreDamagedError(
                f"{path}: read {got} of {out.nbytes} bytes at offset {offset}; the store is "
                f"damaged: delete {path.parent} (the next run packs it again)"
            )

    def read_rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` as a new tensor (they may span shards)."""
        out = np.empty((stop - start, self.channels, self.dims), dtype=np.float32)
        row = start
        while row < stop:
            shard = int(np.searchsorted(self.first_row, row, side="right")) - 1
            end = min(stop, int(self.first_row[shard + 1]))
            self._read_into(out[row - start : end - start], row)
            row = end
        return torch.from_numpy(out)

    def read_segments(
        self, begin: torch.Tensor, valid: torch.Tensor, length: int, *, fill: torch.Tensor
    ) -> torch.Tensor:
        """``(B, length, channels, dims)``: ``valid[i]`` rows from ``begin[i]``, then the
        frame ``fill``. One read per segment, straight into the batch (file reads cannot be
        batched)."""
        out = np.empty((len(begin), length, self.channels, self.dims), dtype=np.float32)
        pad = fill.numpy()
        for i, (row, count) in enumerate(zip(begin.tolist(), valid.tolist(), strict=True)):
            self._read_into(out[i, :count], row)
            out[i, count:] = pad
        return torch.from_numpy(out)

    def to(self, device: str | torch.device) -> MemoryFrames:
        """All rows as one tensor on ``device``, copied shard by shard (the host holds one
        shard at a time)."""
        frames = torch.empty((self.num_rows, self.channels, self.dims), device=device)
        for shard in range(len(self.shards)):
            start, stop = int(self.first_row[shard]), int(self.first_row[shard + 1])
            frames[start:stop] = self.read_rows(start, stop).to(device)
        return MemoryFrames(frames)


class FrameStore:
    """A packed store: the frames of a list of utterances, and where each one starts.

    Opening checks every shard's size against its header; a missing, truncated or unreadable
    shard (or index) is a :class:`StoreDamagedError`.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        try:
            meta = json.loads((self.directory / "meta.json").read_text())
            with np.load(self.directory / "index.npz") as index:
                self.offsets, self.lengths = index["offsets"], index["lengths"]
            shards = [_open_shard(self.directory / name) for name in meta["shards"]]
        except (OSError, ValueError, KeyError) as err:
            raise StoreDamagedError(f"{self.directory}: {err}") from err
        channels, dims = meta["channels"], meta["dims"]
        for path, _, shape in shards:
            if tuple(shape[1:]) != (channels, dims):
                raise StoreDamagedError(
                    f"{path}: frames of shape {shape[1:]}, not {channels, dims}"
                )
        self.frames = DiskFrames(
            [(path, data_offset, shape[0]) for path, data_offset, shape in shards],
            channels=channels,
            dims=dims,
        )
        if len(self.offsets) and self.offsets[-1] + self.lengths[-1] != self.frames.num_rows:
            raise StoreDamagedError(
                f"{self.directory}: the index ends at row {self.offsets[-1] + self.lengths[-1]}, "
                f"the shards hold {self.frames.num_rows}"
            )


def store_directory(cache: FeatureCache, utterances: Sequence[Utterance]) -> Path:
    """Where :func:`pack` puts the store of ``utterances`` (in this order) from ``cache``."""
    names = "\n".join(cache.path_for(u).name for u in utterances)
    return cache.directory / f"store-{hashlib.sha256(names.encode()).hexdigest()[:16]}"


def pack(
    cache: FeatureCache,
    utterances: Sequence[Utterance],
    *,
    extract: Callable[[Utterance], torch.Tensor] | None = None,
    shard_bytes: int = SHARD_BYTES,
    progress: bool = True,
) -> FrameStore:
    """The packed store of ``utterances`` (cached in ``cache``), packed now if it is missing
    or damaged (a damaged one is logged and deleted first).

    ``extract`` recomputes an entry found damaged or missing while packing
    (:meth:`FeatureCache.load`). A write that fails (a full disk) leaves no store behind: the
    next call packs it again.
    """
    directory = store_directory(cache, utterances)
    if directory.exists():
        try:
            return FrameStore(directory)
        except StoreDamagedError as err:
            log.warning("damaged frame store (%s); deleting it to pack it again", err)
            shutil.rmtree(directory, ignore_errors=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=cache.directory))
    try:
        _write(temporary, cache, utterances, extract, shard_bytes, progress)
        try:
            temporary.rename(directory)
        except OSError:  # another process packed it first: use theirs
            if not directory.exists():
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return FrameStore(directory)


def _write(
    directory: Path,
    cache: FeatureCache,
    utterances: Sequence[Utterance],
    extract: Callable[[Utterance], torch.Tensor] | None,
    shard_bytes: int,
    progress: bool,
) -> None:
    """Write the shards, index and meta of a store of ``utterances`` into ``directory``."""
    shapes = [_shape(cache, u, extract) for u in utterances]
    channels, dims = (shapes[0][0], shapes[0][2]) if shapes else (0, 0)
    lengths = np.array([s[1] for s in shapes], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    shard_names = []
    bar = tqdm(
        total=len(utterances), desc=f"packing frames -> {cache.directory.name}",
        unit="utt", disable=not (progress and utterances),
    )  # fmt: skip
    for first, last in _shard_plan(lengths, channels * dims * 4, shard_bytes):
        name = f"shard-{len(shard_names):05d}.npy"
        rows = int(lengths[first:last].sum())
        with (directory / name).open("wb") as f:
            header = {"descr": "<f4", "fortran_order": False, "shape": (rows, channels, dims)}
            np.lib.format.write_array_header_1_0(f, header)
            for utterance, shape in zip(utterances[first:last], shapes[first:last], strict=True):
                (features,) = cache.load([utterance], extract)
                if tuple(features.shape) != shape:
                    raise StoreDamagedError(
                        f"{utterance.id}: cached features changed shape from {shape} to "
                        f"{tuple(features.shape)} while packing {directory}"
                    )
                f.write(features.transpose(0, 1).contiguous().numpy().tobytes())
                bar.update()
        shard_names.append(name)
    bar.close()
    np.savez(directory / "index.npz", offsets=offsets, lengths=lengths)
    meta = {"shards": shard_names, "channels": channels, "dims": dims, "utterances": len(lengths)}
    (directory / "meta.json").write_text(json.dumps(meta, indent=2))


def _shape(
    cache: FeatureCache, utterance: Utterance, extract: Callable[[Utterance], torch.Tensor] | None
) -> tuple[int, int, int]:
    """The ``(channels, frames, dims)`` of a cached entry, from its header (the entry is
    recomputed first when it is missing or damaged and ``extract`` is given)."""
    shape = entry_shape(cache.path_for(utterance))
    if shape is None:
        (features,) = cache.load([utterance], extract)
        shape = tuple(features.shape)
    return shape


def _shard_plan(
    lengths: np.ndarray, frame_bytes: int, shard_bytes: int
) -> Iterator[tuple[int, int]]:
    """``(first, last)`` utterance ranges of each shard: whole utterances, about
    ``shard_bytes`` each (an utterance larger than that gets a shard of its own)."""
    first, size = 0, 0
    for index, frames in enumerate(lengths.tolist()):
        if index > first and size + frames * frame_bytes > shard_bytes:
            yield first, index
            first, size = index, 0
        size += frames * frame_bytes
    if len(lengths):
        yield first, len(lengths)


def _open_shard(path: Path) -> tuple[Path, int, tuple[int, ...]]:
    """``(path, data_offset, shape)`` of a shard, checked: 3-d float32, its size as the
    header promises."""
    problem = npy_problem(path)
    if problem is not None:
        raise StoreDamagedError(f"{path}: {problem}")
    shape, _, data_offset, _ = read_npy_header(path)
    return path, data_offset, tuple(shape)
