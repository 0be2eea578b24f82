"""Losses beyond NLL: the soft-target NLL (mixup, label smoothing) and center loss (ADRNN)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def soft_nll_loss(log_probs: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Cross-entropy of log-probabilities ``(B, C)`` against target distributions ``(B, C)``.

    Class-weighted as ``F.nll_loss`` is: ``sum_i sum_c w_c q_ic (-log p_ic) / sum_i sum_c
    w_c q_ic``. With one-hot targets it is ``F.nll_loss(log_probs, labels, weight=weight)``;
    with mixed (mixup) or smoothed targets each class's share of a segment counts with that
    class's weight. (``F.cross_entropy`` with probability targets divides by the batch size
    instead, which does not reduce to the weighted NLL.)

    Example:
        >>> log_probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]]).log()
        >>> weight = torch.tensor([1.0, 3.0])
        >>> hard = nn.functional.nll_loss(log_probs, torch.tensor([0, 1]), weight=weight)
        >>> soft = soft_nll_loss(log_probs, torch.eye(2), weight)
        >>> bool(torch.isclose(hard, soft))
        True
    """
    weighted = target if weight is None else target * weight
    return -(weighted * log_probs).sum() / weighted.sum()


def smooth_labels(target: Tensor, smoothing: float) -> Tensor:
    """Label smoothing (Szegedy et al. 2016) of distributions ``(B, C)``:
    ``(1 - smoothing) * target + smoothing / C``.

    Example:
        >>> smooth_labels(torch.tensor([[0.0, 1.0, 0.0, 0.0]]), 0.2)
        tensor([[0.0500, 0.8500, 0.0500, 0.0500]])
    """
    return target * (1 - smoothing) + smoothing / target.shape[-1]


class CenterLoss(nn.Module):
    """``weight * 0.5 * mean_i ||z_i - c_{y_i}||^2`` with one learned center per class.

    The centers are parameters trained by the same optimiser as the network, in their own
    parameter group with learning rate ``lr`` (see ``SERModule.configure_optimizers``).
    Targets may be class distributions ``(B, C)`` (mixup): each center's squared distance
    then counts with the class's share, ``sum_c q_ic ||z_i - c_c||^2``, which is the
    labelled form for one-hot rows.

    Args:
        num_classes: number of classes.
        dim: embedding size.
        weight: the loss weight (lambda).
        lr: learning rate of the centers.

    Example:
        >>> loss = CenterLoss(num_classes=2, dim=3, weight=1.0)
        >>> with torch.no_grad():
        ...     _ = loss.centers.zero_()
        >>> loss(torch.ones(4, 3), torch.tensor([0, 1, 0, 1]))
        tensor(1.5000, grad_fn=<MulBackward0>)
    """

    def __init__(
        self, *, num_classes: int, dim: int, weight: float = 0.01, lr: float = 0.01
    ) -> None:
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, dim) * 0.1)
        self.weight = weight
        self.lr = lr

    def forward(self, embedding: Tensor, target: Tensor) -> Tensor:
        if target.ndim == 1:
            distance = (embedding.float() - self.centers[target]).pow(2).sum(dim=1)
        else:
            squared = (embedding.float()[:, None] - self.centers).pow(2).sum(dim=2)  # (B, C)
            distance = (target * squared).sum(dim=1)
        return self.weight * 0.5 * distance.mean()
