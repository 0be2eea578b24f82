"""Trace a network's tensor layout with forward hooks, for the SEED.md shape tests.

The tests read the shapes off the running model (what the first convolution, every
effective max-pool, the first per-frame linear layer and the recurrent layers receive), so
an edit that swaps the time and mel axes again fails them whatever the config says.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ser.models.blocks import Dense


@dataclass
class Layout:
    """Shapes seen in one forward pass (batch dimension included)."""

    first_conv_kernel: tuple[int, ...] = ()
    first_conv_out: tuple[int, ...] = ()
    #: (input shape, output shape) of every max-pool that changes the shape, in order.
    pools: list[tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    linear_in: tuple[int, ...] = ()
    linear_out: tuple[int, ...] = ()
    #: per-feature mean of the first linear layer's output over batch and time (train mode).
    linear_out_mean: torch.Tensor | None = None
    #: input shape of every nn.LSTM call, in order.
    lstm_in: list[tuple[int, ...]] = field(default_factory=list)


def trace(model: nn.Module, x: torch.Tensor) -> Layout:
    """Run ``model(x)`` in training mode and record its :class:`Layout`."""
    layout = Layout()
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    dense = next(m for m in model.modules() if isinstance(m, Dense))

    def on_conv(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        layout.first_conv_kernel = tuple(module.kernel_size)
        layout.first_conv_out = tuple(output.shape)

    def on_pool(_module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if inputs[0].shape != output.shape:
            layout.pools.append((tuple(inputs[0].shape), tuple(output.shape)))

    def on_dense(_module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        layout.linear_in = tuple(inputs[0].shape)
        layout.linear_out = tuple(output.shape)
        layout.linear_out_mean = output.detach().flatten(0, -2).mean(0)

    def on_lstm(_module: nn.Module, inputs: tuple, _output: tuple) -> None:
        layout.lstm_in.append(tuple(inputs[0].shape))

    handles = [conv.register_forward_hook(on_conv), dense.register_forward_hook(on_dense)]
    for module in model.modules():
        if isinstance(module, nn.MaxPool2d):
            handles.append(module.register_forward_hook(on_pool))
        if isinstance(module, nn.LSTM):
            handles.append(module.register_forward_hook(on_lstm))
    try:
        with torch.no_grad():
            model.train()(x)
    finally:
        for handle in handles:
            handle.remove()
    return layout


def seed_input(batch: int = 2) -> torch.Tensor:
    """A random batch of SEED.md segments, ``(batch, 3, 300, 40)``."""
    return torch.randn(batch, 3, 300, 40, generator=torch.Generator().manual_seed(0))
