"""ACRNN (Chen et al. 2018): CNN -> per-frame linear -> BiLSTM -> attention pooling."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from torch import Tensor, nn

from ser.models.base import Baseline
from ser.models.blocks import (
    LSTM,
    Activation,
    AttentionPooling,
    Dense,
    Step,
    require_positive,
)


class ACRNN(Baseline):
    """ACRNN on ``(B, in_channels, frames, n_mels)`` segments; returns log-probabilities.

    ``conv_layers`` 'same' convolutions with LeakyReLU: the first to ``first_channels`` maps
    followed by one ``pool`` max-pool, the rest to ``channels`` maps -> per-frame linear to
    ``linear_dim`` -> BiLSTM -> attention pooling over time -> BatchNorm -> FC ``fc_dim``
    (the embedding) -> FC.

    Defaults are the seed's reproduction (SEED.md): 2 convs with kernels 5 (time) x 3 (mel),
    the paper's orientation (the original code's "3x5" was (mel, time)); a 2x2 pool, so
    ``(B, 3, 300, 40)`` becomes 150 frames of 256 maps x 20 bands = 5120 features; LeakyReLU
    then BatchNorm after the 768- and the 64-unit layers (``linear_after``, ``fc_after``).
    ``conv_layers=6`` is the paper's best on IEMOCAP.
    """

    def __init__(
        self,
        num_classes: int = 4,
        *,
        in_channels: int = 3,
        n_mels: int = 40,
        frames: int = 300,
        conv_layers: int = 2,
        first_channels: int = 128,
        channels: int = 256,
        kernel_size: Sequence[int] = (5, 3),
        pool: Sequence[int] = (2, 2),
        linear_dim: int = 768,
        linear_after: Sequence[Step] = ("act", "norm"),
        lstm_hidden: int = 128,
        attention_dim: int = 1,
        attention_activation: Activation = "relu",
        fc_dim: int = 64,
        fc_after: Sequence[Step] = ("act", "norm"),
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__(in_channels=in_channels, frames=frames, n_mels=n_mels)
        require_positive(
            num_classes=num_classes, in_channels=in_channels, n_mels=n_mels, frames=frames,
            conv_layers=conv_layers, first_channels=first_channels, channels=channels,
            kernel_size=kernel_size, pool=pool, linear_dim=linear_dim, lstm_hidden=lstm_hidden,
            attention_dim=attention_dim, fc_dim=fc_dim,
        )  # fmt: skip
        if conv_layers < 2:
            raise ValueError(f"conv_layers must be at least 2, got {conv_layers}")
        pool_t, pool_f = (int(p) for p in pool)
        if frames // pool_t < 1 or n_mels // pool_f < 1:
            raise ValueError(f"pool {pool} leaves nothing of a {frames} x {n_mels} input")
        kernel = tuple(int(k) for k in kernel_size)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, first_channels, kernel, padding="same"),
            nn.LeakyReLU(negative_slope, inplace=True),
            nn.MaxPool2d((pool_t, pool_f)),
        ]
        widths = [first_channels] + [channels] * (conv_layers - 1)
        for c_in, c_out in pairwise(widths):
            layers += [
                nn.Conv2d(c_in, c_out, kernel, padding="same"),
                nn.LeakyReLU(negative_slope, inplace=True),
            ]
        self.cnn = nn.Sequential(*layers)
        self.linear = Dense(
            channels * (n_mels // pool_f),
            linear_dim,
            after=linear_after,
            negative_slope=negative_slope,
        )
        self.lstm = LSTM(linear_dim, lstm_hidden, batch_first=True, bidirectional=True)
        self.pooling = AttentionPooling(
            2 * lstm_hidden, attention_dim=attention_dim, activation=attention_activation
        )
        self.head = nn.Sequential(
            nn.BatchNorm1d(2 * lstm_hidden),
            Dense(2 * lstm_hidden, fc_dim, after=fc_after, negative_slope=negative_slope),
        )
        self.classifier = nn.Linear(fc_dim, num_classes)
        self.embedding_dim = fc_dim

    def summarise(self, h: Tensor) -> Tensor:
        """``(B, T, linear_dim) -> (B, 2 * lstm_hidden)``: BiLSTM, then attention pooling."""
        out, _ = self.lstm(h)
        return self.pooling(out)
