"""Losses (ser.losses): center loss, the soft-target NLL and label smoothing."""

import math

import pytest
import torch
import torch.nn.functional as F

from ser.losses import CenterLoss, smooth_labels, soft_nll_loss


def test_center_loss_is_half_mean_squared_distance_to_class_centers():
    loss = CenterLoss(num_classes=3, dim=2, weight=0.5)
    with torch.no_grad():
        loss.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]))
    z = torch.tensor([[1.0, 0.0], [1.0, 3.0], [2.0, 0.0]])
    y = torch.tensor([0, 1, 2])
    # squared distances 1, 4, 0 -> mean 5/3 -> * 0.5 * weight 0.5
    assert loss(z, y).item() == pytest.approx(5 / 3 * 0.25, rel=1e-6)


def test_centers_move_towards_their_class_embeddings():
    torch.manual_seed(0)
    loss = CenterLoss(num_classes=2, dim=4, weight=1.0)
    target_means = torch.tensor([[1.0, -1.0, 2.0, 0.0], [-2.0, 0.5, 0.0, 1.0]])
    y = torch.tensor([0, 1] * 8)
    z = target_means[y] + 0.01 * torch.randn(16, 4)
    optimizer = torch.optim.SGD(loss.parameters(), lr=0.5)
    for _ in range(200):
        optimizer.zero_grad()
        loss(z, y).backward()
        optimizer.step()
    torch.testing.assert_close(loss.centers.detach(), target_means, atol=0.02, rtol=0)


# ----------------------------------------------------------------------------- soft targets


def test_soft_nll_of_one_hot_targets_is_the_weighted_nll():
    torch.manual_seed(0)
    log_probs = torch.randn(12, 4).log_softmax(dim=1)
    y = torch.tensor([0, 1, 2, 3, 0, 0, 1, 2, 3, 3, 3, 1])
    weight = torch.tensor([0.5, 1.0, 2.0, 1.5])
    onehot = F.one_hot(y, 4).float()
    for w in (None, weight):
        expected = F.nll_loss(log_probs, y, weight=w)
        torch.testing.assert_close(soft_nll_loss(log_probs, onehot, w), expected)


def test_soft_nll_weights_each_class_share_by_its_weight():
    log_probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]).log()
    target = torch.tensor([[0.6, 0.4, 0.0], [0.0, 0.5, 0.5]])
    weight = torch.tensor([1.0, 2.0, 4.0])
    # sum_i sum_c w_c q_ic (-log p_ic) / sum_i sum_c w_c q_ic, term by term
    numerator = 0.6 * 1 * -math.log(0.7) + 0.4 * 2 * -math.log(0.2)
    numerator += 0.5 * 2 * -math.log(0.1) + 0.5 * 4 * -math.log(0.8)
    expected = numerator / (0.6 * 1 + 0.4 * 2 + 0.5 * 2 + 0.5 * 4)
    assert soft_nll_loss(log_probs, target, weight).item() == pytest.approx(expected, rel=1e-6)
    unweighted = (0.6 * -math.log(0.7) + 0.4 * -math.log(0.2)) + 0.5 * -math.log(0.1)
    unweighted += 0.5 * -math.log(0.8)
    assert soft_nll_loss(log_probs, target).item() == pytest.approx(unweighted / 2, rel=1e-6)


def test_label_smoothing_matches_torch_cross_entropy():
    torch.manual_seed(1)
    logits = torch.randn(10, 4)
    y = torch.randint(0, 4, (10,))
    for smoothing in (0.0, 0.1, 0.3):
        target = smooth_labels(F.one_hot(y, 4).float(), smoothing)
        torch.testing.assert_close(target.sum(dim=1), torch.ones(10))
        expected = F.cross_entropy(logits, y, label_smoothing=smoothing)
        loss = soft_nll_loss(logits.log_softmax(dim=1), target)
        torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_center_loss_with_class_shares():
    loss = CenterLoss(num_classes=3, dim=2, weight=0.5)
    with torch.no_grad():
        loss.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]))
    z = torch.tensor([[1.0, 0.0], [1.0, 3.0], [2.0, 0.0]])
    y = torch.tensor([0, 1, 2])
    # one-hot rows are the labels: squared distances 1, 4, 0 -> mean 5/3 -> * 0.5 * weight 0.5
    assert loss(z, F.one_hot(y, 3).float()).item() == pytest.approx(5 / 3 * 0.25, rel=1e-6)
    shares = torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.25, 0.75]])
    # squared distances: row 0: 1 to c0, 1 to c1; row 1: 4 to c1; row 2: 2 to c1, 0 to c2
    expected = 0.5 * 0.5 * (0.5 * 1 + 0.5 * 1 + 4 + 0.25 * 2) / 3
    assert loss(z, shares).item() == pytest.approx(expected, rel=1e-6)
