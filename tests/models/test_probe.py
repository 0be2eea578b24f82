"""ser.models.Probe: pooling over time, then an MLP (model=probe, model=linear)."""

from __future__ import annotations

import pytest
import torch

from ser.models import Probe
from ser.models.blocks import NetOptionError


def test_mean_std_pooling_summarises_each_feature_over_time():
    probe = Probe(3, in_channels=2, frames=5, n_mels=4, pooling="mean_std", hidden=[])
    x = torch.randn(6, 2, 5, 4)
    pooled = probe.pool(x)
    per_frame = x.transpose(1, 2).flatten(2)  # (B, T, C*F)
    assert pooled.shape == (6, 16)
    torch.testing.assert_close(pooled[:, :8], per_frame.mean(1))
    torch.testing.assert_close(pooled[:, 8:], per_frame.std(1, unbiased=False))


def test_the_order_of_frames_does_not_matter_to_mean_pooling():
    probe = Probe(4, in_channels=1, frames=7, n_mels=5, pooling="mean_std").eval()
    x = torch.randn(3, 1, 7, 5)
    shuffled = x[:, :, torch.randperm(7)]
    torch.testing.assert_close(probe(x), probe(shuffled))


def test_attention_pooling_weights_frames_by_content():
    probe = Probe(4, in_channels=1, frames=6, n_mels=3, pooling="attention").eval()
    x = torch.randn(2, 1, 6, 3)
    weights = probe.attention.weights(x.transpose(1, 2).flatten(2))
    torch.testing.assert_close(weights.sum(1), torch.ones(2))
    assert probe(x).shape == (2, 4)


def test_linear_on_one_frame_is_an_affine_map_of_the_features():
    """model=linear on functionals: log-softmax(W x + b) of the utterance's one vector."""
    linear = Probe(4, in_channels=1, frames=1, n_mels=88, pooling="mean", hidden=[], dropout=0.0)
    x = torch.randn(5, 1, 1, 88)
    expected = torch.log_softmax(
        x[:, 0, 0] @ linear.classifier.weight.T + linear.classifier.bias, -1
    )
    torch.testing.assert_close(linear(x), expected)
    assert linear.embedding_dim == 88 and len(list(linear.mlp)) == 0
    torch.testing.assert_close(linear.classify(linear.embed(x)), linear(x))


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"pooling": "max"}, "pooling"), ({"hidden": [0]}, "hidden"), ({"dropout": 1.0}, "dropout")],
)
def test_bad_options_name_the_argument(kwargs, key):
    with pytest.raises(NetOptionError) as err:
        Probe(4, **kwargs)
    assert err.value.key == key
