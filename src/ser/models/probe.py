"""The standard downstream head on frozen features: pool over time, then an MLP.

SUPERB's emotion task and EmoBox train this on self-supervised encoders; here it runs on any
front-end (log-mel, openSMILE low-level descriptors, SSL hidden states). With no hidden layer
and mean pooling it is a linear classifier (``model=linear``), the reference model on
openSMILE functionals, whose single frame the mean leaves as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from ser.models.base import Network
from ser.models.blocks import AttentionPooling, NetOptionError, require_positive

Pooling = Literal["mean", "mean_std", "attention"]
POOLINGS = ("mean", "mean_std", "attention")


class Probe(Network):
    """``(B, C, T, F)`` -> per-frame vectors ``(B, T, C*F)`` -> pooled -> MLP -> classes.

    Args:
        num_classes: output classes.
        in_channels, frames, n_mels: the segment shape (channels, frames, feature dims).
        pooling: ``mean``, ``mean_std`` (mean and standard deviation over time, the
            x-vector statistics pooling) or ``attention`` (:class:`AttentionPooling`).
        hidden: widths of the MLP's hidden layers (ReLU, dropout); ``[]``: a linear map.
        dropout: dropout before each hidden layer and before the classifier.

    The pooling covers the whole segment, padding included (the training mean after the
    z-score), as the other networks see it.

    Example:
        >>> probe = Probe(4, in_channels=1, frames=150, n_mels=768, hidden=[256])
        >>> probe(torch.randn(2, 1, 150, 768)).shape
        torch.Size([2, 4])
    """

    def __init__(
        self,
        num_classes: int = 4,
        *,
        in_channels: int = 3,
        frames: int = 300,
        n_mels: int = 40,
        pooling: Pooling = "mean_std",
        hidden: Sequence[int] = (256,),
        dropout: float = 0.1,
    ) -> None:
        super().__init__(in_channels=in_channels, frames=frames, n_mels=n_mels)
        require_positive(
            num_classes=num_classes, in_channels=in_channels, frames=frames, n_mels=n_mels
        )
        if hidden:
            require_positive(hidden=list(hidden))
        if pooling not in POOLINGS:
            raise NetOptionError("pooling", f"pooling={pooling!r}: choose one of {POOLINGS}")
        if not 0.0 <= dropout < 1.0:
            raise NetOptionError("dropout", f"dropout={dropout}: give a value in [0, 1)")
        frame_dim = in_channels * n_mels
        self.pooling = pooling
        self.attention = AttentionPooling(frame_dim) if pooling == "attention" else None
        width = 2 * frame_dim if pooling == "mean_std" else frame_dim
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Dropout(dropout), nn.Linear(width, size), nn.ReLU()]
            width = size
        self.mlp = nn.Sequential(*layers)
        self.embedding_dim = width
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, num_classes)

    def pool(self, x: Tensor) -> Tensor:
        """``(B, C, T, F) -> (B, pooled)``: the segment summarised over time."""
        sequence = x.transpose(1, 2).flatten(2)  # (B, T, C*F)
        if self.attention is not None:
            return self.attention(sequence)
        mean = sequence.mean(dim=1)
        if self.pooling == "mean":
            return mean
        std = sequence.var(dim=1, correction=0).clamp_min(1e-8).sqrt()
        return torch.cat([mean, std], dim=1)

    def embed(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.mlp(self.pool(x))

    def classify(self, z: Tensor) -> Tensor:
        return torch.log_softmax(self.classifier(self.dropout(z)), dim=-1)
