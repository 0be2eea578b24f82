"""ADSRNN: dilated CNN + attention-based sliding BiLSTM (the proposed model, SEED.md)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from ser.models.base import Network
from ser.models.blocks import (
    CausalWindowAttention,
    DilatedResidualBlock,
    FastDropout,
    StatefulWindowLSTM,
    WindowClassifiers,
    channels_last,
    frames_to_sequence,
    require_positive,
)

Combine = Literal["sum", "recursive"]


def combine_log_weights(windows: int, window_combine: Combine) -> Tensor:
    """Log of the weights that mix the per-window distributions into one (they sum to 1).

    ``"sum"``: the thesis formula, sum of the M distributions normalised, i.e. their mean.
    ``"recursive"``: the released code, ``p = p_1; p = (p + p_m) / 2`` for ``m = 2..M``, i.e.
    weight ``2^-(M-1)`` for window 1 and ``2^-(M-m+1)`` for window ``m >= 2``.
    """
    if window_combine == "sum":
        return torch.full((windows,), -math.log(windows))
    if window_combine == "recursive":
        halvings = [windows - 1] + [windows - m + 1 for m in range(2, windows + 1)]
        return torch.tensor(halvings, dtype=torch.float32) * -math.log(2.0)
    raise ValueError(f"window_combine must be 'sum' or 'recursive', got {window_combine!r}")


class ADSRNN(Network):
    """ADSRNN on ``(B, in_channels, frames, n_mels)`` segments; returns log-probabilities.

    front CNN (two 'same' convs, dropout, max-pool over mel only) -> dilated residual block
    -> frames of ``dilated_channels * n_mels / mel_pool`` features -> sliding BiLSTM over
    ``windows`` consecutive windows of ``window_frames`` frames (state carried forward),
    each window mean-pooled -> causal attention over windows -> one classifier per window
    -> the per-window distributions mixed by ``window_combine``.

    ``embed`` returns the M attention outputs flattened, ``(B, windows * 2 * lstm_hidden)``;
    ``classify`` un-flattens them.

    Causality: window ``m``'s encoding and distribution depend on the CNN features of windows
    ``1..m`` only. The CNN looks ``context_frames`` frames (8 by default) either side, so
    input frames up to that many past the end of window ``m`` also reach it.
    """

    def __init__(
        self,
        num_classes: int = 4,
        *,
        in_channels: int = 3,
        n_mels: int = 40,
        frames: int = 300,
        front_channels: int = 128,
        front_kernel: int = 3,
        front_dropout: float = 0.3,
        mel_pool: int = 2,
        dilated_channels: int = 128,
        dilated_layers: int = 3,
        dilated_kernel: int = 3,
        dilation: int = 2,
        lstm_hidden: int = 256,
        windows: int = 10,
        window_frames: int = 30,
        per_window_attention: bool = False,
        window_combine: Combine = "sum",
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__(in_channels=in_channels, frames=frames, n_mels=n_mels)
        require_positive(
            num_classes=num_classes, in_channels=in_channels, n_mels=n_mels, frames=frames,
            front_channels=front_channels, front_kernel=front_kernel, mel_pool=mel_pool,
            dilated_channels=dilated_channels, dilated_layers=dilated_layers,
            dilated_kernel=dilated_kernel, dilation=dilation, lstm_hidden=lstm_hidden,
            windows=windows, window_frames=window_frames,
        )  # fmt: skip
        if frames != windows * window_frames:
            raise ValueError(
                f"frames ({frames}) must equal windows ({windows}) x window_frames "
                f"({window_frames})"
            )
        if n_mels // mel_pool < 1:
            raise ValueError(f"n_mels ({n_mels}) is smaller than mel_pool ({mel_pool})")
        self.windows = windows
        self.front = nn.Sequential(
            nn.Conv2d(in_channels, front_channels, front_kernel, padding="same"),
            nn.LeakyReLU(negative_slope, inplace=True),
            nn.Conv2d(front_channels, front_channels, front_kernel, padding="same"),
            nn.LeakyReLU(negative_slope, inplace=True),
            FastDropout(front_dropout),
            nn.MaxPool2d((1, mel_pool)),
        )
        self.dilated = DilatedResidualBlock(
            front_channels,
            [dilated_channels] * dilated_layers,
            kernel_size=dilated_kernel,
            dilation=dilation,
            skip_activation=True,
            negative_slope=negative_slope,
        )
        self.rnn = StatefulWindowLSTM(
            dilated_channels * (n_mels // mel_pool),
            lstm_hidden,
            windows=windows,
            window_frames=window_frames,
        )
        self.window_dim = self.rnn.output_size
        self.attention = CausalWindowAttention(
            self.window_dim, windows=windows, per_window=per_window_attention
        )
        self.classifiers = WindowClassifiers(self.window_dim, num_classes, windows=windows)
        self.register_buffer(
            "log_weights", combine_log_weights(windows, window_combine), persistent=False
        )
        self.embedding_dim = windows * self.window_dim
        # Frames the CNN sees either side of a frame: two front convs + the main dilated path.
        self.context_frames = 2 * (front_kernel // 2) + dilated_layers * dilation * (
            dilated_kernel // 2
        )

    def window_encodings(self, x: Tensor) -> Tensor:
        """Mean-pooled sliding-BiLSTM outputs ``O``: ``(B, C, T, F) -> (B, M, 2 * hidden)``."""
        self.check_input(x)
        h = self.dilated(self.front(channels_last(x)))
        return self.rnn(frames_to_sequence(h))

    def embed(self, x: Tensor) -> Tensor:
        """Causal attention outputs, flattened: ``(B, C, T, F) -> (B, embedding_dim)``."""
        return self.attention(self.window_encodings(x)).flatten(1)

    def window_log_probs(self, z: Tensor) -> Tensor:
        """Per-window log-distributions ``(B, M, num_classes)`` from an embedding."""
        logits = self.classifiers(z.unflatten(1, (self.windows, self.window_dim)))
        return torch.log_softmax(logits, dim=-1)

    def classify(self, z: Tensor) -> Tensor:
        """Log of the ``window_combine``-weighted mixture of the window distributions, stably."""
        log_p = self.window_log_probs(z)
        return torch.logsumexp(log_p + self.log_weights.unsqueeze(-1), dim=1)
