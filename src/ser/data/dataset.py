"""Normalised segments gathered batch-wise from one frame store."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from ser.data.normalization import Normalizer, check_padding
from ser.data.segments import SegmentTable
from ser.data.store import DiskFrames, MemoryFrames


class SegmentDataset(Dataset):
    """Segments ``(3, length, n_mels)`` of a split, with labels and utterance indices.

    Items are dicts ``{"x", "y", "utt", "seg"}``: ``utt`` indexes the split's utterance list
    and ``seg`` the split's segment table, so predictions can be combined per utterance.
    ``__getitems__`` reads a whole batch at once (:meth:`MemoryFrames.read_segments`, one
    gather; :meth:`DiskFrames.read_segments`, one file read per segment) and normalises it.

    Args:
        frames: the frames of all utterances, ``(total_frames, 3, n_mels)``, as stored
            (not normalised).
        normalizer: the fold's z-score, applied to each batch; ``None``: frames as stored.
        offsets: first frame of each split utterance in ``frames``.
        labels: class index of each split utterance.
        table: the split's segments (``utterance`` indexes the split's utterances).
        length: segment length in frames.
        padding: what the frames past ``table.valid`` hold (:data:`PADDINGS`): ``mean``
            zeros after the z-score (the training mean), ``zeros`` zero features before it
            (``-mean / std`` after). Either is written into the raw frames before the
            z-score, so a batch is normalised in one pass with its padding.
        variants: versions of the same segments to read from instead (training with speed or
            noise augmentation, :mod:`ser.augment`): per version, the offsets of the split's
            utterances in ``frames`` and the table of the same segments in that version
            (:func:`rescale_segments`; same order as ``table``). Each segment of a batch is
            read from one version drawn uniformly (torch's random state on the data's
            device); empty: always ``offsets`` and ``table``.
    """

    def __init__(
        self,
        *,
        frames: MemoryFrames | DiskFrames,
        offsets: torch.Tensor,
        labels: torch.Tensor,
        table: SegmentTable,
        length: int,
        normalizer: Normalizer | None = None,
        padding: str = "mean",
        variants: Sequence[tuple[torch.Tensor, SegmentTable]] = (),
    ) -> None:
        self.frames = frames
        self.labels = labels
        self.table = table
        self.length = length
        self.padding = check_padding(padding)
        self._begin = offsets[torch.from_numpy(table.utterance)] + torch.from_numpy(table.start)
        self._valid = torch.from_numpy(table.valid)
        self._utterance = torch.from_numpy(table.utterance)
        # mean and std shaped for the batch's (B, channels, length, dims) layout; the raw
        # value of a padded frame: the one whose z-score is the padding
        self._mean = self._std = None
        self._fill = torch.zeros(frames_shape(frames))
        if normalizer is not None:
            self._mean, self._std = normalizer.mean[:, None], normalizer.std[:, None]
            if padding == "mean":
                self._fill = normalizer.mean.clone()
        self._variant_begin: torch.Tensor | None = None  # (versions, segments)
        self._variant_valid: torch.Tensor | None = None
        if variants:
            if any(len(t) != len(table) for _, t in variants):
                raise ValueError("every version must hold the segments of table, in its order")
            self._variant_begin = torch.stack(
                [o[torch.from_numpy(t.utterance)] + torch.from_numpy(t.start) for o, t in variants]
            )
            self._variant_valid = torch.stack([torch.from_numpy(t.valid) for _, t in variants])

    def __len__(self) -> int:
        return len(self.table)

    def to(
        self, device: str | torch.device, *, moved: dict[int, Any] | None = None
    ) -> SegmentDataset:
        """This split with its tensors and frames on ``device`` (a shallow copy; batches are
        then gathered there: :class:`~ser.data.resident.ResidentLoader`).

        ``moved`` maps ``id(value)`` to its copy on ``device`` and is filled here: passing
        the same dict for every split moves the frame store they share once.
        """
        moved = {} if moved is None else moved
        copied = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor | MemoryFrames | DiskFrames):
                if id(value) not in moved:
                    moved[id(value)] = value.to(device)
                setattr(copied, name, moved[id(value)])
        return copied

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        batch = self.__getitems__([index])
        return {key: value[0] for key, value in batch.items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        seg = torch.as_tensor(indices, dtype=torch.long, device=self._begin.device)
        if self._variant_begin is None:
            begin, valid = self._begin[seg], self._valid[seg]
        else:
            version = torch.randint(len(self._variant_begin), seg.shape, device=seg.device)
            begin, valid = self._variant_begin[version, seg], self._variant_valid[version, seg]
        raw = self.frames.read_segments(begin, valid, self.length, fill=self._fill)
        raw = raw.permute(0, 2, 1, 3)  # (B, 3, length, n_mels), a view
        if self._mean is None:
            x = raw.contiguous()
        else:  # the copy to the batch's layout is the subtraction's output
            x = torch.sub(raw, self._mean, out=raw.new_empty(raw.shape)).div_(self._std)
        utt = self._utterance[seg]
        return {
            "x": x,
            "y": self.labels[utt],
            "utt": utt,
            "seg": seg,
        }


def frames_shape(frames: MemoryFrames | DiskFrames) -> tuple[int, int]:
    """``(channels, dims)`` of one frame of ``frames``."""
    if isinstance(frames, MemoryFrames):
        return tuple(frames.frames.shape[1:])
    return frames.channels, frames.dims


def frame_store(features: Sequence[torch.Tensor]) -> tuple[MemoryFrames, np.ndarray, np.ndarray]:
    """Utterance features ``(3, T_i, n_mels)`` as one time-major store in memory.

    Returns ``(frames, offsets, lengths)``: ``frames`` ``(sum T_i, 3, n_mels)``, where
    utterance ``i`` starts at ``offsets[i]`` and has ``lengths[i]`` frames.
    """
    lengths = np.array([f.shape[1] for f in features], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return MemoryFrames(torch.cat([f.transpose(0, 1) for f in features])), offsets, lengths


def rescale_segments(
    table: SegmentTable, lengths: np.ndarray, new_lengths: np.ndarray, *, length: int
) -> SegmentTable:
    """The segments of ``table`` in another version of the same utterances.

    ``lengths[i]`` and ``new_lengths[i]`` are utterance ``i``'s frames in the version that was
    segmented and in the other (a speed-perturbed copy lasts ``1 / factor`` as long). Each
    start is scaled by the utterance's length ratio, so a segment covers the same stretch of
    the recording, then moved back where the segment would run past the end:
    ``start' = min(start * new // old, max(new - length, 0))``,
    ``valid' = min(length, new - start')``. Equal lengths give ``table`` itself.

    Example:
        >>> a = np.array
        >>> table = SegmentTable(a([0, 0, 1]), a([0, 150, 0]), a([300, 300, 200]))
        >>> slow = rescale_segments(table, a([450, 200]), a([500, 222]), length=300)
        >>> slow.start.tolist(), slow.valid.tolist()
        ([0, 166, 0], [300, 300, 222])
        >>> fast = rescale_segments(table, a([450, 200]), a([409, 182]), length=300)
        >>> fast.start.tolist(), fast.valid.tolist()
        ([0, 109, 0], [300, 300, 182])
    """
    old = lengths[table.utterance]
    new = new_lengths[table.utterance]
    start = np.minimum(table.start * new // old, np.maximum(new - length, 0))
    return SegmentTable(table.utterance, start, np.minimum(length, new - start))


def version_segments(
    table: SegmentTable,
    offsets: np.ndarray,
    lengths: np.ndarray,
    *,
    train_index: np.ndarray,
    blocks: Sequence[int | None],
    length: int,
) -> list[tuple[torch.Tensor, SegmentTable]]:
    """``(offsets, table)`` of the training segments in each version of the training
    utterances (waveform augmentation), for :class:`SegmentDataset`'s ``variants``.

    ``offsets`` and ``lengths`` describe the frame store; ``train_index`` gives the store
    rows of the unperturbed training utterances and ``blocks`` each version's first store
    row (its training utterances follow in the same order), ``None`` for the waveform as
    read. A perturbed version's segments cover the same stretch of each recording
    (:func:`rescale_segments`).
    """
    n_train = len(train_index)
    versions = []
    for first in blocks:
        if first is None:
            versions.append((torch.from_numpy(offsets[train_index]), table))
            continue
        block = slice(first, first + n_train)
        rescaled = rescale_segments(table, lengths[train_index], lengths[block], length=length)
        versions.append((torch.from_numpy(offsets[block]), rescaled))
    return versions


def collate_segments(batch: dict | list) -> dict[str, torch.Tensor]:
    """Collate for :class:`SegmentDataset`: batches from ``__getitems__`` pass through."""
    return batch if isinstance(batch, dict) else default_collate(batch)
