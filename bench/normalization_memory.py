"""Peak memory of fitting the normalisation statistics on an IEMOCAP-sized frame store.

Builds a synthetic frame store ``(frames, 3, 40)`` float32 at 100 frames per second, with
utterance lengths uniform in 0.5x..1.5x ``--mean-seconds``, and weights 1 on the frames of a
training share: utterances go round-robin to 10 speakers and, as in an IEMOCAP fold, 8 of
them train (about 80% of the frames). Defaults: 10,039 utterances, IEMOCAP's count of
utterance wav files (shared/docs/IEMOCAP.md), and 4.5 s on average (an assumption: the doc
gives no durations), i.e. about 4.5 million frames or 2.2 GB of float32 features.

Each implementation runs in a fresh subprocess that builds the store in place, warms up on
a small slice, resets the peak resident set (``/proc/self/clear_refs``), then fits once:
"peak extra" is the peak resident memory during the fit (``VmHWM``) less the resident memory
just before it (store included). Implementations:

- ``chunked``: :func:`ser.data.normalization.fit_normalizer` (two float64 passes in blocks);
- ``float64``: the previous algorithm, kept here as a reference: the whole store converted to
  float64, then ``einsum`` for the mean and for the squared deviations.

The ``max |diff|`` column is the largest difference of mean or std from ``float64``. Linux only.

    python bench/normalization_memory.py [--utterances 10039] [--mean-seconds 4.5]
                                         [--implementations chunked float64] [--json rows.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ser.data.normalization import Normalizer, fit_normalizer
from ser.data.store import MemoryFrames

FRAMES_PER_SECOND = 100
SPEAKERS, TRAINING_SPEAKERS = 10, 8


def fit_float64(frames: torch.Tensor, weights: np.ndarray) -> Normalizer:
    """The previous ``fit_normalizer``: the whole store in float64 at once."""
    w = torch.from_numpy(weights).to(torch.float64)
    x = frames.to(torch.float64)
    total = w.sum()
    mean = torch.einsum("t,tcf->cf", w, x) / total
    var = torch.einsum("t,tcf->cf", w, (x - mean) ** 2) / total
    return Normalizer(mean=mean.float(), std=var.sqrt().clamp_min(1e-5).float())


def fit_chunked(frames: torch.Tensor, weights: np.ndarray) -> Normalizer:
    """:func:`fit_normalizer` on the store in memory, the weights as runs of equal rows."""
    change = np.flatnonzero(np.diff(weights)) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [len(weights)]])
    keep = weights[starts] > 0
    return fit_normalizer(MemoryFrames(frames), (starts[keep], stops[keep], weights[starts][keep]))


IMPLEMENTATIONS: dict[str, Callable[[torch.Tensor, np.ndarray], Normalizer]] = {
    "chunked": fit_chunked,
    "float64": fit_float64,
}


def synthetic_store(
    *, utterances: int, mean_seconds: float, seed: int = 0
) -> tuple[torch.Tensor, np.ndarray]:
    """Frames ``(total, 3, 40)`` float32 and their training weights, built without copies."""
    rng = np.random.default_rng(seed)
    lengths = np.maximum(
        1, (rng.uniform(0.5, 1.5, utterances) * mean_seconds * FRAMES_PER_SECOND).astype(np.int64)
    )
    training = np.arange(utterances) % SPEAKERS < TRAINING_SPEAKERS
    weights = np.repeat(training.astype(np.int64), lengths)
    frames = torch.empty(int(lengths.sum()), 3, 40)
    frames.normal_(mean=-5.0, std=3.0, generator=torch.Generator().manual_seed(seed))
    return frames, weights


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` memory field in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def measure(name: str, *, utterances: int, mean_seconds: float) -> dict:
    """Fit with implementation ``name`` in this process; returns a result row."""
    fit = IMPLEMENTATIONS[name]
    frames, weights = synthetic_store(utterances=utterances, mean_seconds=mean_seconds)
    fit(frames[:10_000], weights[:10_000])  # thread pools and kernels set up before measuring
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    start = time.perf_counter()
    normalizer = fit(frames, weights)
    seconds = time.perf_counter() - start
    return {
        "implementation": name,
        "utterances": utterances,
        "mean_seconds": mean_seconds,
        "frames": len(frames),
        "training_share": float((weights > 0).mean()),
        "store_gb": frames.nbytes / 1e9,
        "peak_extra_gb": (_status_kib("VmHWM") - before) * 1024 / 1e9,
        "seconds": seconds,
        "threads": torch.get_num_threads(),
        "mean": normalizer.mean.tolist(),
        "std": normalizer.std.tolist(),
    }


def run_fresh(name: str, *, utterances: int, mean_seconds: float) -> dict:
    """:func:`measure` in a fresh Python process, so no earlier fit's memory counts."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            name,
            f"--utterances={utterances}",
            f"--mean-seconds={mean_seconds}",
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed (exit {out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def max_difference(row: dict, reference: dict) -> float:
    """Largest absolute difference of mean or std between two rows."""
    return max(
        float(np.abs(np.array(row[key]) - np.array(reference[key])).max())
        for key in ("mean", "std")
    )


def main() -> None:
    """Parse arguments, measure every requested implementation, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=10_039)
    parser.add_argument("--mean-seconds", type=float, default=4.5)
    parser.add_argument(
        "--implementations", nargs="+", choices=list(IMPLEMENTATIONS), default=list(IMPLEMENTATIONS)
    )
    parser.add_argument("--json", metavar="FILE", help="also write the rows as a JSON list")
    parser.add_argument("--worker", choices=list(IMPLEMENTATIONS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = {"utterances": args.utterances, "mean_seconds": args.mean_seconds}
    if args.worker:
        print(json.dumps(measure(args.worker, **size)))
        return

    rows = [run_fresh(name, **size) for name in args.implementations]
    first = rows[0]
    print(
        f"torch {torch.__version__}, {first['threads']} CPU threads, {args.utterances} "
        f"utterances of {args.mean_seconds} s on average: {first['frames']:,} frames, "
        f"{first['training_share']:.0%} of them training"
    )
    reference = next((r for r in rows if r["implementation"] == "float64"), None)
    header = ("implementation", "store GB", "peak extra GB", "seconds", "max |diff|")
    print("{:<15} {:>9} {:>14} {:>8} {:>11}".format(*header))
    for row in rows:
        diff = f"{max_difference(row, reference):.1e}" if reference else "-"
        print(
            f"{row['implementation']:<15} {row['store_gb']:>9.2f} {row['peak_extra_gb']:>14.3f} "
            f"{row['seconds']:>8.2f} {diff:>11}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
