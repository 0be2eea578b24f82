"""Tests of the shared building blocks in ser.models.blocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ser.models.blocks import (
    LSTM,
    AttentionPooling,
    CausalWindowAttention,
    Dense,
    DilatedResidualBlock,
    FastDropout,
    OverlappingWindowLSTM,
    StatefulWindowLSTM,
    WindowClassifiers,
    check_input,
    frames_to_sequence,
)


def _changed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Boolean map of the (T, F) positions where any channel of ``a`` and ``b`` differs."""
    return (a - b).abs().amax(dim=(0, 1)) > 1e-6


# --- dilated residual block ---------------------------------------------------------------


def test_dilated_block_shape_and_widths() -> None:
    block = DilatedResidualBlock(4, (5, 5, 6))
    y = block(torch.randn(2, 4, 12, 10))
    assert y.shape == (2, 6, 12, 10)
    assert block.out_channels == 6
    assert [m.out_channels for m in block.modules() if isinstance(m, nn.Conv2d)] == [5, 5, 6, 6]


@pytest.mark.parametrize("where", [(10, 10), (0, 0)])
def test_dilated_block_receptive_field_and_same_padding(where: tuple[int, int]) -> None:
    """An impulse reaches exactly the even offsets within +-6 (3 convs, kernel 3, dilation 2),
    clipped at the border (not shifted: 'same' padding keeps positions aligned)."""
    torch.manual_seed(0)
    block = DilatedResidualBlock(3, (4, 4, 4)).eval()
    x = torch.randn(1, 3, 21, 21)
    bumped = x.clone()
    bumped[0, :, where[0], where[1]] += 5.0
    with torch.no_grad():
        changed = _changed(block(x), block(bumped))
    offsets = torch.arange(21)
    rows = ((offsets - where[0]).abs() <= 6) & ((offsets - where[0]) % 2 == 0)
    cols = ((offsets - where[1]).abs() <= 6) & ((offsets - where[1]) % 2 == 0)
    assert torch.equal(changed, rows[:, None] & cols[None, :])


def test_dilated_block_output_is_main_plus_skip() -> None:
    block = DilatedResidualBlock(3, (4, 5), skip_activation=False).eval()
    x = torch.randn(2, 3, 8, 6)
    with torch.no_grad():
        torch.testing.assert_close(block(x), block.main(x) + block.skip(x))
    # Without its activation the skip path is affine: negative outputs stay unclipped.
    assert not any(isinstance(m, nn.LeakyReLU) for m in block.skip)
    assert any(isinstance(m, nn.LeakyReLU) for m in DilatedResidualBlock(3, (4,)).skip)


# --- attention pooling --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attention_dim", "activation"), [(1, "relu"), (1, "sigmoid"), (7, "tanh")]
)
def test_attention_pooling_weights_sum_to_one(attention_dim: int, activation: str) -> None:
    torch.manual_seed(0)
    pool = AttentionPooling(6, attention_dim=attention_dim, activation=activation)
    h = torch.randn(3, 9, 6)
    w = pool.weights(h)
    assert w.shape == (3, 9)
    assert (w > 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(3))
    torch.testing.assert_close(pool(h), (w.unsqueeze(-1) * h).sum(1))


def test_attention_pooling_rejects_unknown_activation() -> None:
    with pytest.raises(ValueError, match="activation"):
        AttentionPooling(4, activation="gelu")


def test_attention_pooling_of_identical_frames_is_that_frame() -> None:
    pool = AttentionPooling(5, attention_dim=3, activation="tanh")
    frame = torch.randn(2, 1, 5)
    torch.testing.assert_close(pool(frame.expand(2, 11, 5)), frame.squeeze(1))


def test_attention_pooling_prefers_high_scoring_frames() -> None:
    """Weights follow the scores: with u, W, b set by hand, the larger frame wins."""
    pool = AttentionPooling(2, attention_dim=1, activation="sigmoid")
    with torch.no_grad():
        pool.proj.weight.copy_(torch.tensor([[1.0, 0.0]]))
        pool.proj.bias.zero_()
        pool.context.weight.fill_(10.0)
    h = torch.tensor([[[-3.0, 1.0], [3.0, 2.0]]])
    w = pool.weights(h)
    expected = torch.softmax(10.0 * torch.sigmoid(torch.tensor([-3.0, 3.0])), dim=0)
    torch.testing.assert_close(w[0], expected)


def test_attention_pooling_default_is_seed_relu() -> None:
    """SEED.md's default: ReLU scores, so frames whose projection is negative all score 0."""
    pool = AttentionPooling(2)
    with torch.no_grad():
        pool.proj.weight.copy_(torch.tensor([[1.0, 0.0]]))
        pool.proj.bias.zero_()
        pool.context.weight.fill_(2.0)
    h = torch.tensor([[[-3.0, 1.0], [-1.0, 5.0], [0.5, 2.0]]])
    expected = torch.softmax(torch.tensor([0.0, 0.0, 1.0]), dim=0)
    torch.testing.assert_close(pool.weights(h)[0], expected)


# --- dense layer with ordered activation / BatchNorm ----------------------------------------


@pytest.mark.parametrize("after", [("act", "norm"), ("norm", "act"), ("norm",), ("act",), ()])
def test_dense_applies_its_steps_in_order(after: tuple[str, ...]) -> None:
    """Training-mode output equals the functional composition in the stated order, on
    vectors and on frame sequences (BatchNorm over batch and time, per feature)."""
    torch.manual_seed(0)
    layer = Dense(5, 4, after=after, negative_slope=0.1).train()
    for x in (torch.randn(6, 5), torch.randn(3, 7, 5)):
        expected = x @ layer.linear.weight.T + layer.linear.bias
        for step in after:
            if step == "act":
                expected = nn.functional.leaky_relu(expected, 0.1)
            else:
                flat = expected.reshape(-1, 4)
                mean, var = flat.mean(0), flat.var(0, unbiased=False)
                expected = (expected - mean) / torch.sqrt(var + 1e-5)
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


def test_dense_rejects_unknown_steps() -> None:
    with pytest.raises(ValueError, match="after"):
        Dense(3, 2, after=("act", "dropout"))
    with pytest.raises(ValueError, match="after"):
        Dense(3, 2, after=("norm", "norm"))


# --- state-carrying sliding LSTM (ADSRNN) -------------------------------------------------


def test_lstm_in_fp32_is_nn_lstm_in_fp32_under_a_bf16_autocast() -> None:
    """The path CUDA's bf16-mixed takes (cuDNN would cast to fp16), run on the CPU."""
    torch.manual_seed(0)
    lstm = LSTM(3, 4, batch_first=True, bidirectional=True)
    reference = nn.LSTM(3, 4, batch_first=True, bidirectional=True)
    reference.load_state_dict(lstm.state_dict())  # strict: the same keys and shapes
    x, state = torch.randn(2, 6, 3), (torch.randn(2, 2, 4), torch.randn(2, 2, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, (h, c) = lstm.forward_fp32(x.bfloat16(), tuple(t.bfloat16() for t in state))
        autocast_out, _ = lstm(x)  # not CUDA: the autocast's own bf16 LSTM
    assert (out.dtype, h.dtype, autocast_out.dtype) == (torch.float32,) * 2 + (torch.bfloat16,)
    expected, (h_ref, c_ref) = reference(
        x.bfloat16().float(), tuple(t.bfloat16().float() for t in state)
    )
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close((h, c), (h_ref, c_ref))
    out.sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in lstm.parameters())


def test_lstm_asks_about_its_device_s_autocast_and_takes_the_fp32_path_when_told(monkeypatch):
    asked = []

    def needs_fp32(device_type, *, autocast, dtype):
        asked.append((device_type, autocast, dtype))
        return True  # as lstm_needs_fp32 answers for CUDA under bf16

    monkeypatch.setattr("ser.models.blocks.lstm_needs_fp32", needs_fp32)
    lstm = LSTM(3, 4, batch_first=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = lstm(torch.randn(2, 6, 3))
    assert asked == [("cpu", True, torch.bfloat16)]
    assert out.dtype == torch.float32


def _stateful() -> StatefulWindowLSTM:
    torch.manual_seed(0)
    return StatefulWindowLSTM(3, 4, windows=3, window_frames=5)


def test_stateful_lstm_matches_explicit_state_passing() -> None:
    rnn = _stateful()
    x = torch.randn(2, 15, 3)
    out = rnn(x)
    assert out.shape == (2, 3, 8)
    state = None
    for m in range(3):
        o, state = rnn.lstm(x[:, 5 * m : 5 * (m + 1)], state)
        torch.testing.assert_close(out[:, m], o.mean(1))


def test_stateful_lstm_carries_state_forward_in_both_directions() -> None:
    """Changing window 1 changes window 2's output in both directions' features (the
    carried (h, c) includes the backward direction's), and window 2 differs from a fresh
    start on its own frames."""
    rnn = _stateful()
    x = torch.randn(2, 15, 3)
    bumped = x.clone()
    bumped[:, :5] += 1.0
    with torch.no_grad():
        a, b = rnn(x), rnn(bumped)
        fresh, _ = rnn.lstm(x[:, 5:10])
    delta = (a[:, 1] - b[:, 1]).abs()
    assert delta[:, :4].amax() > 1e-4, "forward direction did not receive window 1's state"
    assert delta[:, 4:].amax() > 1e-4, "backward direction did not receive window 1's state"
    assert (a[:, 1] - fresh.mean(1)).abs().amax() > 1e-4


def test_stateful_lstm_window_never_sees_later_windows() -> None:
    rnn = _stateful()
    x = torch.randn(2, 15, 3)
    bumped = x.clone()
    bumped[:, 10:] += 1.0
    with torch.no_grad():
        a, b = rnn(x), rnn(bumped)
    torch.testing.assert_close(a[:, :2], b[:, :2], rtol=0, atol=0)
    assert (a[:, 2] - b[:, 2]).abs().amax() > 1e-4


def test_stateful_lstm_recurrence_is_per_sample() -> None:
    """The released code ran the recurrence across the batch; here samples are independent."""
    rnn = _stateful()
    x = torch.randn(4, 15, 3)
    with torch.no_grad():
        torch.testing.assert_close(rnn(x)[2:3], rnn(x[2:3]))


def test_stateful_lstm_rejects_wrong_length() -> None:
    with pytest.raises(ValueError, match="3 x 5 frames"):
        _stateful()(torch.randn(1, 14, 3))


# --- overlapping-window LSTM (ASRNN) ------------------------------------------------------


def test_overlapping_windows_advance_by_shift() -> None:
    enc = OverlappingWindowLSTM(3, 4, window=10, shift=5)
    assert enc.window_starts(30) == [0, 5, 10, 15, 20]
    assert enc.window_starts(34) == [0, 5, 10, 15, 20]  # the 4-frame tail holds no window
    assert enc.window_starts(35) == [0, 5, 10, 15, 20, 25]
    assert enc.window_starts(9) == []
    assert enc.num_windows(150) == 29


def test_overlapping_window_encodings_are_the_windows_encoded_alone() -> None:
    torch.manual_seed(0)
    enc = OverlappingWindowLSTM(3, 4, window=6, shift=4)
    x = torch.randn(2, 20, 3)
    out = enc(x)
    starts = enc.window_starts(20)
    assert starts == [0, 4, 8, 12]
    assert out.shape == (2, 4, 8)
    for i, s in enumerate(starts):
        _, (h_n, _) = enc.lstm(x[:, s : s + 6])
        torch.testing.assert_close(out[:, i], torch.cat([h_n[0], h_n[1]], dim=-1))


def test_last_output_encoding_is_the_output_at_each_window_s_last_frame() -> None:
    torch.manual_seed(0)
    h_n = OverlappingWindowLSTM(3, 4, window=6, shift=4)
    last = OverlappingWindowLSTM(3, 4, window=6, shift=4, encoding="last_output")
    last.load_state_dict(h_n.state_dict())
    x = torch.randn(2, 20, 3)
    for i, s in enumerate(h_n.window_starts(20)):
        output, _ = h_n.lstm(x[:, s : s + 6])
        torch.testing.assert_close(last(x)[:, i], output[:, -1])
    # the forward halves agree; the backward half of last_output has read one frame only
    torch.testing.assert_close(last(x)[..., :4], h_n(x)[..., :4])
    assert not torch.allclose(last(x)[..., 4:], h_n(x)[..., 4:])
    with pytest.raises(ValueError, match="window_encoding"):
        OverlappingWindowLSTM(3, 4, encoding="mean")


def test_overlapping_windows_see_only_their_frames() -> None:
    torch.manual_seed(0)
    enc = OverlappingWindowLSTM(3, 4, window=10, shift=5)
    x = torch.randn(1, 30, 3)
    bumped = x.clone()
    bumped[:, 12] += 1.0
    with torch.no_grad():
        moved = (enc(x) - enc(bumped)).abs().amax(-1)[0] > 1e-6
    assert moved.tolist() == [False, True, True, False, False]  # windows [5, 15), [10, 20)


def test_overlapping_windows_reject_too_short_input() -> None:
    with pytest.raises(ValueError, match="no window"):
        OverlappingWindowLSTM(3, 4, window=10, shift=5)(torch.randn(1, 9, 3))


# --- causal window attention --------------------------------------------------------------


@pytest.mark.parametrize("per_window", [False, True])
def test_causal_attention_matches_the_formula(per_window: bool) -> None:
    """S_mj = softmax_j<=m(O_m . (W_m O_j)), Output_m = sum_j S_mj O_j, computed naively."""
    torch.manual_seed(0)
    att = CausalWindowAttention(6, windows=4, per_window=per_window)
    o = torch.randn(2, 4, 6)
    out = att(o)
    assert att.weight.shape == ((4 if per_window else 1), 6, 6)
    for b in range(2):
        for m in range(4):
            w = att.weight[m if per_window else 0]
            scores = torch.stack([o[b, m] @ (w @ o[b, j]) for j in range(m + 1)])
            expected = torch.softmax(scores, 0) @ o[b, : m + 1]
            torch.testing.assert_close(out[b, m], expected)
    torch.testing.assert_close(out[:, 0], o[:, 0])


def test_causal_attention_hand_computed() -> None:
    """Two windows, W = identity: S_2 = softmax(O_2.O_1, O_2.O_2)."""
    att = CausalWindowAttention(2, windows=2)
    with torch.no_grad():
        att.weight.copy_(torch.eye(2).unsqueeze(0))
    o = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    s = att.scores(o)[0]
    e4 = torch.exp(torch.tensor(4.0))
    torch.testing.assert_close(s, torch.tensor([[1.0, 0.0], [1 / (1 + e4), e4 / (1 + e4)]]))
    torch.testing.assert_close(att(o)[0, 1], torch.tensor([1.0, 2.0 * e4]) / (1 + e4))


def test_causal_attention_ignores_later_windows() -> None:
    torch.manual_seed(0)
    att = CausalWindowAttention(6, windows=5)
    o = torch.randn(2, 5, 6)
    for m in range(4):
        bumped = o.clone()
        bumped[:, m + 1 :] = torch.randn(2, 4 - m, 6)
        torch.testing.assert_close(att(o)[:, : m + 1], att(bumped)[:, : m + 1])
        assert (att(o)[:, m + 1] - att(bumped)[:, m + 1]).abs().amax() > 1e-4
    s = att.scores(o)
    torch.testing.assert_close(s.sum(-1), torch.ones(2, 5))
    assert torch.equal(s.triu(1), torch.zeros_like(s))


# --- per-window classifiers, dropout, helpers ---------------------------------------------


def test_window_classifiers_apply_window_m_weights_to_window_m() -> None:
    torch.manual_seed(0)
    heads = WindowClassifiers(5, 3, windows=4)
    z = torch.randn(2, 4, 5)
    out = heads(z)
    for m in range(4):
        torch.testing.assert_close(out[:, m], z[:, m] @ heads.weight[m] + heads.bias[m])


def test_fast_dropout_keeps_1_minus_p_and_rescales() -> None:
    torch.manual_seed(0)
    drop = FastDropout(0.3)
    x = (torch.rand(200_000) + 1.0).requires_grad_()
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005
    torch.testing.assert_close(y[kept], x[kept] / 0.7)
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.7)
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError):
        FastDropout(1.0)


def test_frames_to_sequence_keeps_each_frame_together() -> None:
    x = torch.randn(2, 3, 5, 4)
    seq = frames_to_sequence(x)
    assert seq.shape == (2, 5, 12)
    torch.testing.assert_close(seq[1, 3], x[1, :, 3].T.reshape(-1))
    cl = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(frames_to_sequence(cl), seq)


def test_check_input_names_the_expected_shape() -> None:
    check_input(torch.zeros(2, 3, 10, 8), 3, 10, 8)
    with pytest.raises(ValueError, match=r"\(B, 3, 10, 8\)"):
        check_input(torch.zeros(2, 3, 8, 10), 3, 10, 8)
