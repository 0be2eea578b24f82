"""Narrow versions of the four networks and inputs that fit them, for the model tests.

The properties under test (shapes, gradients, causality, ...) do not depend on width, and
narrow networks keep the tests fast.
"""

from __future__ import annotations

import torch
from torch import nn

from ser.models import NETWORKS

#: name (a key of ``NETWORKS``) -> (narrow keyword arguments, input (frames, n_mels))
SMALL: dict[str, tuple[dict, tuple[int, int]]] = {
    "acrnn": (
        {
            "n_mels": 8,
            "frames": 20,
            "first_channels": 6,
            "channels": 8,
            "linear_dim": 16,
            "lstm_hidden": 8,
            "fc_dim": 8,
        },
        (20, 8),
    ),
    "adrnn": (
        {
            "n_mels": 8,
            "frames": 20,
            "conv_channels": 6,
            "dilated_channels": (6, 6, 8),
            "linear_dim": 16,
            "lstm_hidden": 8,
            "fc_dim": 8,
        },
        (20, 8),
    ),
    # CNN output: 20 frames x 8 bands; windows of 4 every 2 frames -> 9 windows.
    "asrnn": (
        {
            "n_mels": 16,
            "frames": 40,
            "conv_channels": (4, 6, 6),
            "linear_dim": 16,
            "window": 4,
            "shift": 2,
            "window_hidden": 6,
            "sequence_hidden": 8,
            "fc_dim": 8,
        },
        (40, 16),
    ),
    # 4 windows of 10 frames, 8 mel bands.
    "adsrnn": (
        {
            "n_mels": 8,
            "frames": 40,
            "windows": 4,
            "window_frames": 10,
            "front_channels": 6,
            "dilated_channels": 6,
            "lstm_hidden": 8,
        },
        (40, 8),
    ),
}
LABELS = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])


def small_net(name: str, **overrides: object) -> nn.Module:
    """The narrow 4-class ``name`` network (seeded, so every call builds the same weights)."""
    kwargs, _ = SMALL[name]
    torch.manual_seed(0)
    return NETWORKS[name](4, **{**kwargs, **overrides})


def small_input(name: str, batch: int = 8) -> torch.Tensor:
    """A fixed random batch ``(batch, 3, frames, n_mels)`` for the narrow ``name`` network."""
    frames, n_mels = SMALL[name][1]
    return torch.randn(batch, 3, frames, n_mels, generator=torch.Generator().manual_seed(1))
