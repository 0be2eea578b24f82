"""ASRNN (Peng et al. 2020, on 3D log-mel input): CNN + sliding-window BiLSTM + attention/LSTM."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ser.models.base import Baseline
from ser.models.blocks import (
    LSTM,
    Activation,
    AttentionPooling,
    Dense,
    OverlappingWindowLSTM,
    Step,
    WindowEncoding,
    require_positive,
)


class ASRNN(Baseline):
    """ASRNN on ``(B, in_channels, frames, n_mels)`` segments; returns log-probabilities.

    conv blocks [3x3 conv -> max-pool -> BatchNorm -> ReLU] (widths ``conv_channels``, pools
    ``pools``; a ``(1, 1)`` pool means the block does not pool) -> per-frame linear to
    ``linear_dim`` -> windows of ``window`` frames every ``shift`` frames, each encoded by
    one shared BiLSTM (``window_encoding``: its final states ``h_n``, the default, or its
    output at the window's last frame, SEED.md's "last output") -> the window sequence
    goes to (a) attention pooling and (b) an LSTM (last hidden state) -> concat -> FC
    ``fc_dim`` (the embedding) -> FC.

    Defaults are the seed's reproduction (SEED.md): only the first block pools (2x2), so
    ``(B, 3, 300, 40)`` becomes 150 frames of 128 maps x 20 bands = 2560 features and 29
    windows of 10 frames at shift 5; BatchNorm after the 768-unit linear layer
    (``linear_after``; SEED.md's text names only the linear map, the BatchNorm is the seed's
    code) and LeakyReLU then BatchNorm after the 64-unit
    one (``fc_after``, as SEED.md states).
    """

    def __init__(
        self,
        num_classes: int = 4,
        *,
        in_channels: int = 3,
        n_mels: int = 40,
        frames: int = 300,
        conv_channels: Sequence[int] = (64, 128, 128),
        kernel_size: int = 3,
        pools: Sequence[Sequence[int]] = ((2, 2), (1, 1), (1, 1)),
        linear_dim: int = 768,
        linear_after: Sequence[Step] = ("norm",),
        window: int = 10,
        shift: int = 5,
        window_hidden: int = 128,
        attention_dim: int = 1,
        attention_activation: Activation = "relu",
        window_encoding: WindowEncoding = "h_n",
        sequence_hidden: int = 256,
        fc_dim: int = 64,
        fc_after: Sequence[Step] = ("act", "norm"),
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__(in_channels=in_channels, frames=frames, n_mels=n_mels)
        require_positive(
            num_classes=num_classes, in_channels=in_channels, n_mels=n_mels, frames=frames,
            conv_channels=conv_channels, kernel_size=kernel_size, pools=pools,
            linear_dim=linear_dim, window=window, shift=shift, window_hidden=window_hidden,
            attention_dim=attention_dim, sequence_hidden=sequence_hidden, fc_dim=fc_dim,
        )  # fmt: skip
        widths = [in_channels, *(int(c) for c in conv_channels)]
        pool_sizes = [(int(t), int(f)) for t, f in pools]
        if len(pool_sizes) != len(widths) - 1:
            raise ValueError("pools needs one (time, mel) pool per conv block")
        layers: list[nn.Module] = []
        t, f = frames, n_mels
        for c_in, c_out, (pool_t, pool_f) in zip(widths[:-1], widths[1:], pool_sizes, strict=True):
            layers.append(nn.Conv2d(c_in, c_out, kernel_size, padding="same", bias=False))
            if (pool_t, pool_f) != (1, 1):
                layers.append(nn.MaxPool2d((pool_t, pool_f)))
            layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            t, f = t // pool_t, f // pool_f
        self.cnn = nn.Sequential(*layers)
        self.cnn_frames = t
        self.window_encoder = OverlappingWindowLSTM(
            linear_dim, window_hidden, window=window, shift=shift, encoding=window_encoding
        )
        if f < 1 or self.window_encoder.num_windows(t) < 1:
            raise ValueError(f"pools {pool_sizes} leave {t} frames x {f} bands: too small")
        self.linear = Dense(
            widths[-1] * f, linear_dim, after=linear_after, negative_slope=negative_slope
        )
        self.pooling = AttentionPooling(
            self.window_encoder.output_size,
            attention_dim=attention_dim,
            activation=attention_activation,
        )
        self.sequence_lstm = LSTM(
            self.window_encoder.output_size, sequence_hidden, batch_first=True
        )
        self.head = Dense(
            self.window_encoder.output_size + sequence_hidden,
            fc_dim,
            after=fc_after,
            negative_slope=negative_slope,
        )
        self.classifier = nn.Linear(fc_dim, num_classes)
        self.embedding_dim = fc_dim

    def window_starts(self) -> list[int]:
        """First frame (after the CNN's time pooling) of each window the model encodes."""
        return self.window_encoder.window_starts(self.cnn_frames)

    def summarise(self, h: Tensor) -> Tensor:
        """``(B, T, linear_dim) -> (B, 2 * window_hidden + sequence_hidden)``: the window
        encodings, attention-pooled and read by the sequence LSTM (last hidden state)."""
        encodings = self.window_encoder(h)
        _, (h_n, _) = self.sequence_lstm(encodings)
        return torch.cat([self.pooling(encodings), h_n[-1]], dim=-1)
