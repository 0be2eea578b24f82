"""Tests of ASRNN: the sliding windows' count and positions."""

from __future__ import annotations

import pytest
import torch
from small_nets import small_input, small_net

from ser.models import ASRNN


def test_windows_advance_by_the_shift() -> None:
    """Default: 300 frames -> 150 after the CNN; 10-frame windows every 5 frames."""
    model = ASRNN()
    assert model.cnn_frames == 150
    assert model.window_starts() == list(range(0, 141, 5))
    assert len(model.window_starts()) == 29  # not 141, as advancing by 1 frame would give


def test_model_encodes_one_window_per_start() -> None:
    model = small_net("asrnn").eval()
    assert model.window_starts() == [0, 2, 4, 6, 8, 10, 12, 14, 16]
    seen = []
    model.window_encoder.register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    with torch.no_grad():
        model(small_input("asrnn", 3))
    assert seen == [torch.Size([3, 9, 12])]


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="too small"):
        ASRNN(frames=18)
    with pytest.raises(ValueError, match="one"):
        ASRNN(pools=((2, 2), (1, 2)))
    with pytest.raises(ValueError, match=r"\(B, 3, 40, 16\)"):
        small_net("asrnn")(torch.randn(1, 3, 40, 8))
