"""Throughput of the four networks: training and inference segments per second.

Training segments/s = batch / median wall time of one full optimiser step (forward, NLL loss,
backward, Adam step) on a fixed random batch, after warm-up steps. Inference segments/s =
batch / median wall time of one eval-mode forward under ``torch.inference_mode``. No data
loading is timed. ``--dtypes`` picks the precisions: ``fp32``, and ``bf16`` (autocast on the
device, as ``trainer.precision=bf16-mixed`` trains); by default fp32 on the CPU and bf16 on
CUDA. CUDA is synchronised before each clock read.

``--keep-freed-memory`` makes glibc malloc keep freed memory for reuse instead of returning
it to the OS (as CUDA's caching allocator does). By default every large CPU tensor is a
fresh ``mmap`` whose pages fault in on first touch: about a million page faults per ADSRNN
training step. It changes no maths; a training process gets the same effect by exporting
``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1073741824``.

``<network>@small`` (e.g. ``adsrnn@small``) times a network at ``width=small``.

``--compile`` also times each network compiled with ``torch.compile`` (in place, as
``compile=true`` trains), rows named ``<model>+compile``; ``compile_s`` is the time of the
first training step and first inference, where the compilation happens (excluded from the
throughput).

    python bench/throughput.py [--models adsrnn adsrnn@64 asrnn@small] [--warmup 2] [--steps 5]
                               [--batch 30] [--devices cpu cuda] [--dtypes fp32 bf16]
                               [--json rows.json] [--compile]
                               [--keep-freed-memory]
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from ser.io import write_json_atomic
from ser.models import ADSRNN, NETWORKS

#: The registry's networks at their default widths, plus ADSRNN with a narrower dilated block.
MODELS: dict[str, Callable[[], nn.Module]] = {
    **NETWORKS,
    "adsrnn@64": lambda: ADSRNN(dilated_channels=64),
}
NUM_CLASSES = 4
#: per-model width overrides of ``width=small`` (what train.py uses)
WIDTH_DIR = Path(__file__).resolve().parents[1] / "conf" / "model" / "_width"


def small_widths(name: str) -> dict:
    """``model.net`` overrides of ``width=small`` for network ``name``
    (``conf/model/_width/small_<name>.yaml``)."""
    return dict(OmegaConf.to_container(OmegaConf.load(WIDTH_DIR / f"small_{name}.yaml")))


def build(name: str) -> nn.Module:
    """Network ``name``: a :data:`MODELS` entry, or ``<network>@small`` at ``width=small``."""
    if name.endswith("@small"):
        network = name.removesuffix("@small")
        return NETWORKS[network](**small_widths(network))
    return MODELS[name]()


def keep_freed_memory() -> bool:
    """Serve all allocations from glibc's heap and never trim it; False where not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**30))


def _median_seconds(
    fn: Callable[[], object], device: torch.device, warmup: int, steps: int
) -> float:
    """Median wall time of ``fn`` over ``steps`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


DTYPES = ("fp32", "bf16")


def measure(
    name: str,
    device: torch.device,
    dtype: str,
    batch: int,
    warmup: int,
    steps: int,
    *,
    compiled: bool = False,
) -> dict:
    """Time one model on one device in one precision (``fp32`` or ``bf16`` autocast),
    compiled or not; returns a result row."""
    torch.manual_seed(0)
    model = build(name).to(device)
    if compiled:
        model.compile()
    x = torch.randn(batch, 3, 300, 40, device=device)
    y = torch.randint(0, NUM_CLASSES, (batch,), device=device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-5, betas=(0.5, 0.999), weight_decay=1e-5)

    def autocast() -> AbstractContextManager:
        if dtype == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return nullcontext()

    def train_step() -> None:
        optimiser.zero_grad(set_to_none=True)
        with autocast():
            loss = nn.functional.nll_loss(model(x), y)
        loss.backward()
        optimiser.step()

    def infer() -> None:
        with torch.inference_mode(), autocast():
            model(x)

    compile_s = None
    if compiled:  # the first calls compile (training and evaluation graphs)
        started = time.perf_counter()
        model.train()
        train_step()
        model.eval()
        infer()
        compile_s = time.perf_counter() - started
    model.train()
    train_s = _median_seconds(train_step, device, warmup, steps)
    model.eval()
    infer_s = _median_seconds(infer, device, warmup, steps)
    return {
        "name": f"{name}+compile" if compiled else name,
        "params": sum(p.numel() for p in model.parameters()),
        "train_seg_s": batch / train_s,
        "infer_seg_s": batch / infer_s,
        "device": device.type,
        "dtype": dtype,
        "batch": batch,
        "compile_s": compile_s,
    }


def main() -> None:
    """Parse arguments, time every requested model on every requested device, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    choices = [*MODELS, *(f"{n}@small" for n in NETWORKS)]
    parser.add_argument("--models", nargs="+", choices=choices, default=list(MODELS))
    parser.add_argument("--devices", nargs="+", choices=["cpu", "cuda"], default=None)
    parser.add_argument(
        "--dtypes", nargs="+", choices=DTYPES, default=None, help="default: cpu fp32, cuda bf16"
    )
    parser.add_argument("--batch", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before timing")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as a JSON list")
    parser.add_argument(
        "--keep-freed-memory", action="store_true", help="glibc malloc: reuse, never unmap"
    )
    parser.add_argument(
        "--compile", action="store_true", help="also time every model under torch.compile"
    )
    args = parser.parse_args()
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    malloc = "default"
    if args.keep_freed_memory:
        malloc = "keep freed memory" if keep_freed_memory() else "default (mallopt failed)"

    header = (
        f"{'model':<20} {'device':<6} {'dtype':<6} {'params':>10} {'train/s':>9} {'infer/s':>9}"
        + (f" {'compile s':>9}" if args.compile else "")
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {args.batch}, "
        f"malloc: {malloc}, median of {args.steps} steps after {args.warmup} warm-up"
    )
    print(header)
    rows = []
    for device in devices:
        for dtype in args.dtypes or ["bf16" if device == "cuda" else "fp32"]:
            for name in args.models:
                for compiled in (False, True) if args.compile else (False,):
                    row = measure(
                        name, torch.device(device), dtype, args.batch, args.warmup, args.steps,
                        compiled=compiled,
                    )  # fmt: skip
                    rows.append(row)
                    compile_s = "" if row["compile_s"] is None else f" {row['compile_s']:>9.1f}"
                    print(
                        f"{row['name']:<20} {row['device']:<6} {row['dtype']:<6} "
                        f"{row['params']:>10,} {row['train_seg_s']:>9.2f} "
                        f"{row['infer_seg_s']:>9.2f}{compile_s}",
                        flush=True,
                    )
                    if args.json:  # after every row: a run stopped early keeps its rows
                        write_json_atomic(args.json, rows)


if __name__ == "__main__":
    main()
