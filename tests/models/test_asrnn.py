"""Tests of ASRNN: the contract and the sliding windows' count and positions."""

from __future__ import annotations

import pytest
import torch

from ser.models import ASRNN

# CNN output: 20 frames x 2 bands; windows of 4 every 2 frames -> 9 windows.
SMALL = {
    "n_mels": 16,
    "frames": 40,
    "conv_channels": (4, 6, 6),
    "linear_dim": 16,
    "window": 4,
    "shift": 2,
    "window_hidden": 6,
    "sequence_hidden": 8,
    "fc_dim": 8,
}
LABELS = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])


def _model(**overrides: object) -> ASRNN:
    torch.manual_seed(0)
    return ASRNN(4, **{**SMALL, **overrides})


def _x(batch: int = 8) -> torch.Tensor:
    return torch.randn(batch, 3, 40, 16, generator=torch.Generator().manual_seed(1))


def test_contract(check_contract) -> None:
    model = _model()
    assert model.embedding_dim == 8
    check_contract(model, _x(3), 4)


def test_windows_advance_by_the_shift() -> None:
    """Default: 300 frames -> 150 after the CNN; 10-frame windows every 5 frames."""
    model = ASRNN()
    assert model.cnn_frames == 150
    assert model.window_starts() == list(range(0, 141, 5))
    assert len(model.window_starts()) == 29  # not 141, as advancing by 1 frame would give


def test_model_encodes_one_window_per_start() -> None:
    model = _model().eval()
    assert model.window_starts() == [0, 2, 4, 6, 8, 10, 12, 14, 16]
    seen = []
    model.window_encoder.register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    with torch.no_grad():
        model(_x(3))
    assert seen == [torch.Size([3, 9, 12])]


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
    with pytest.raises(ValueError, match="too small"):
        ASRNN(frames=18)
    with pytest.raises(ValueError, match="one"):
        ASRNN(pools=((2, 2), (1, 2)))
    with pytest.raises(ValueError, match=r"\(B, 3, 40, 16\)"):
        _model()(torch.randn(1, 3, 40, 8))


def test_config_lists_the_defaults(check_config) -> None:
    check_config("asrnn", ASRNN)
