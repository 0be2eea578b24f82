"""Building blocks shared by the four networks.

Shape conventions: images are ``(B, C, T, F)`` (channels, frames, mel bands); sequences are
``(B, T, D)`` (batch first). Every block is shape-agnostic in B and, where stated, in T.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, Literal

import torch
from torch import Tensor, nn

Activation = Literal["relu", "sigmoid", "tanh"]
Step = Literal["act", "norm"]


class NetOptionError(ValueError):
    """A network constructor argument that cannot work; ``key`` names the argument."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def require_positive(**sizes: int | Sequence[Any]) -> None:
    """Raise :class:`NetOptionError` naming the first size that is not a positive integer.

    Sequences (kernel sizes, pools, channel lists) are checked element by element. Without
    this, a zero width fails deep inside torch (``hidden_size must be greater than zero``)
    without naming the option.

    Example:
        >>> require_positive(lstm_hidden=128, pool=(2, 2))
        >>> require_positive(lstm_hidden=0)
        Traceback (most recent call last):
        ...
        ser.models.blocks.NetOptionError: lstm_hidden=0: must be a positive integer
    """
    for key, value in sizes.items():
        values = _flatten(value)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
            shown = list(value) if isinstance(value, Sequence) else value
            raise NetOptionError(key, f"{key}={shown!r}: must be a positive integer")


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [v for item in value for v in _flatten(item)]
    return [value]


def check_input(x: Tensor, in_channels: int, frames: int, n_mels: int) -> None:
    """Raise ``ValueError`` unless ``x`` is ``(B, in_channels, frames, n_mels)``.

    The networks size their per-frame layers from the configured input shape, so a mismatch
    would otherwise surface as an obscure matmul error deep inside the model.
    """
    if x.dim() != 4 or tuple(x.shape[1:]) != (in_channels, frames, n_mels):
        raise ValueError(
            f"expected input (B, {in_channels}, {frames}, {n_mels}), got {tuple(x.shape)}"
        )


def channels_last(x: Tensor) -> Tensor:
    """Store an image batch channels-last (NHWC): the fast convolution layout on CPU and GPU.

    Only the memory layout changes, not the shape or values; the convolutions that follow
    keep the layout, which makes :func:`frames_to_sequence` a free view.
    """
    return x.contiguous(memory_format=torch.channels_last)


def frames_to_sequence(x: Tensor) -> Tensor:
    """Turn a feature map ``(B, C, T, F)`` into a frame sequence ``(B, T, F * C)``.

    Features are ordered (band, channel). That order is a fixed permutation of the features
    fed to the next dense layer, so it changes no maths, and it makes the reshape a free view
    when the map is channels-last (the fast convolution layout on CPU).
    """
    b, c, t, f = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, t, f * c)


class FastDropout(nn.Module):
    """Dropout (inverted, like ``nn.Dropout``) whose keep-mask is ``uniform >= p``.

    Same distribution as ``nn.Dropout`` (each element kept with probability ``1 - p`` and
    scaled by ``1 / (1 - p)``), but drawing uniforms is faster than the ``bernoulli_`` that
    ``nn.Dropout`` uses on CPU, which shows in ADSRNN's step on its full-resolution feature
    maps (``bench/dropout.py``; figures in docs/hardware.md). The uniforms are
    drawn in fp32 so ``p`` is exact under bf16 autocast too.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """Identity in eval mode or for ``p == 0``; any shape."""
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty_like(x, dtype=torch.float32).uniform_().ge_(self.p)
        return x * keep.div_(1.0 - self.p).to(x.dtype)

    def extra_repr(self) -> str:
        """Show ``p`` in the module's repr."""
        return f"p={self.p}"


class ConvBNAct(nn.Sequential):
    """``k x k`` conv (stride 1, 'same' padding, optional dilation) -> BatchNorm -> LeakyReLU.

    The convolution has no bias: BatchNorm's shift makes it redundant.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        dilation: int = 1,
        activation: bool = True,
        negative_slope: float = 0.01,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                padding="same",
                dilation=dilation,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
        ]
        if activation:
            layers.append(nn.LeakyReLU(negative_slope, inplace=True))
        super().__init__(*layers)


class DilatedResidualBlock(nn.Module):
    """Dilated residual block (ADSRNN, ADRNN): ``main(x) + skip(x)``.

    main: one :class:`ConvBNAct` per entry of ``channels`` (dilated, 'same' padding);
    skip: one dilated :class:`ConvBNAct` from ``in_channels`` to ``channels[-1]``, with or
    without its LeakyReLU. Keeps ``T`` and ``F``: ``(B, in_channels, T, F) ->
    (B, channels[-1], T, F)``.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int] = (128, 128, 128),
        *,
        kernel_size: int = 3,
        dilation: int = 2,
        skip_activation: bool = True,
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__()
        if not channels:
            raise ValueError("channels must name at least one main-path layer")
        widths = [in_channels, *channels]
        self.main = nn.Sequential(
            *(
                ConvBNAct(
                    c_in,
                    c_out,
                    kernel_size=kernel_size,
                    dilation=dilation,
                    negative_slope=negative_slope,
                )
                for c_in, c_out in pairwise(widths)
            )
        )
        self.skip = ConvBNAct(
            in_channels,
            channels[-1],
            kernel_size=kernel_size,
            dilation=dilation,
            activation=skip_activation,
            negative_slope=negative_slope,
        )
        self.out_channels = channels[-1]

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, T, F) -> (B, out_channels, T, F)``."""
        return self.main(x) + self.skip(x)


class AttentionPooling(nn.Module):
    """Attention pooling over time: ``a_t = softmax_t(u . act(W h_t + b))``, ``sum_t a_t h_t``.

    Defaults follow SEED.md (the seed's PyTorch baselines): ``act`` = ReLU and attention size
    1. Chen et al.'s TensorFlow code used sigmoid; ``"sigmoid"`` and ``"tanh"`` are options.
    The seed averaged ``a_t h_t`` over ``t`` instead of summing; that constant factor ``1/T``
    is absorbed by the next layer, so the sum (the formula) is used.
    """

    def __init__(
        self, dim: int, *, attention_dim: int = 1, activation: Activation = "relu"
    ) -> None:
        super().__init__()
        activations = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
        if activation not in activations:
            raise ValueError(f"activation must be one of {sorted(activations)}, got {activation!r}")
        self.proj = nn.Linear(dim, attention_dim)
        self.act = activations[activation]()
        self.context = nn.Linear(attention_dim, 1, bias=False)

    def weights(self, h: Tensor) -> Tensor:
        """Attention weights ``(B, T)`` (each row sums to 1) for a sequence ``(B, T, dim)``."""
        return torch.softmax(self.context(self.act(self.proj(h))).squeeze(-1), dim=1)

    def forward(self, h: Tensor) -> Tensor:
        """Pool ``(B, T, dim) -> (B, dim)``."""
        return torch.bmm(self.weights(h).unsqueeze(1), h).squeeze(1)


class Dense(nn.Module):
    """Linear layer followed by LeakyReLU and/or BatchNorm in a stated order.

    ``after`` lists what follows the linear map, in order: ``("act", "norm")`` is
    Linear -> LeakyReLU -> BatchNorm, ``("norm", "act")`` is Linear -> BatchNorm ->
    LeakyReLU, ``("norm",)`` has no activation. The baselines differ exactly in this order
    (SEED.md), so it is explicit rather than implied by a module list. Works on vectors
    ``(B, D)`` and on frame sequences ``(B, T, D)``; for sequences BatchNorm's statistics
    run over batch and time, per feature.

    >>> layer = Dense(6, 4, after=("act", "norm"))
    >>> layer(torch.randn(2, 5, 6)).shape
    torch.Size([2, 5, 4])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        after: Sequence[Step] = ("act", "norm"),
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__()
        steps = tuple(after)
        if any(s not in ("act", "norm") for s in steps) or len(set(steps)) != len(steps):
            raise ValueError(f"after must list 'act' and/or 'norm' at most once each, got {steps}")
        self.steps = steps
        self.linear = nn.Linear(in_features, out_features)
        self.act = nn.LeakyReLU(negative_slope) if "act" in steps else None
        self.norm = nn.BatchNorm1d(out_features) if "norm" in steps else None

    def _normalise(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            return self.norm(x.transpose(1, 2)).transpose(1, 2)
        return self.norm(x)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, [T,] in_features) -> (B, [T,] out_features)``."""
        x = self.linear(x)
        for step in self.steps:
            x = self.act(x) if step == "act" else self._normalise(x)
        return x

    def extra_repr(self) -> str:
        """Show the order of the steps in the module's repr."""
        return f"after={self.steps}"


def lstm_needs_fp32(device_type: str, *, autocast: bool, dtype: torch.dtype) -> bool:
    """Whether an LSTM must leave autocast to run in ``dtype``'s range on ``device_type``.

    PyTorch's autocast wrapper for cuDNN RNNs casts them to float16 whatever the autocast
    dtype (aten/src/ATen/cudnn/AutocastRNN.cpp), and ``bf16-mixed`` scales no loss, so small
    LSTM gradients could flush to zero. The CPU runs bf16 LSTMs in bf16, and ``16-mixed``
    has its loss scaler.

    Example:
        >>> lstm_needs_fp32("cuda", autocast=True, dtype=torch.bfloat16)
        True
        >>> lstm_needs_fp32("cuda", autocast=True, dtype=torch.float16)
        False
        >>> lstm_needs_fp32("cpu", autocast=True, dtype=torch.bfloat16)
        False
    """
    return device_type == "cuda" and autocast and dtype == torch.bfloat16


class LSTM(nn.LSTM):
    """:class:`torch.nn.LSTM` that runs in float32 where autocast would make it float16
    under a bf16 precision (:func:`lstm_needs_fp32`: CUDA's ``bf16-mixed``); the same
    module, parameters and state-dict keys otherwise. Input is a tensor (no PackedSequence)."""

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """:meth:`torch.nn.LSTM.forward`, in float32 where :func:`lstm_needs_fp32`."""
        device = input.device.type
        autocast = torch.is_autocast_enabled(device)
        if lstm_needs_fp32(device, autocast=autocast, dtype=torch.get_autocast_dtype(device)):
            return self.forward_fp32(input, hx)
        return super().forward(input, hx)

    def forward_fp32(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The forward pass with autocast off and float32 input and state."""
        with torch.autocast(input.device.type, enabled=False):
            state = None if hx is None else (hx[0].float(), hx[1].float())
            return super().forward(input.float(), state)


class StatefulWindowLSTM(nn.Module):
    """ADSRNN's sliding (Bi)LSTM: consecutive windows with the state carried between them.

    The ``T = windows * window_frames`` frames are split into consecutive windows. One LSTM
    runs over each window in order; its final ``(h, c)`` (both directions) is the initial
    state of the next window. Each window's outputs are mean-pooled over its frames.

    Consequence, relied on by ADSRNN's causal attention: window ``m``'s output depends on
    windows ``1..m`` only. The backward direction reads window ``m`` from its last frame to
    its first but starts from the state it reached on window ``m - 1``, so it too never
    sees a later window.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 256,
        *,
        windows: int = 10,
        window_frames: int = 30,
        bidirectional: bool = True,
    ) -> None:
        super().__init__()
        self.windows = windows
        self.window_frames = window_frames
        self.lstm = LSTM(input_size, hidden_size, batch_first=True, bidirectional=bidirectional)
        self.output_size = hidden_size * (2 if bidirectional else 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, windows * window_frames, input_size) -> (B, windows, output_size)``."""
        if x.shape[1] != self.windows * self.window_frames:
            raise ValueError(
                f"expected {self.windows} x {self.window_frames} frames, got {x.shape[1]}"
            )
        state: tuple[Tensor, Tensor] | None = None
        pooled = []
        for chunk in x.split(self.window_frames, dim=1):
            out, state = self.lstm(chunk, state)
            pooled.append(out.mean(dim=1))
        return torch.stack(pooled, dim=1)


WindowEncoding = Literal["h_n", "last_output"]
WINDOW_ENCODINGS = ("h_n", "last_output")


class OverlappingWindowLSTM(nn.Module):
    """ASRNN's window encoder: one shared (Bi)LSTM over overlapping windows, run as one batch.

    Windows of ``window`` frames start every ``shift`` frames (``0, shift, 2 * shift, ...``;
    a tail shorter than a window is dropped). All windows of all samples are encoded in a
    single LSTM call. A window's encoding (``encoding``):

    - ``"h_n"``: the final hidden state of each direction (forward: after the window's last
      frame; backward: after its first frame, so it has read the whole window), concatenated;
    - ``"last_output"``: the LSTM's output at the window's last frame, SEED.md's literal
      words: the forward half is the same, the backward half has read that frame only.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 128,
        *,
        window: int = 10,
        shift: int = 5,
        bidirectional: bool = True,
        encoding: WindowEncoding = "h_n",
    ) -> None:
        super().__init__()
        if window < 1 or shift < 1:
            raise ValueError(f"window and shift must be positive, got {window}, {shift}")
        if encoding not in WINDOW_ENCODINGS:
            raise ValueError(f"window_encoding must be one of {WINDOW_ENCODINGS}, got {encoding!r}")
        self.encoding = encoding
        self.window = window
        self.shift = shift
        self.lstm = LSTM(input_size, hidden_size, batch_first=True, bidirectional=bidirectional)
        self.output_size = hidden_size * (2 if bidirectional else 1)

    def num_windows(self, n_frames: int) -> int:
        """How many windows fit in ``n_frames`` frames."""
        return max(0, (n_frames - self.window) // self.shift + 1)

    def window_starts(self, n_frames: int) -> list[int]:
        """First frame of each window for a sequence of ``n_frames`` frames."""
        return [i * self.shift for i in range(self.num_windows(n_frames))]

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, input_size) -> (B, num_windows(T), output_size)``."""
        b, t, d = x.shape
        n = self.num_windows(t)
        if n == 0:
            raise ValueError(f"{t} frames hold no window of {self.window}")
        # unfold: (B, N, D, window) -> one batch of B * N windows, (B * N, window, D).
        windows = x.unfold(1, self.window, self.shift).permute(0, 1, 3, 2).reshape(b * n, -1, d)
        output, (h_n, _) = self.lstm(windows)
        if self.encoding == "last_output":
            return output[:, -1].reshape(b, n, self.output_size)
        # h_n: (directions, B * N, hidden) -> (B, N, directions * hidden).
        return h_n.permute(1, 0, 2).reshape(b, n, self.output_size)


class CausalWindowAttention(nn.Module):
    """ADSRNN's causal time attention over the window sequence ``O`` (``(B, M, dim)``).

    ``S_mj = softmax_j(O_m . (W O_j))`` over ``j <= m`` and ``Output_m = sum_j S_mj O_j``,
    computed for all ``m`` at once as one masked batched product. ``W`` (no bias) is shared
    by all windows, or one per window (``per_window=True``, as the released code had).
    """

    def __init__(self, dim: int = 512, *, windows: int = 10, per_window: bool = False) -> None:
        super().__init__()
        self.per_window = per_window
        self.weight = nn.Parameter(torch.empty(windows if per_window else 1, dim, dim))
        bound = 1.0 / math.sqrt(dim)
        nn.init.uniform_(self.weight, -bound, bound)
        self.register_buffer(
            "mask", torch.ones(windows, windows, dtype=torch.bool).tril(), persistent=False
        )

    def scores(self, o: Tensor) -> Tensor:
        """Causal attention weights ``(B, M, M)``; row ``m`` is zero after column ``m``."""
        # query_m = O_m^T W_m, so query_m . O_j = O_m . (W_m O_j).
        if self.per_window:
            query = torch.einsum("bmd,mde->bme", o, self.weight)
        else:
            query = o @ self.weight[0]
        logits = (query @ o.transpose(1, 2)).masked_fill(~self.mask, float("-inf"))
        return torch.softmax(logits, dim=-1)

    def forward(self, o: Tensor) -> Tensor:
        """``(B, M, dim) -> (B, M, dim)``; output ``m`` depends on inputs ``1..m`` only."""
        return self.scores(o) @ o


class WindowClassifiers(nn.Module):
    """One linear classifier per window, stored stacked and applied in one einsum.

    ``(B, M, dim) -> (B, M, num_classes)`` logits; window ``m`` uses weight ``m``.
    """

    def __init__(self, dim: int, num_classes: int, *, windows: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(windows, dim, num_classes))
        self.bias = nn.Parameter(torch.empty(windows, num_classes))
        bound = 1.0 / math.sqrt(dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, z: Tensor) -> Tensor:
        """``(B, M, dim) -> (B, M, num_classes)`` logits."""
        return torch.einsum("bmd,mdc->bmc", z, self.weight) + self.bias
