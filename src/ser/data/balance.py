"""Class balance of the training split, one strategy object per option.

- :class:`NoBalance`: segments as they are.
- :class:`WeightedSampler`: draw segments with probability inversely proportional to their
  class frequency (with replacement; an epoch keeps the same number of segments).
- :class:`ClassWeightedLoss`: weights ``n / (C * n_c)`` handed to the loss.
- :class:`FixedPerClass`: the original's protocol, the first ``n`` training segments of each
  class in corpus order (all of a class that has fewer).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import Sampler, WeightedRandomSampler

from ser.errors import ConfigError

log = logging.getLogger(__name__)


class Balance:
    """Base strategy: keep every segment, plain shuffling, unweighted loss."""

    def select(self, labels: np.ndarray, num_classes: int) -> np.ndarray:
        """Indices of the training segments to keep (``labels`` are class indices)."""
        return np.arange(len(labels))

    def sampler(self, labels: np.ndarray, num_classes: int, seed: int) -> Sampler | None:
        """A sampler over the kept segments, or ``None`` for plain shuffling."""
        return None

    def class_weights(self, labels: np.ndarray, num_classes: int) -> torch.Tensor | None:
        """Per-class loss weights, or ``None`` for an unweighted loss."""
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class NoBalance(Balance):
    """Use the training segments as they are."""


def _inverse_frequency(labels: np.ndarray, num_classes: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)


class WeightedSampler(Balance):
    """Sample segments with class-balanced probabilities."""

    def sampler(self, labels: np.ndarray, num_classes: int, seed: int) -> Sampler:
        weights = _inverse_frequency(labels, num_classes)[labels]
        generator = torch.Generator().manual_seed(seed)
        return WeightedRandomSampler(
            torch.from_numpy(weights), num_samples=len(labels), replacement=True,
            generator=generator,
        )  # fmt: skip


class ClassWeightedLoss(Balance):
    """Weight the loss by inverse class frequency of the training segments."""

    def class_weights(self, labels: np.ndarray, num_classes: int) -> torch.Tensor:
        return torch.from_numpy(_inverse_frequency(labels, num_classes)).float()


class FixedPerClass(Balance):
    """Keep the first ``n`` segments of each class (SEED.md: 300 per class)."""

    def __init__(self, *, n: int = 300) -> None:
        if n < 1:
            raise ConfigError(f"datamodule.balance.n={n} (balance=fixed): keep at least 1 segment")
        self.n = n

    def select(self, labels: np.ndarray, num_classes: int) -> np.ndarray:
        keep = []
        for c in range(num_classes):
            members = np.flatnonzero(labels == c)
            if 0 < len(members) < self.n:
                log.warning(
                    "class %d has %d training segments (< %d): using all", c, len(members), self.n
                )
            keep.append(members[: self.n])
        return np.sort(np.concatenate(keep))
