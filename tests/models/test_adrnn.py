"""Tests of ADRNN (the seed's reproduction of Meng et al.)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ser.models import ADRNN
from ser.models.blocks import DilatedResidualBlock

SMALL = {
    "n_mels": 8,
    "frames": 20,
    "conv_channels": 6,
    "dilated_channels": (6, 6, 8),
    "linear_dim": 16,
    "lstm_hidden": 8,
    "fc_dim": 8,
}
LABELS = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])


def _model(**overrides: object) -> ADRNN:
    torch.manual_seed(0)
    return ADRNN(4, **{**SMALL, **overrides})


def _x(batch: int = 8) -> torch.Tensor:
    return torch.randn(batch, 3, 20, 8, generator=torch.Generator().manual_seed(1))


def test_contract(check_contract) -> None:
    model = _model()
    assert model.embedding_dim == 8
    check_contract(model, _x(3), 4)


def test_default_configuration() -> None:
    model = ADRNN()
    block = next(m for m in model.cnn if isinstance(m, DilatedResidualBlock))
    main = [m for m in block.main.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in main] == [(128, 128), (128, 128), (128, 256)]
    assert all(c.dilation == (2, 2) for c in main)
    assert (block.skip[0].in_channels, block.skip[0].out_channels) == (128, 256)
    assert not any(isinstance(m, nn.LeakyReLU) for m in block.skip)  # skip: conv -> BN
    assert model.linear[0].in_features == 256 * 10  # (2, 4) pool: 40 mel bands -> 10
    assert model.lstm.hidden_size == 128 and model.lstm.bidirectional
    assert model.embedding_dim == 64
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 300, 40)).shape == (1, 4)


def test_embedding_is_the_center_loss_feature() -> None:
    """embed is the 64-unit (here 8) FC + BN + LeakyReLU output that feeds the classifier."""
    model = _model().eval()
    x = _x(3)
    with torch.no_grad():
        z = model.embed(x)
        torch.testing.assert_close(model.classifier(z).log_softmax(-1), model(x))
    assert z.shape == (3, model.classifier.in_features)


def test_gradients_reach_every_parameter(check_gradients) -> None:
    check_gradients(_model(), _x(4), LABELS[:4])


def test_fits_a_tiny_batch(fit) -> None:
    assert fit(_model(), _x(), LABELS, 40, 1e-2) < 0.1


def test_runs_under_bf16_autocast(check_bf16_autocast) -> None:
    check_bf16_autocast(_model(), _x(4), LABELS[:4])


def test_prediction_does_not_depend_on_the_rest_of_the_batch() -> None:
    model = _model().eval()
    x = _x(5)
    with torch.no_grad():
        torch.testing.assert_close(model(x[2:3]), model(x)[2:3])


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="pool"):
        ADRNN(n_mels=3)
    with pytest.raises(ValueError, match=r"\(B, 3, 20, 8\)"):
        _model()(torch.randn(1, 3, 21, 8))


def test_config_lists_the_defaults(check_config) -> None:
    check_config("adrnn", ADRNN)
