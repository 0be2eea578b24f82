"""Z-score normalisation per channel and mel band, fitted on a fold's training segments.

Segments shorter than their length are padded at the end; :data:`PADDINGS` are the two ways
(``datamodule.padding``), and :meth:`Normalizer.padding_frame` gives the value a padded frame
holds in the normalised segment. The statistics never include padding, in either mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ser.data.segments import SegmentTable


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
    """``padding`` if it is one of :data:`PADDINGS`, else a ``ValueError`` naming them."""
    if padding not in PADDINGS:
        raise ValueError(f"datamodule.padding={padding!r}: choose one of {', '.join(PADDINGS)}")
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


def fit_normalizer(
    frames: torch.Tensor, weights: np.ndarray, *, min_std: float = 1e-5
) -> Normalizer:
    """Weighted mean and std of ``frames`` ``(total, channels, n_mels)``.

    Each frame counts as often as training segments cover it, so the statistics are those of
    exactly what the model is trained on, without the zero padding. Accumulates in float64.
    """
    w = torch.from_numpy(weights).to(torch.float64)
    if w.sum() <= 0:
        raise ValueError("normalisation needs at least one training frame")
    x = frames.to(torch.float64)
    total = w.sum()
    mean = torch.einsum("t,tcf->cf", w, x) / total
    var = torch.einsum("t,tcf->cf", w, (x - mean) ** 2) / total
    return Normalizer(mean=mean.float(), std=var.sqrt().clamp_min(min_std).float())
