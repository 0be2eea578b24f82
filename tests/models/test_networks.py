"""Checks every network must pass, run on narrow versions of all four.

The contract (shapes, normalised log-probabilities, ``forward == classify(embed)``, eval
determinism), gradients to every parameter, fitting a tiny batch, bf16 autocast, batch
independence, and one conf/model/<name>.yaml per registered network (the composed configs:
tests/test_config.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from small_nets import LABELS, SMALL, small_input, small_net
from torch import nn

from ser.models import NETWORKS

CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "model"
NAMES = list(SMALL)


@pytest.mark.parametrize(
    ("name", "overrides", "embedding_dim"),
    [
        ("acrnn", {"conv_layers": 2}, 8),
        ("acrnn", {"conv_layers": 6}, 8),
        ("adrnn", {}, 8),
        ("asrnn", {}, 8),
        ("adsrnn", {}, 4 * 16),
        ("adsrnn", {"per_window_attention": True, "window_combine": "recursive"}, 4 * 16),
    ],
)
def test_contract(name: str, overrides: dict, embedding_dim: int) -> None:
    model = small_net(name, **overrides).eval()
    assert model.embedding_dim == embedding_dim
    x = small_input(name, 3)
    with torch.no_grad():
        log_p = model(x)
        z = model.embed(x)
        again = model(x)
    assert log_p.shape == (3, 4)
    assert z.shape == (3, embedding_dim)
    torch.testing.assert_close(log_p.exp().sum(-1), torch.ones(3))
    assert torch.equal(log_p, again), "eval-mode forward is not deterministic"


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name: str) -> None:
    """One training-mode backward gives every parameter a non-zero gradient (ADSRNN's
    optional per-window attention included)."""
    overrides = {"per_window_attention": True} if name == "adsrnn" else {}
    model = small_net(name, **overrides).train()
    nn.functional.nll_loss(model(small_input(name, 4)), LABELS[:4]).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, f"{param_name} got no gradient"
        assert param.grad.abs().sum() > 0, f"{param_name} got an all-zero gradient"


@pytest.mark.parametrize("name", NAMES)
def test_fits_a_tiny_batch(name: str) -> None:
    """40 Adam steps (lr 1e-2) on one fixed batch bring its NLL below 0.1 (ADSRNN without
    its front dropout)."""
    overrides = {"front_dropout": 0.0} if name == "adsrnn" else {}
    model = small_net(name, **overrides).train()
    x = small_input(name)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        optimiser.zero_grad()
        loss = nn.functional.nll_loss(model(x), LABELS)
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.1


@pytest.mark.parametrize("name", NAMES)
def test_runs_under_bf16_autocast(name: str) -> None:
    """Forward and backward run under bf16 autocast (CPU stands in for CUDA here)."""
    model = small_net(name).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        log_p = model(small_input(name, 4))
    loss = nn.functional.nll_loss(log_p.float(), LABELS[:4])
    loss.backward()
    assert torch.isfinite(loss)
    torch.testing.assert_close(log_p.float().exp().sum(-1), torch.ones(4), atol=2e-2, rtol=0)


@pytest.mark.parametrize("name", ["acrnn", "adrnn", "asrnn"])  # ADSRNN: in its own tests
def test_prediction_does_not_depend_on_the_rest_of_the_batch(name: str) -> None:
    model = small_net(name).eval()
    x = small_input(name, 5)
    with torch.no_grad():
        torch.testing.assert_close(model(x[2:3]), model(x)[2:3])


def test_registry_names_every_configured_model() -> None:
    """NETWORKS, the narrow test networks and conf/model/ name the same models, so a new
    network cannot be configured without being registered and tested; the other configured
    models are the downstream heads (ser.models.Probe, tests/models/test_probe.py)."""
    configured = {p.stem for p in CONF_DIR.glob("*.yaml")}
    assert set(NETWORKS) == set(SMALL) == configured - {"probe", "linear"}
    for head in ("probe", "linear"):
        assert "_target_: ser.models.Probe" in (CONF_DIR / f"{head}.yaml").read_text()
