"""Memory and time of ``ser.predict`` on a long recording (streamed, every window scored).

Writes a recording of ``--minutes`` minutes (real Emo-DB speech repeated, at ``--rate`` Hz,
``--channels`` channels), trains a tiny checkpoint when ``--ckpt`` is not given, then runs
``python -m ser.predict windows=all timeline=...`` on a 3-second file and on the long one,
each in a fresh process, and reports each one's peak resident memory (``ru_maxrss``) and
wall time. "extra" is the long run's peak less the short run's: what the recording's length
costs above the model and the libraries. ``--windows eval`` measures the evaluation
segmenting instead (it reads the whole file into memory).

    python bench/long_audio.py [--minutes 60] [--rate 16000] [--channels 1] [--json row.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def write_recording(path: Path, *, minutes: float, rate: int, channels: int, emodb: Path) -> None:
    """Emo-DB utterances one after the other, written block by block (never whole in memory)."""
    import torch
    import torchaudio

    clips = []
    for wav in sorted((emodb / "wav").glob("*.wav"))[:40]:
        wave, source_rate = sf.read(wav, dtype="float32")
        clips.append(torchaudio.functional.resample(torch.from_numpy(wave), source_rate, rate))
    block = torch.cat(clips).numpy()
    total = int(minutes * 60 * rate)
    with sf.SoundFile(path, "w", samplerate=rate, channels=channels, subtype="PCM_16") as f:
        written = 0
        while written < total:
            part = block[: total - written]
            f.write(np.repeat(part[:, None], channels, axis=1) if channels > 1 else part)
            written += len(part)


def measure(command: list[str]) -> tuple[float, float]:
    """Peak resident memory (MB) and wall time (s) of ``command`` in a fresh process."""
    code = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *command], check=True, capture_output=True, text=True
    )
    peak_kb, wall = result.stdout.split()
    return int(peak_kb) / 1024, float(wall)


def train_checkpoint(folder: Path, emodb: Path) -> Path:
    """A tiny ASRNN (debug=fast) trained on Emo-DB fold 0."""
    env = os.environ | {"SER_EMODB_ROOT": str(emodb), "SER_CACHE_DIR": str(folder / "cache")}
    subprocess.run(
        [sys.executable, str(REPO / "train.py"), "debug=fast", "model=asrnn", "logger=csv",
         f"hydra.run.dir={folder / 'run'}", "print_config=false"],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    return json.loads((folder / "run" / "results.json").read_text())["best_checkpoint"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--windows", choices=["all", "eval"], default="all")
    parser.add_argument("--ckpt", type=Path, help="a checkpoint (default: train a tiny one)")
    parser.add_argument(
        "--emodb",
        type=Path,
        default=Path(os.environ.get("SER_EMODB_ROOT", REPO.parent / "shared/data/emodb")),
    )
    parser.add_argument("--json", type=Path, help="also write the row as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ckpt = args.ckpt or train_checkpoint(folder, args.emodb)
        short, long = folder / "short.wav", folder / "long.wav"
        write_recording(
            short, minutes=0.05, rate=args.rate, channels=args.channels, emodb=args.emodb
        )
        write_recording(
            long, minutes=args.minutes, rate=args.rate, channels=args.channels, emodb=args.emodb
        )
        rows = {}
        for name, audio in (("3 s", short), (f"{args.minutes:g} min", long)):
            command = [sys.executable, "-m", "ser.predict", f"ckpt={ckpt}", f"audio={audio}",
                       f"windows={args.windows}", "progress=false", "device=cpu"]  # fmt: skip
            if args.windows == "all":
                command.append(f"timeline={folder / 'timeline.csv'}")
            rows[name] = measure(command)
        windows = (
            sum(1 for _ in (folder / "timeline.csv").open()) - 1 if args.windows == "all" else None
        )
    (short_mb, short_s), (long_mb, long_s) = rows.values()
    print(f"{'audio':<10} {'peak RSS MB':>12} {'wall s':>8}")
    for name, (mb, wall) in rows.items():
        print(f"{name:<10} {mb:>12.0f} {wall:>8.1f}")
    print(f"extra for the long recording: {long_mb - short_mb:.0f} MB "
          f"({args.rate} Hz, {args.channels} channel(s), windows={args.windows}"
          f"{f', {windows} windows' if windows else ''})")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({
            "minutes": args.minutes, "rate": args.rate, "channels": args.channels,
            "windows": args.windows, "short_peak_mb": short_mb, "long_peak_mb": long_mb,
            "extra_mb": long_mb - short_mb, "short_wall_s": short_s, "long_wall_s": long_s,
            "n_windows": windows, "date": time.strftime("%Y-%m-%d"),
        }, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
