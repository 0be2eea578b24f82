"""Class balance of the training split (ser/data/balance.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ser.data.balance import ClassWeightedLoss, FixedPerClass, NoBalance, WeightedSampler
from ser.errors import ConfigError


@pytest.fixture
def labels():
    """Imbalanced class indices (70 % / 20 % / 10 %), interleaved."""
    rng = np.random.default_rng(0)
    return rng.permutation(np.repeat([0, 1, 2], [700, 200, 100]))


def test_no_balance_keeps_everything(labels):
    strategy = NoBalance()
    assert np.array_equal(strategy.select(labels, 3), np.arange(len(labels)))
    assert strategy.sampler(labels, 3, seed=0) is None
    assert strategy.class_weights(labels, 3) is None


def test_fixed_per_class_keeps_the_first_n_of_each_class(labels):
    n = 150
    keep = FixedPerClass(n=n).select(labels, 3)
    assert np.all(np.diff(keep) > 0)  # corpus order
    expected = np.sort(np.concatenate([np.flatnonzero(labels == c)[:n] for c in range(3)]))
    assert np.array_equal(keep, expected)
    counts = np.bincount(labels[keep], minlength=3)
    assert counts.tolist() == [n, n, 100]  # class 2 has only 100: all of them


def test_fixed_per_class_warns_about_small_classes(labels, caplog):
    FixedPerClass(n=150).select(labels, 4)  # class 3 is absent: no warning for it
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "class 2 has 100" in warnings[0]


def test_fixed_per_class_needs_a_positive_n():
    with pytest.raises(ConfigError, match=r"datamodule\.balance\.n=0"):
        FixedPerClass(n=0)


def test_weighted_sampler_draws_classes_about_equally(labels):
    sampler = WeightedSampler().sampler(labels, 3, seed=1)
    drawn = np.array(list(sampler))
    assert len(drawn) == len(labels)  # an epoch keeps the number of segments
    assert drawn.min() >= 0 and drawn.max() < len(labels)
    share = np.bincount(labels[drawn], minlength=3) / len(drawn)
    # 1000 draws of p = 1/3: sd 0.015; 0.06 is 4 sd (the plain shares are 0.7 / 0.2 / 0.1)
    assert np.allclose(share, 1 / 3, atol=0.06), share
    # over several epochs the shares tighten
    many = np.concatenate([np.array(list(sampler)) for _ in range(10)])
    assert np.allclose(np.bincount(labels[many], minlength=3) / len(many), 1 / 3, atol=0.02)


def test_weighted_sampler_is_reproducible_from_its_seed(labels):
    draw = lambda seed: list(WeightedSampler().sampler(labels, 3, seed=seed))  # noqa: E731
    assert draw(5) == draw(5)
    assert draw(5) != draw(6)


def test_class_weighted_loss_weights(labels):
    weights = ClassWeightedLoss().class_weights(labels, 3)
    n, counts = len(labels), np.bincount(labels)
    expected = torch.tensor([n / (3 * c) for c in counts], dtype=torch.float32)
    torch.testing.assert_close(weights, expected)
    # weighted counts are equal across classes
    torch.testing.assert_close(weights * torch.from_numpy(counts).float(), torch.full((3,), n / 3))


def test_class_weighted_loss_absent_class_gets_zero(labels):
    weights = ClassWeightedLoss().class_weights(labels, 4)
    assert weights.shape == (4,)
    assert weights[3] == 0
    assert weights[0] == pytest.approx(len(labels) / (4 * 700))
