"""Losses beyond NLL: center loss (ADRNN, Meng et al. 2019)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CenterLoss(nn.Module):
    """``weight * 0.5 * mean_i ||z_i - c_{y_i}||^2`` with one learned center per class.

    The centers are parameters trained by the same optimiser as the network, in their own
    parameter group with learning rate ``lr`` (see ``SERModule.configure_optimizers``).

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
        distance = (embedding.float() - self.centers[target]).pow(2).sum(dim=1)
        return self.weight * 0.5 * distance.mean()
