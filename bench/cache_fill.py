"""Filling a cold feature cache: one fill with a pool of processes, and several jobs at once.

- ``--workers 1 2``: one fill of the whole corpus with ``datamodule.fill_workers`` processes
  (:meth:`ser.data.cache.FeatureCache.fill`), each time into a new cache: utterances/s.
- ``--processes N``: N independent processes (a parallel sweep's jobs) fill one cold cache
  at once, one worker each: how many utterances each computed (the corpus's size each, if
  they did not share the work) and the slowest fill's wall time.

One torch thread per process. The corpus is Emo-DB (``SER_EMODB_ROOT``), RAVDESS
(``--corpus ravdess``, ``SER_RAVDESS_ROOT``) or a manifest (``--corpus OUT/manifest.csv``,
e.g. ``python bench/synthetic_iemocap.py OUT``: 2,280 utterances of 4.5 s on average).

    python bench/cache_fill.py --workers 1 2 [--corpus ravdess]
    python bench/cache_fill.py --processes 4
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from typing import Any


def corpus(name: str) -> Any:
    """The shared copy of ``name`` (from its ``SER_<NAME>_ROOT``), or the manifest corpus
    at the path ``name`` (e.g. one written by bench/synthetic_iemocap.py)."""
    from ser.data.corpora import RAVDESS, EmoDB, Manifest

    if name.endswith(".csv"):
        return Manifest(manifest=name)
    cls = {"emodb": EmoDB, "ravdess": RAVDESS}[name]
    return cls(root=os.environ[f"SER_{name.upper()}_ROOT"], download=False)


def fill(cache_dir: str, name: str, workers: int) -> tuple[int, float]:
    """Fill ``cache_dir`` with the corpus's log-mel features; (computed, seconds)."""
    import torch

    from ser.data.features import LogMel3D
    from ser.data.source import FeatureSource

    torch.set_num_threads(1)
    data = corpus(name)
    source = FeatureSource(LogMel3D(), cache_dir=cache_dir, progress=False, workers=workers)
    start = time.monotonic()
    report = source.fill(data, data.utterances)
    return report.computed, time.monotonic() - start


def job(cache_dir: str, name: str, queue: Any) -> None:
    """One sweep job's fill, reported through ``queue``."""
    queue.put(fill(cache_dir, name, 1))


def main() -> None:
    """Run the chosen measurement and print it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", help="pool sizes of one fill")
    parser.add_argument("--processes", type=int, help="independent jobs filling at once")
    parser.add_argument(
        "--corpus", default="emodb", help="emodb, ravdess, or a manifest (.csv) to fill"
    )
    args = parser.parse_args()
    if not args.workers and not args.processes:
        parser.error("give --workers N [N ...] or --processes N")
    for workers in args.workers or []:
        with tempfile.TemporaryDirectory(prefix="ser-cache-fill-") as cache_dir:
            computed, seconds = fill(cache_dir, args.corpus, workers)
        print(f"{args.corpus}: {workers} worker(s): {computed} utterances in {seconds:.1f} s, "
              f"{computed / seconds:.1f} utterances/s")  # fmt: skip
    if args.processes:
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        with tempfile.TemporaryDirectory(prefix="ser-cache-fill-") as cache_dir:
            processes = [
                context.Process(target=job, args=(cache_dir, args.corpus, queue))
                for _ in range(args.processes)
            ]
            for process in processes:
                process.start()
            results = [queue.get(timeout=600) for _ in processes]  # a failed one printed why
            for process in processes:
                process.join()
        computed = [count for count, _ in results]
        print(f"{args.processes} processes computed {computed} utterances ({sum(computed)} in "
              f"all); slowest fill {max(seconds for _, seconds in results):.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
