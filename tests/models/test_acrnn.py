"""Tests of ACRNN (2-layer seed reproduction and the paper's 6-layer variant)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ser.models import ACRNN

SMALL = {
    "n_mels": 8,
    "frames": 20,
    "first_channels": 6,
    "channels": 8,
    "linear_dim": 16,
    "lstm_hidden": 8,
    "fc_dim": 8,
}
LABELS = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])


def _model(**overrides: object) -> ACRNN:
    torch.manual_seed(0)
    return ACRNN(4, **{**SMALL, **overrides})


def _x(batch: int = 8) -> torch.Tensor:
    return torch.randn(batch, 3, 20, 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("conv_layers", [2, 6])
def test_contract(check_contract, conv_layers: int) -> None:
    model = _model(conv_layers=conv_layers)
    assert model.embedding_dim == 8
    check_contract(model, _x(3), 4)


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
    with pytest.raises(ValueError, match="conv_layers"):
        ACRNN(conv_layers=1)
    with pytest.raises(ValueError, match="pool"):
        ACRNN(n_mels=1)
    with pytest.raises(ValueError, match=r"\(B, 3, 20, 8\)"):
        _model()(torch.randn(1, 3, 20, 9))


def test_config_lists_the_defaults(check_config) -> None:
    check_config("acrnn", ACRNN)
