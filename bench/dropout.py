"""Why ADSRNN's front dropout is :class:`ser.models.blocks.FastDropout` and not
``nn.Dropout``: both timed on the feature maps it sees, alone and inside a training step.

The rows: the dropout alone (forward and backward) on ADSRNN's front feature map
``(batch, channels, frames, mels)``, and one ADSRNN training step (forward, backward) with
either dropout in the front block, at the widths given. Run on the machine in question:

    python bench/dropout.py --width small --width full --json dropout.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ser.models import ADSRNN
from ser.models.blocks import FastDropout

#: front channels and LSTM size per width (conf/model/adsrnn.yaml, conf/model/_width/)
WIDTHS = {"full": (128, 128, 256), "small": (32, 32, 64)}


def seconds(step: Callable[[], None], *, repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``step`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def dropout_alone(module: nn.Module, shape: tuple[int, ...], repeats: int) -> float:
    x = torch.randn(shape, requires_grad=True)

    def step() -> None:
        module(x).sum().backward()

    return seconds(step, repeats=repeats)


def adsrnn_with(width: str, dropout: type[nn.Module]) -> ADSRNN:
    """ADSRNN at ``width`` whose front dropout is a ``dropout`` of the same probability."""
    front, dilated, hidden = WIDTHS[width]
    torch.manual_seed(0)
    net = ADSRNN(
        num_classes=4, in_channels=3, n_mels=40, frames=300, front_channels=front,
        dilated_channels=dilated, lstm_hidden=hidden,
    )  # fmt: skip
    (index,) = [i for i, m in enumerate(net.front) if isinstance(m, FastDropout | nn.Dropout)]
    net.front[index] = dropout(net.front[index].p)
    return net


def training_step(width: str, dropout: type[nn.Module], batch: int, repeats: int) -> float:
    net = adsrnn_with(width, dropout)
    net.train()
    x = torch.randn(batch, 3, 300, 40)

    def step() -> None:
        net.zero_grad(set_to_none=True)
        net(x).sum().backward()

    return seconds(step, repeats=repeats)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", action="append", choices=sorted(WIDTHS))
    parser.add_argument("--batch", type=int, default=30, help="segments per batch (default 30)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    rows = []
    for width in args.width or ["small"]:
        shape = (args.batch, WIDTHS[width][0], 300, 40)
        for name, dropout in (("nn.Dropout", nn.Dropout), ("FastDropout", FastDropout)):
            rows.append({
                "width": width, "dropout": name, "batch": args.batch,
                "dropout_alone_ms": 1000 * dropout_alone(dropout(0.3), shape, args.repeats),
                "training_step_ms": 1000 * training_step(width, dropout, args.batch, args.repeats),
            })  # fmt: skip
    print("| width | dropout | dropout alone (ms) | ADSRNN training step (ms) |")
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['width']} | {row['dropout']} | {row['dropout_alone_ms']:.1f} | "
            f"{row['training_step_ms']:.0f} |"
        )
    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    print(f"({meta['date']}, {meta['machine']}, {meta['torch_threads']} torch threads)")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
