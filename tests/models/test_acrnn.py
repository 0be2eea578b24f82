"""Tests of ACRNN (2-layer seed reproduction and the paper's 6-layer variant)."""

from __future__ import annotations

import pytest
import torch
from layout import seed_input, trace
from small_nets import small_net
from torch import nn

from ser.models import ACRNN


def test_tensor_layout_is_seed_md() -> None:
    """SEED.md at the default widths: kernels (time 5, mel 3), one 2x2 pool right after the
    first conv, 150 frames of 256 maps x 20 bands = 5120 into the 768-unit layer, whose
    BatchNorm comes last, and 150 frames into the BiLSTM."""
    layout = trace(ACRNN(), seed_input(2))
    assert layout.first_conv_kernel == (5, 3)
    assert layout.first_conv_out == (2, 128, 300, 40)
    assert layout.pools == [((2, 128, 300, 40), (2, 128, 150, 20))]
    assert layout.linear_in == (2, 150, 5120)
    assert layout.linear_out == (2, 150, 768)
    torch.testing.assert_close(layout.linear_out_mean, torch.zeros(768), atol=1e-4, rtol=0)
    assert layout.lstm_in == [(2, 150, 768)]
    model = ACRNN()
    assert model.linear.steps == ("act", "norm") and model.head[1].steps == ("act", "norm")


def test_default_configuration() -> None:
    model = ACRNN()
    convs = [m for m in model.cnn if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [128, 256]
    assert all(c.kernel_size == (5, 3) for c in convs)
    assert model.lstm.hidden_size == 128 and model.lstm.bidirectional
    assert model.embedding_dim == 64
    paper = ACRNN(conv_layers=6)
    assert [m.out_channels for m in paper.cnn if isinstance(m, nn.Conv2d)] == [128] + [256] * 5
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 300, 40)).shape == (1, 4)


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="conv_layers"):
        ACRNN(conv_layers=1)
    with pytest.raises(ValueError, match="pool"):
        ACRNN(n_mels=1)
    with pytest.raises(ValueError, match=r"\(B, 3, 20, 8\)"):
        small_net("acrnn")(torch.randn(1, 3, 20, 9))
