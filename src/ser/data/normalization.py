"""Z-score normalisation per channel and mel band, fitted on a fold's training segments.

Segments shorter than their length are padded at the end; :data:`PADDINGS` are the two ways
(``datamodule.padding``), and :meth:`Normalizer.padding_frame` gives the value a padded frame
holds in the normalised segment. The statistics never include padding, in either mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ser.data.segments import SegmentTable
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

    def padding_frame(self, padding: str) -> torch.Tensor | None:
        """The normalised value of a padded frame ``(channels, n_mels)`` for ``padding``.

        ``mean``: ``None``, i.e. zeros after the z-score (the training mean);
        ``zeros``: the z-score of zero features, ``-mean / std`` (the original's padding).
        """
        check_padding(padding)
        return None if padding == "mean" else self(torch.zeros_like(self.mean))


#: how short segments are padded: ``mean`` pads the normalised features with zeros (the
#: training mean; this project's default), ``zeros`` pads the raw features with zeros before
#: the z-score (the original's), so the padding becomes ``-mean / std``
PADDINGS = ("mean", "zeros")


def check_padding(padding: str) -> str:
    """``padding`` if it is one of :data:`PADDINGS`, else a :class:`ConfigError` naming them."""
    if padding not in PADDINGS:
        raise ConfigError(f"datamodule.padding={padding!r}: choose one of {', '.join(PADDINGS)}")
    return padding


def frame_weights(table: SegmentTable, offsets: np.ndarray, total_frames: int) -> np.ndarray:
    """How many segments of ``table`` cover each stored frame (padding is not a frame).

    ``offsets[i]`` is where utterance ``i`` starts in the frame store.
    """
    begin = offsets[table.utterance] + table.start
    diff = np.zeros(total_frames + 1, dtype=np.int64)
    np.add.at(diff, begin, 1)
    np.add.at(diff, begin + table.valid, -1)
    return np.cumsum(diff[:-1])


class NonFiniteFeaturesError(ValueError):
    """The training features hold NaN or Inf; ``row`` is the first such frame of the store."""

    def __init__(self, row: int) -> None:
        super().__init__(
            f"the training features contain NaN/Inf values (first at frame row {row} of the "
            "frame store); normalisation statistics would be NaN"
        )
        self.row = row


def fit_normalizer(
    frames: torch.Tensor,
    weights: np.ndarray,
    *,
    min_std: float = 1e-5,
    chunk_frames: int = 65536,
) -> Normalizer:
    """Weighted mean and std of ``frames`` ``(total, channels, n_mels)``.

    Each frame counts as often as training segments cover it, so the statistics are those of
    exactly what the model is trained on, without the zero padding. Frames of weight 0 (other
    splits) are never read. Two passes (the mean, then the squared deviations from it) over
    blocks of ``chunk_frames`` store rows, accumulated in float64: the extra memory is that of
    one block, not of the store. A non-finite training frame is a
    :class:`NonFiniteFeaturesError` naming its row.
    """
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames={chunk_frames}: must be at least 1")
    total = 0.0
    acc = torch.zeros(frames.shape[1:], dtype=torch.float64)
    for start, rows, w in _training_blocks(weights, chunk_frames):
        x = _rows(frames, start, rows)
        part = torch.einsum("t,tcf->cf", w, x)
        if not torch.isfinite(part).all():
            bad = torch.nonzero(~torch.isfinite(x).flatten(1).all(1))[0].item()
            raise NonFiniteFeaturesError(start + int(rows[bad]))
        acc += part
        total += float(w.sum())
    if total <= 0:
        raise ValueError("normalisation needs at least one training frame")
    mean = acc / total
    acc.zero_()
    for start, rows, w in _training_blocks(weights, chunk_frames):
        acc += torch.einsum("t,tcf->cf", w, _rows(frames, start, rows).sub_(mean).square_())
    std = (acc / total).sqrt()
    return Normalizer(mean=mean.float(), std=std.clamp_min(min_std).float())


def _training_blocks(
    weights: np.ndarray, chunk_frames: int
) -> Iterator[tuple[int, np.ndarray, torch.Tensor]]:
    """``(start, rows, w)`` per block of store rows with training frames.

    ``rows`` are the block's rows of positive weight, relative to ``start``; ``w`` their
    weights in float64.
    """
    for start in range(0, len(weights), chunk_frames):
        block = weights[start : start + chunk_frames]
        rows = np.flatnonzero(block > 0)
        if len(rows):
            yield start, rows, torch.from_numpy(block[rows].astype(np.float64))


def _rows(frames: torch.Tensor, start: int, rows: np.ndarray) -> torch.Tensor:
    """``frames[start + rows]`` as a new float64 tensor (one block at most)."""
    return frames[start + torch.from_numpy(rows)].to(torch.float64)
