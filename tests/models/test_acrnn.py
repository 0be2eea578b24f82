"""Tests of ACRNN (2-layer seed reproduction and the paper's 6-layer variant)."""

from __future__ import annotations

import pytest
import torch
from small_nets import small_net
from torch import nn

from ser.models import ACRNN


def test_default_configuration() -> None:
    model = ACRNN()
    convs = [m for m in model.cnn if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [128, 256]
    assert all(c.kernel_size == (3, 5) for c in convs)
    assert model.linear.in_features == 256 * 20  # 2x2 pool: 40 mel bands -> 20
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
