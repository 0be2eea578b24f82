"""Z-score normalisation per channel and mel band, fitted on a fold's training segments.

Segments shorter than their length are padded at the end; :data:`PADDINGS` are the two ways
(``datamodule.padding``; :class:`~ser.data.dataset.SegmentDataset` writes them). The
statistics never include padding, in either mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ser.data.segments import SegmentTable
from ser.data.store import DiskFrames, MemoryFrames
from ser.errors import ConfigError


@dataclass
class Normalizer:
    """``(x - mean) / std`` with ``mean`` and ``std`` of shape ``(channels, n_mels)``."""

    mean: torch.Tensor
    std: torch.Tensor

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalise frames ``(..., channels, n_mels)`` (time-major store layout)."""
        return (frames - self.mean) / self.std

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.clone(), "std": self.std.clone()}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> Normalizer:
        return cls(mean=state["mean"].float(), std=state["std"].float())


#: how short segments are padded: ``mean`` pads the normalised features with zeros (the
#: training mean; this project's default), ``zeros`` pads the raw features with zeros before
#: the z-score (the original's), so the padding becomes ``-mean / std``
PADDINGS = ("mean", "zeros")


def check_padding(padding: str) -> str:
    """``padding`` if it is one of :data:`PADDINGS`, else a :class:`ConfigError` naming them."""
    if padding not in PADDINGS:
        raise ConfigError(f"datamodule.padding={padding!r}: choose one of {', '.join(PADDINGS)}")
    return padding


def coverage(table: SegmentTable, offsets: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(start, stop, count)``: runs of frame-store rows covered by the same positive
    number of segments of ``table`` (padding is not a row), in row order.

    ``offsets[i]`` is where utterance ``i`` starts in the store. Its size is that of the
    table, not of the store, so statistics over a store larger than memory need no array
    per row.

    Example:
        >>> a = np.array
        >>> table = SegmentTable(a([0, 0, 1]), a([0, 2, 0]), a([4, 4, 3]))
        >>> [r.tolist() for r in coverage(table, offsets=a([0, 10]))]
        [[0, 2, 4, 10], [2, 4, 6, 13], [1, 2, 1, 1]]
    """
    begin = offsets[table.utterance] + table.start
    points = np.concatenate([begin, begin + table.valid])
    delta = np.concatenate([np.ones(len(begin)), -np.ones(len(begin))]).astype(np.int64)
    rows, inverse = np.unique(points, return_inverse=True)
    count = np.cumsum(np.bincount(inverse, weights=delta, minlength=len(rows)).astype(np.int64))
    keep = count[:-1] > 0
    return rows[:-1][keep], rows[1:][keep], count[:-1][keep]


class NonFiniteFeaturesError(ValueError):
    """The training features hold NaN or Inf; ``row`` is the first such frame of the store."""

    def __init__(self, row: int) -> None:
        super().__init__(
            f"the training features contain NaN/Inf values (first at frame row {row} of the "
            "frame store); normalisation statistics would be NaN"
        )
        self.row = row


def fit_normalizer(
    frames: MemoryFrames | DiskFrames,
    runs: tuple[np.ndarray, ...],
    *,
    min_std: float = 1e-5,
    chunk_frames: int = 65536,
) -> Normalizer:
    """Weighted mean and std of the store ``frames`` ``(rows, channels, n_mels)``.

    ``runs`` (:func:`coverage`) says how often training segments cover each row, so the
    statistics are those of exactly what the model is trained on, without the zero padding.
    Rows of no training segment (other splits) are never read. Two passes (the mean, then
    the squared deviations from it) over blocks of at most ``chunk_frames`` contiguous rows,
    accumulated in float64: the extra memory is that of one block, not of the store. A
    non-finite training frame is a :class:`NonFiniteFeaturesError` naming its row.
    """
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames={chunk_frames}: must be at least 1")
    total = 0.0
    acc: torch.Tensor | None = None
    for start, w in _training_blocks(runs, chunk_frames):
        x = frames.read_rows(start, start + len(w)).to(torch.float64)
        part = torch.einsum("t,tcf->cf", w, x)
        if not torch.isfinite(part).all():
            bad = torch.nonzero(~torch.isfinite(x).flatten(1).all(1))[0].item()
            raise NonFiniteFeaturesError(start + int(bad))
        acc = part if acc is None else acc + part
        total += float(w.sum())
    if acc is None or total <= 0:
        raise ValueError("normalisation needs at least one training frame")
    mean = acc / total
    acc.zero_()
    for start, w in _training_blocks(runs, chunk_frames):
        x = frames.read_rows(start, start + len(w)).to(torch.float64)
        acc += torch.einsum("t,tcf->cf", w, x.sub_(mean).square_())
    std = (acc / total).sqrt()
    return Normalizer(mean=mean.float(), std=std.clamp_min(min_std).float())


def _training_blocks(
    runs: tuple[np.ndarray, ...], chunk_frames: int
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start, w)`` per block of contiguous covered rows: rows ``start:start + len(w)``
    and their weights in float64 (at most ``chunk_frames`` rows)."""
    block_start, block_end, parts = 0, 0, []
    for start, stop, count in zip(*(r.tolist() for r in runs), strict=True):
        while start < stop:
            if parts and (start != block_end or block_end - block_start == chunk_frames):
                yield block_start, torch.from_numpy(np.concatenate(parts))
                parts = []
            if not parts:
                block_start = block_end = start
            take = min(stop - start, chunk_frames - (block_end - block_start))
            parts.append(np.full(take, count, dtype=np.float64))
            block_end = start + take
            start += take
    if parts:
        yield block_start, torch.from_numpy(np.concatenate(parts))
