"""The whole training path at corpus sizes past memory: peak RSS, time to the first step,
steps/s and loader throughput, for the packed store on disk and the in-memory store.

For each size N it writes an IEMOCAP-shaped manifest corpus (bench/synthetic_iemocap.py's
speakers, folds and 4.5 s mean length, scaled to N utterances) whose features are written
straight into the feature cache: random 3D log-mel entries of each utterance's frame count.
The audio files are empty placeholders, so no audio is read or synthesised; what is measured
is everything after extraction. Then, per store:

- ``train``: ``python train.py data=manifest debug=fast model=asrnn`` (the command of the
  issue that measured the in-memory store), with ``trainer.limit_train_batches`` raised for a
  steadier rate, in its own process: peak RSS (``wait4``), wall time, time from the
  process's start to the end of the first training step, and training steps/s after it.
- ``loader``: one epoch of the fold's training loader alone (no model), in its own process:
  segments/s and peak RSS. This is the data path the store changes.
- ``pair`` (``--pair``): two ``loader`` processes at once on the same store: the sum of
  their RSS against one's (the page cache is shared, not counted in either).

Before the ``disk`` rows of a size, the store is packed afresh (timed apart, as
``pack_s``). Each training run starts afresh (its run folder is deleted).

    python bench/scale.py OUT --utterances 2280 9120 36480 [--store disk memory baseline]
        [--baseline CHECKOUT] [--train-batches 20] [--pair] [--json OUT/scale.json]

``baseline`` runs the same rows with another checkout (``git worktree add /tmp/old
8dfd3e7``: the in-memory store before this one, normalised once), for the throughput
comparison in one run.

The disk needs about 0.43 MB per utterance (entries and store) plus the placeholders.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from synthetic_iemocap import SAMPLE_RATE, plan  # noqa: E402

IEMOCAP_SIZE = 2280


def write_corpus(out: Path, utterances: int, *, seed: int = 0) -> Path:
    """The manifest of an N-utterance corpus with its features cached; returns its path.
    Written once: a folder marked finished (``written``) is reused."""
    from ser.data.corpora import Manifest
    from ser.data.features import LogMel3D
    from ser.data.source import FeatureSource

    manifest, done = out / "manifest.csv", out / "written"
    if done.exists():
        return manifest
    rows = plan(scale=utterances / IEMOCAP_SIZE, mean_seconds=4.5, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "speaker", "gender", "session"])
        for row in rows:
            path = out / "wav" / row["speaker"] / f"{row['id']}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            writer.writerow([path, row["label"], row["speaker"], row["gender"], row["session"]])
    corpus = Manifest(manifest=manifest)
    frontend = LogMel3D()
    cache = FeatureSource(frontend, cache_dir=out / "cache").cache(corpus)
    cache.directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    samples = {f"{r['speaker']}_{r['id']}": r["samples"] for r in rows}
    for utterance in corpus.utterances:
        n = samples.get(f"{utterance.speaker}_{utterance.path.stem}", 4 * SAMPLE_RATE)
        frames = 1 + (n - frontend.win_length) // frontend.hop_length
        entry = rng.standard_normal((3, frames, frontend.n_mels), dtype=np.float32)
        np.save(cache.path_for(utterance), entry)
    done.touch()
    print(f"{manifest}: {len(rows)} utterances with cached features", flush=True)
    return manifest


def run(command: list[str], env: dict[str, str], cwd: Path) -> dict:
    """Run ``command``; its wall time and peak RSS (from ``wait4``, this child alone)."""
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({status}): {' '.join(command)}")
    return {"wall_s": time.monotonic() - start, "peak_rss_mb": usage.ru_maxrss / 1024}


def train_row(manifest: Path, store: str, batches: int, tree: Path) -> dict:
    """``train.py`` of the checkout ``tree`` on fold 0 with a timing callback; its figures.
    ``store=baseline``: the checkout's own store (one from before ``datamodule.store``)."""
    timings = manifest.parent / f"timings-{store}.json"
    env = dict(
        os.environ,
        PYTHONPATH=f"{tree / 'src'}:{ROOT / 'bench'}",
        SCALE_BENCH=str(timings),
        SCALE_BENCH_T0=str(time.time()),
    )
    command = [
        sys.executable, "train.py", "data=manifest", f"data.manifest={manifest}", "debug=fast",
        "model=asrnn", f"datamodule.cache_dir={manifest.parent}/cache",
        f"trainer.limit_train_batches={batches}", "trainer.max_epochs=1", "fold=0",
        f"paths.output_dir={manifest.parent}/runs/{store}", "+callbacks.scale_timer._target_="
        "scale_timer.StepTimer", "hydra.run.dir=" f"{manifest.parent}/runs/{store}",
    ]  # fmt: skip
    if store != "baseline":
        command.append(f"datamodule.store={store}")
    timings.unlink(missing_ok=True)
    shutil.rmtree(manifest.parent / "runs" / store, ignore_errors=True)  # a fresh run each time
    row = run(command, env, cwd=tree)
    return row | json.loads(timings.read_text())


def loader_row(manifest: Path, store: str, tree: Path, processes: int = 1) -> dict:
    """One training epoch of the fold's loader in ``processes`` processes at once."""
    command = [sys.executable, __file__, "--loader", str(manifest), "--store", store]
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    started = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE)]
    started += [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE)
        for _ in range(processes - 1)
    ]
    rows = []
    for process in started:
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"loader failed ({status}): {' '.join(command)}")
        rows.append(json.loads(output) | {"peak_rss_mb": usage.ru_maxrss / 1024})
    return {
        "segments_per_s": sum(r["segments_per_s"] for r in rows) / len(rows),
        "setup_s": max(r["setup_s"] for r in rows),
        **{key: [r[key] for r in rows] for key in ("peak_rss_mb", "pss_mb", "anon_mb")},
    }


def loader_epoch(manifest: Path, store: str) -> None:
    """In a child: set up fold 0 and read one training epoch; print segments/s as JSON."""
    import torch

    from ser.data import SERDataModule
    from ser.data.corpora import Manifest

    torch.manual_seed(0)
    start = time.monotonic()
    options = {} if store == "baseline" else {"store": store}
    data = SERDataModule(
        corpus=Manifest(manifest=manifest), fold=0, cache_dir=manifest.parent / "cache",
        progress=False, batch_size=30, **options,
    )  # fmt: skip
    data.prepare_data()
    data.setup("fit")
    setup_s = time.monotonic() - start
    start = time.monotonic()
    segments = sum(len(batch["seg"]) for batch in data.train_dataloader())
    seconds = time.monotonic() - start
    figures = {"segments_per_s": segments / seconds, "setup_s": setup_s} | memory_now()
    print(json.dumps(figures))


def memory_now() -> dict[str, float]:
    """This process's memory now, in MB: ``pss_mb`` (shared pages divided among the
    processes that map them: what two processes add up to) and ``anon_mb`` (private)."""
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value) / 1024
    return {"pss_mb": fields["Pss"], "anon_mb": fields["Anonymous"]}


def pack_store(manifest: Path) -> float:
    """Pack fold 0's store afresh (an earlier one is deleted first); the seconds it took."""
    from ser.data import SERDataModule
    from ser.data.corpora import Manifest

    for store in (manifest.parent / "cache").glob("*/store-*"):
        shutil.rmtree(store)
    data = SERDataModule(
        corpus=Manifest(manifest=manifest), fold=0, cache_dir=manifest.parent / "cache",
        progress=True,
    )  # fmt: skip
    start = time.monotonic()
    data.prepare_data()
    return time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    """Build each size, run each store, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--utterances", type=int, nargs="+", default=[2280, 9120])
    parser.add_argument(
        "--store", nargs="+", default=["disk", "memory"], choices=["disk", "memory", "baseline"]
    )
    parser.add_argument(
        "--baseline", type=Path, help="a checkout of an earlier commit: store=baseline runs it"
    )
    parser.add_argument("--train-batches", type=int, default=20)
    parser.add_argument("--pair", action="store_true", help="two loader processes at once")
    parser.add_argument("--json", type=Path, help="where to save the rows")
    parser.add_argument("--loader", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loader is not None:  # a child: ser comes from the checkout on PYTHONPATH
        loader_epoch(args.loader, args.store[0])
        return 0
    sys.path.insert(0, str(ROOT / "src"))
    if args.out is None:
        parser.error("give OUT, the folder for the corpora")
    if "baseline" in args.store and args.baseline is None:
        parser.error("--store baseline needs --baseline CHECKOUT (e.g. a git worktree)")
    rows = []
    for n in args.utterances:
        manifest = write_corpus(args.out / f"n{n}", n)
        pack_s = pack_store(manifest) if "disk" in args.store else None
        for store in args.store:
            row = {"utterances": n, "store": store, "pack_s": pack_s if store == "disk" else None}
            tree = args.baseline.resolve() if store == "baseline" else ROOT
            row["train"] = train_row(manifest, store, args.train_batches, tree)
            row["loader"] = loader_row(manifest, store, tree)
            if args.pair:
                row["pair"] = loader_row(manifest, store, tree, processes=2)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    header = ("N", "store", "peak RSS MB", "first step s", "steps/s", "loader seg/s",
              "loader RSS MB", "anon MB", "pair PSS MB")  # fmt: skip
    print("\n" + " ".join(f"{h:>12}" for h in header))
    for row in rows:
        train, loader = row["train"], row["loader"]
        pair = f"{sum(row['pair']['pss_mb']):>12.0f}" if "pair" in row else " " * 12
        print(
            f"{row['utterances']:>12} {row['store']:>12} {train['peak_rss_mb']:>12.0f} "
            f"{train['first_step_s']:>12.1f} {train['steps_per_s']:>12.2f} "
            f"{loader['segments_per_s']:>12.0f} {loader['peak_rss_mb'][0]:>12.0f} "
            f"{loader['anon_mb'][0]:>12.0f} {pair}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
