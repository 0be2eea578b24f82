"""Checks every network must pass, shared by the per-model test files as fixtures."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "model"


def _as_lists(value: object) -> object:
    """Tuples (constructor defaults) as lists (YAML), recursively."""
    if isinstance(value, tuple | list):
        return [_as_lists(v) for v in value]
    return value


def _check_contract(model: nn.Module, x: torch.Tensor, num_classes: int) -> None:
    """Shape, normalised log-probabilities, forward == classify(embed), eval determinism."""
    model.eval()
    with torch.no_grad():
        log_p = model(x)
        z = model.embed(x)
        again = model(x)
        via_embed = model.classify(z)
    assert log_p.shape == (x.shape[0], num_classes)
    assert z.shape == (x.shape[0], model.embedding_dim)
    torch.testing.assert_close(log_p.exp().sum(-1), torch.ones(x.shape[0]))
    assert torch.equal(log_p, again), "eval-mode forward is not deterministic"
    torch.testing.assert_close(via_embed, log_p)


def _check_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """One training-mode backward gives every parameter a non-zero gradient."""
    model.train()
    nn.functional.nll_loss(model(x), y).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert param.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float) -> float:
    """Train on one fixed batch with Adam; return the NLL of the last step."""
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = nn.functional.nll_loss(model(x), y)
        loss.backward()
        optimiser.step()
    return loss.item()


def _check_bf16_autocast(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Forward and backward run under bf16 autocast (CPU stands in for CUDA here)."""
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        log_p = model(x)
    loss = nn.functional.nll_loss(log_p.float(), y)
    loss.backward()
    assert torch.isfinite(loss)
    torch.testing.assert_close(
        log_p.float().exp().sum(-1), torch.ones(x.shape[0]), atol=2e-2, rtol=0
    )


def _check_config(name: str, cls: type[nn.Module]) -> None:
    """conf/model/<name>.yaml lists every constructor argument at its default value and
    instantiates (as a partial awaiting num_classes) to the class."""
    cfg = OmegaConf.load(CONF_DIR / f"{name}.yaml").model
    assert cfg.name == name
    defaults = {
        k: _as_lists(p.default)
        for k, p in inspect.signature(cls.__init__).parameters.items()
        if k not in ("self", "num_classes")
    }
    net = OmegaConf.to_container(cfg.net)
    assert net.pop("_target_") == f"ser.models.{cls.__name__}"
    assert net.pop("_partial_") is True
    assert net.pop("_convert_") == "all"
    assert net == defaults
    assert isinstance(instantiate(cfg.net)(num_classes=3), cls)


@pytest.fixture
def check_config() -> Callable[[str, type[nn.Module]], None]:
    """See :func:`_check_config`."""
    return _check_config


@pytest.fixture
def check_contract() -> Callable[[nn.Module, torch.Tensor, int], None]:
    """See :func:`_check_contract`."""
    return _check_contract


@pytest.fixture
def check_gradients() -> Callable[[nn.Module, torch.Tensor, torch.Tensor], None]:
    """See :func:`_check_gradients`."""
    return _check_gradients


@pytest.fixture
def fit() -> Callable[[nn.Module, torch.Tensor, torch.Tensor, int, float], float]:
    """See :func:`_fit`."""
    return _fit


@pytest.fixture
def check_bf16_autocast() -> Callable[[nn.Module, torch.Tensor, torch.Tensor], None]:
    """See :func:`_check_bf16_autocast`."""
    return _check_bf16_autocast


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Run each network test single-threaded: these tiny models gain nothing from a second
    thread, and OpenMP's spinning threads slow down badly when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
