"""N processes fill one cold Emo-DB feature cache at once, as a parallel sweep's workers do.

Prints how many utterances each process computed (the corpus's size each, if they did not
share the work) and the wall time of the slowest fill. One torch thread per process.

    python bench/cache_fill.py [--processes 4]      # Emo-DB from SER_EMODB_ROOT
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from typing import Any


def fill(cache_dir: str, queue: Any) -> None:
    """Fill ``cache_dir`` for Emo-DB's 4 classes; put (utterances computed, seconds)."""
    import torch

    from ser.data import SERDataModule
    from ser.data.corpora import EmoDB

    torch.set_num_threads(1)
    corpus = EmoDB(root=os.environ["SER_EMODB_ROOT"], download=False)
    data = SERDataModule(corpus=corpus, fold=0, cache_dir=cache_dir, progress=False)
    start = time.monotonic()
    # the fill train.py's prepare_data does, with its report
    report = data.cache.fill(corpus.utterances, data._extract, progress=False)
    queue.put((report.computed, time.monotonic() - start))


def main() -> None:
    """Start the processes together and print what each computed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    with tempfile.TemporaryDirectory(prefix="ser-cache-fill-") as cache_dir:
        processes = [
            context.Process(target=fill, args=(cache_dir, queue)) for _ in range(args.processes)
        ]
        for process in processes:
            process.start()
        results = [queue.get(timeout=600) for _ in processes]  # a failed one printed why
        for process in processes:
            process.join()
    computed = [count for count, _ in results]
    print(f"{args.processes} processes computed {computed} utterances ({sum(computed)} in all); "
          f"slowest fill {max(seconds for _, seconds in results):.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
