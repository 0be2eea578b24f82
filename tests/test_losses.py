"""Center loss (ser.losses)."""

import pytest
import torch

from ser.losses import CenterLoss


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
