"""Tests of ADRNN (the seed's reproduction of Meng et al.)."""

from __future__ import annotations

import pytest
import torch
from layout import seed_input, trace
from small_nets import small_input, small_net
from torch import nn

from ser.models import ADRNN
from ser.models.blocks import DilatedResidualBlock


def test_tensor_layout_is_seed_md() -> None:
    """SEED.md at the default widths: 3x3 first conv, one pool of time / 4 and mel / 2,
    75 frames of 256 maps x 20 bands = 5120 into the 768-unit layer, whose BatchNorm comes
    last, and 75 frames into the BiLSTM."""
    layout = trace(ADRNN(), seed_input(2))
    assert layout.first_conv_kernel == (3, 3)
    assert layout.pools == [((2, 128, 300, 40), (2, 128, 75, 20))]
    assert layout.linear_in == (2, 75, 5120)
    assert layout.linear_out == (2, 75, 768)
    torch.testing.assert_close(layout.linear_out_mean, torch.zeros(768), atol=1e-4, rtol=0)
    assert layout.lstm_in == [(2, 75, 768)]
    model = ADRNN()
    assert model.linear.steps == ("act", "norm") and model.head.steps == ("act", "norm")


def test_default_configuration() -> None:
    model = ADRNN()
    block = next(m for m in model.cnn if isinstance(m, DilatedResidualBlock))
    main = [m for m in block.main.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in main] == [(128, 128), (128, 128), (128, 256)]
    assert all(c.dilation == (2, 2) for c in main)
    assert (block.skip[0].in_channels, block.skip[0].out_channels) == (128, 256)
    assert not any(isinstance(m, nn.LeakyReLU) for m in block.skip)  # skip: conv -> BN
    assert model.lstm.hidden_size == 128 and model.lstm.bidirectional
    assert model.embedding_dim == 64
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 300, 40)).shape == (1, 4)


def test_embedding_is_the_center_loss_feature() -> None:
    """embed is the output of the 64-unit (here 8) FC + LeakyReLU + BN block, which is what
    the classifier reads in a forward pass (read by hooks, not through embed/classify)."""
    model = small_net("adrnn").eval()
    x = small_input("adrnn", 3)
    seen = {}
    model.head.register_forward_hook(lambda m, i, o: seen.setdefault("head", o))
    model.classifier.register_forward_hook(lambda m, i, o: seen.setdefault("classifier", i[0]))
    with torch.no_grad():
        model(x)
        z = model.embed(x)
    torch.testing.assert_close(seen["classifier"], seen["head"])
    torch.testing.assert_close(z, seen["head"])
    assert z.shape == (3, 8) == (3, model.embedding_dim)


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="pool"):
        ADRNN(n_mels=1)
    with pytest.raises(ValueError, match=r"\(B, 3, 20, 8\)"):
        small_net("adrnn")(torch.randn(1, 3, 21, 8))
