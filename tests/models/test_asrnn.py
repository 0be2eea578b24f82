"""Tests of ASRNN: the sliding windows' count and positions."""

from __future__ import annotations

import pytest
import torch
from layout import seed_input, trace
from small_nets import small_input, small_net

from ser.models import ASRNN


def test_tensor_layout_is_seed_md() -> None:
    """SEED.md at the default widths: 3x3 first conv, a 2x2 pool in block 1 only, 150 frames
    of 128 maps x 20 bands = 2560 into the 768-unit layer (BatchNorm last), 29 windows of
    10 frames (shift 5) into the window BiLSTM, and the 29 window encodings (2 x 128) into
    the sequence LSTM."""
    layout = trace(ASRNN(), seed_input(2))
    assert layout.first_conv_kernel == (3, 3)
    assert layout.first_conv_out == (2, 64, 300, 40)
    assert layout.pools == [((2, 64, 300, 40), (2, 64, 150, 20))]
    assert layout.linear_in == (2, 150, 2560)
    assert layout.linear_out == (2, 150, 768)
    torch.testing.assert_close(layout.linear_out_mean, torch.zeros(768), atol=1e-4, rtol=0)
    assert layout.lstm_in == [(2 * 29, 10, 768), (2, 29, 256)]
    model = ASRNN()
    assert model.linear.steps == ("norm",) and model.head.steps == ("act", "norm")


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
