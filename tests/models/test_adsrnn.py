"""Tests of ADSRNN: causality, state carry, combination, batch independence."""

from __future__ import annotations

import pytest
import torch
from small_nets import small_input, small_net

from ser.models import ADSRNN
from ser.models.adsrnn import combine_log_weights


def test_default_configuration() -> None:
    model = ADSRNN().eval()
    assert model.rnn.lstm.input_size == 128 * 20
    assert model.rnn.lstm.hidden_size == 256
    assert model.embedding_dim == 10 * 512
    assert model.context_frames == 8
    assert ADSRNN(dilated_channels=64).rnn.lstm.input_size == 64 * 20
    with torch.no_grad():
        assert model(torch.randn(1, 3, 300, 40)).shape == (1, 4)


def test_combine_weights_hand_computed() -> None:
    torch.testing.assert_close(combine_log_weights(3, "sum").exp(), torch.full((3,), 1 / 3))
    # p = p1; p = (p + p2) / 2; p = (p + p3) / 2  ->  p1 / 4 + p2 / 4 + p3 / 2.
    torch.testing.assert_close(
        combine_log_weights(3, "recursive").exp(), torch.tensor([0.25, 0.25, 0.5])
    )
    with pytest.raises(ValueError, match="window_combine"):
        combine_log_weights(3, "max")


@pytest.mark.parametrize("combine", ["sum", "recursive"])
def test_classify_combines_window_distributions(combine: str) -> None:
    """exp(classify) is the thesis' mean of the window softmaxes, or the released code's
    running average, computed here the naive way from the same per-window distributions."""
    model = small_net("adsrnn", window_combine=combine).eval()
    with torch.no_grad():
        z = model.embed(small_input("adsrnn", 3))
        p = model.window_log_probs(z).exp()
        combined = model.classify(z).exp()
    if combine == "sum":
        expected = p.sum(1) / 4
    else:
        expected = p[:, 0]
        for m in range(1, 4):
            expected = (expected + p[:, m]) / 2
    torch.testing.assert_close(combined, expected)


def test_window_outputs_ignore_later_windows() -> None:
    """Per-window distributions of windows 1-2 do not move when frames of windows 3-4 beyond
    the CNN's context change; a frame within the context does reach window 2."""
    model = small_net("adsrnn").eval()
    x = small_input("adsrnn", 2)
    edge = 20 + model.context_frames  # first frame window 2 (frames 10-19) cannot see
    far, near = x.clone(), x.clone()
    far[:, :, edge:] = torch.randn(2, 3, 40 - edge, 8)
    near[:, :, edge - 1] += 3.0
    with torch.no_grad():
        base = model.window_log_probs(model.embed(x))
        moved_far = model.window_log_probs(model.embed(far))
        moved_near = model.window_log_probs(model.embed(near))
    torch.testing.assert_close(moved_far[:, :2], base[:, :2], rtol=0, atol=1e-6)
    assert (moved_far[:, 2:] - base[:, 2:]).abs().amax() > 1e-4
    assert (moved_near[:, 1] - base[:, 1]).abs().amax() > 1e-6


def test_state_carries_early_windows_into_later_encodings() -> None:
    """Frames 0-1 lie outside the CNN context of window 2 (frames 10-19, context from frame
    2), so only the LSTM state carried out of window 1 can change window 2's encoding
    (attention is not involved in encodings). Both directions' features must move."""
    model = small_net("adsrnn").eval()
    x = small_input("adsrnn", 2)
    bumped = x.clone()
    bumped[:, :, :2] += 3.0
    assert 10 - model.context_frames > 1
    with torch.no_grad():
        delta = (model.window_encodings(x) - model.window_encodings(bumped))[:, 1].abs()
    assert delta[:, :8].amax() > 1e-4, "forward direction state not carried"
    assert delta[:, 8:].amax() > 1e-4, "backward direction state not carried"


def test_prediction_does_not_depend_on_the_rest_of_the_batch() -> None:
    """The released code ran the LSTM across the batch; a sample's output must be its own."""
    model = small_net("adsrnn").eval()
    x = small_input("adsrnn", 6)
    other = torch.cat([x[:3], torch.randn(3, 3, 40, 8)])
    with torch.no_grad():
        full = model(x)
        torch.testing.assert_close(model(x[4:5]), full[4:5])
        torch.testing.assert_close(model(other)[:3], full[:3])


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="windows"):
        ADSRNN(frames=290)
    with pytest.raises(ValueError, match=r"\(B, 3, 40, 8\)"):
        small_net("adsrnn")(torch.randn(1, 3, 30, 8))
