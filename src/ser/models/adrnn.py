"""ADRNN (Meng et al. 2019, as reproduced by the seed): dilated residual CNN + BiLSTM."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ser.models.base import Baseline
from ser.models.blocks import (
    LSTM,
    Activation,
    AttentionPooling,
    Dense,
    DilatedResidualBlock,
    Step,
    require_positive,
)


class ADRNN(Baseline):
    """ADRNN on ``(B, in_channels, frames, n_mels)`` segments; returns log-probabilities.

    conv (``conv_channels`` maps) + LeakyReLU -> ``pool`` max-pool -> dilated residual block
    (main widths ``dilated_channels``, a skip conv to the last width; the skip has no
    activation, as drawn) -> per-frame linear to ``linear_dim`` -> BiLSTM -> attention
    pooling -> FC ``fc_dim`` -> FC.

    Defaults are the seed's reproduction (SEED.md): the pool is (time 4, mel 2), the
    original code's "(2, 4)" read in its (mel, time) layout, so ``(B, 3, 300, 40)`` becomes
    75 frames of 256 maps x 20 bands = 5120 features; LeakyReLU then BatchNorm after the
    768- and the 64-unit layers (``linear_after``, ``fc_after``). SEED.md's text gives
    "FC + LeakyReLU" for both and BatchNorm on the 64-unit one; the BatchNorm on the 768-unit
    layer follows the seed's code, and the order follows ACRNN's stated "LeakyReLU +
    BatchNorm".

    ``embed`` is the ``fc_dim`` vector, the feature that the center loss pulls together.
    """

    def __init__(
        self,
        num_classes: int = 4,
        *,
        in_channels: int = 3,
        n_mels: int = 40,
        frames: int = 300,
        conv_channels: int = 128,
        kernel_size: int = 3,
        pool: Sequence[int] = (4, 2),
        dilated_channels: Sequence[int] = (128, 128, 256),
        dilated_kernel: int = 3,
        dilation: int = 2,
        skip_activation: bool = False,
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
            conv_channels=conv_channels, kernel_size=kernel_size, pool=pool,
            dilated_channels=dilated_channels, dilated_kernel=dilated_kernel, dilation=dilation,
            linear_dim=linear_dim, lstm_hidden=lstm_hidden, attention_dim=attention_dim,
            fc_dim=fc_dim,
        )  # fmt: skip
        pool_t, pool_f = (int(p) for p in pool)
        if frames // pool_t < 1 or n_mels // pool_f < 1:
            raise ValueError(f"pool {pool} leaves nothing of a {frames} x {n_mels} input")
        widths = [int(c) for c in dilated_channels]
        self.cnn = nn.Sequential(
            nn.Conv2d(in_channels, conv_channels, kernel_size, padding="same"),
            nn.LeakyReLU(negative_slope, inplace=True),
            nn.MaxPool2d((pool_t, pool_f)),
            DilatedResidualBlock(
                conv_channels,
                widths,
                kernel_size=dilated_kernel,
                dilation=dilation,
                skip_activation=skip_activation,
                negative_slope=negative_slope,
            ),
        )
        self.linear = Dense(
            widths[-1] * (n_mels // pool_f),
            linear_dim,
            after=linear_after,
            negative_slope=negative_slope,
        )
        self.lstm = LSTM(linear_dim, lstm_hidden, batch_first=True, bidirectional=True)
        self.pooling = AttentionPooling(
            2 * lstm_hidden, attention_dim=attention_dim, activation=attention_activation
        )
        self.head = Dense(2 * lstm_hidden, fc_dim, after=fc_after, negative_slope=negative_slope)
        self.classifier = nn.Linear(fc_dim, num_classes)
        self.embedding_dim = fc_dim

    def summarise(self, h: Tensor) -> Tensor:
        """``(B, T, linear_dim) -> (B, 2 * lstm_hidden)``: BiLSTM, then attention pooling."""
        out, _ = self.lstm(h)
        return self.pooling(out)
