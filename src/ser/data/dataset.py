"""Normalised segments gathered batch-wise from one frame store."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from ser.data.segments import SegmentTable


class SegmentDataset(Dataset):
    """Segments ``(3, length, n_mels)`` of a split, with labels and utterance indices.

    Items are dicts ``{"x", "y", "utt", "seg"}``: ``utt`` indexes the split's utterance list
    and ``seg`` the split's segment table, so predictions can be combined per utterance.
    ``__getitems__`` gathers a whole batch in one indexing operation.

    Args:
        frames: normalised frames of all utterances, ``(total_frames, 3, n_mels)``.
        offsets: first frame of each split utterance in ``frames``.
        labels: class index of each split utterance.
        table: the split's segments (``utterance`` indexes the split's utterances).
        length: segment length in frames.
        padding: what the frames past ``table.valid`` hold, ``(channels, n_mels)``
            (:meth:`ser.data.normalization.Normalizer.padding_frame`); ``None``: zeros.
    """

    def __init__(
        self,
        *,
        frames: torch.Tensor,
        offsets: torch.Tensor,
        labels: torch.Tensor,
        table: SegmentTable,
        length: int,
        padding: torch.Tensor | None = None,
    ) -> None:
        self.frames = frames
        self.labels = labels
        self.table = table
        self.length = length
        self.padding = padding
        self._begin = offsets[torch.from_numpy(table.utterance)] + torch.from_numpy(table.start)
        self._valid = torch.from_numpy(table.valid)
        self._utterance = torch.from_numpy(table.utterance)
        self._steps = torch.arange(length)

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        batch = self.__getitems__([index])
        return {key: value[0] for key, value in batch.items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        seg = torch.as_tensor(indices, dtype=torch.long)
        inside = self._steps < self._valid[seg, None]  # (B, length)
        rows = torch.where(inside, self._begin[seg, None] + self._steps, 0)
        x = self.frames[rows].mul_(inside[..., None, None])  # (B, length, 3, n_mels)
        if self.padding is not None:
            x[~inside] = self.padding
        utt = self._utterance[seg]
        return {
            "x": x.permute(0, 2, 1, 3).contiguous(),
            "y": self.labels[utt],
            "utt": utt,
            "seg": seg,
        }


def frame_store(features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Utterance features ``(3, T_i, n_mels)`` as one time-major store.

    Returns ``(frames, offsets, lengths)``: ``frames`` ``(sum T_i, 3, n_mels)``, where
    utterance ``i`` starts at ``offsets[i]`` and has ``lengths[i]`` frames.
    """
    lengths = np.array([f.shape[1] for f in features], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return torch.cat([f.transpose(0, 1) for f in features]), offsets, lengths


def collate_segments(batch: dict | list) -> dict[str, torch.Tensor]:
    """Collate for :class:`SegmentDataset`: batches from ``__getitems__`` pass through."""
    return batch if isinstance(batch, dict) else default_collate(batch)
