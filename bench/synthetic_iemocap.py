"""A synthetic corpus the size of IEMOCAP's improvised 4-class subset, for timing sweeps.

IEMOCAP is licensed and not here. Timing a sweep needs only its size and shape, so this
writes a manifest corpus with IEMOCAP's speakers, folds and class counts: 10 speakers
(5 sessions x F/M) with the per-speaker neu/hap/sad/ang counts of shared/docs/IEMOCAP.md
(2280 utterances), 16 kHz 16-bit mono wavs. Lengths are log-normal with a 4.5 s mean
(``--mean-seconds``; an assumption, as in bench/normalization_memory.py: the doc gives no
durations), clipped to 0.6-20 s. Each utterance is a harmonic tone whose pitch depends on
class and speaker, plus noise: learnable, but a UAR on it means nothing. It is for timing.

The manifest has a ``session`` column, so folds are IEMOCAP's: fold k tests one speaker and
validates on the other speaker of its session.

    python bench/synthetic_iemocap.py OUT [--scale 1.0] [--mean-seconds 4.5] [--seed 0]
    python sweep.py data=manifest data.manifest=OUT/manifest.csv [...]

``--scale`` multiplies every count (at least one utterance per speaker and class). Rerunning
with the same settings finds the corpus written and does nothing; other settings in the same
folder are refused.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

SAMPLE_RATE = 16_000
CLASSES = ("neu", "hap", "sad", "ang")
#: IEMOCAP improvised, per speaker: neu, hap, sad, ang (shared/docs/IEMOCAP.md, subset (a))
COUNTS = {
    "Ses01F": (119, 18, 43, 37),
    "Ses01M": (104, 15, 61, 25),
    "Ses02F": (90, 25, 63, 7),
    "Ses02M": (127, 29, 37, 15),
    "Ses03F": (95, 39, 108, 22),
    "Ses03M": (103, 21, 82, 68),
    "Ses04F": (51, 10, 41, 47),
    "Ses04M": (123, 21, 40, 37),
    "Ses05F": (151, 56, 73, 18),
    "Ses05M": (136, 50, 60, 13),
}
#: fundamental frequency per class (Hz) and pitch factor per gender
PITCH = {"neu": 120.0, "hap": 170.0, "sad": 100.0, "ang": 150.0}
GENDER_PITCH = {"F": 1.6, "M": 1.0}
MIN_SECONDS, MAX_SECONDS = 0.6, 20.0


def plan(*, scale: float, mean_seconds: float, seed: int) -> list[dict]:
    """One row per utterance: id, label, speaker, gender, session and length in samples."""
    rng = np.random.default_rng(seed)
    sigma = 0.6  # log-normal spread: most lengths between ~0.3x and ~3x the median
    mu = np.log(mean_seconds) - sigma**2 / 2  # so that the mean is mean_seconds
    rows = []
    for speaker, counts in COUNTS.items():
        for label, count in zip(CLASSES, counts, strict=True):
            for index in range(max(1, round(count * scale))):
                seconds = float(np.clip(rng.lognormal(mu, sigma), MIN_SECONDS, MAX_SECONDS))
                rows.append(
                    {
                        "id": f"{speaker}_{label}_{index:03d}",
                        "label": label,
                        "speaker": speaker,
                        "gender": speaker[-1],
                        "session": speaker[:5],
                        "samples": int(seconds * SAMPLE_RATE),
                    }
                )
    return rows


def waveform(row: dict, rng: np.random.Generator) -> np.ndarray:
    """A harmonic tone (3 partials, slow vibrato, fade in/out) plus noise, in [-1, 1]."""
    t = np.arange(row["samples"]) / SAMPLE_RATE
    f0 = PITCH[row["label"]] * GENDER_PITCH[row["gender"]] * rng.uniform(0.9, 1.1)
    phase = 2 * np.pi * f0 * (t + 0.002 * np.sin(2 * np.pi * 5 * t) / (2 * np.pi * 5))
    tone = sum(np.sin(h * phase) / h for h in (1, 2, 3))
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05)
    signal = 0.3 * tone * fade + 0.02 * rng.standard_normal(len(t))
    return np.clip(signal, -1.0, 1.0).astype(np.float32)


def write_corpus(out: Path, *, scale: float = 1.0, mean_seconds: float = 4.5, seed: int = 0):
    """Write the wavs and ``manifest.csv`` under ``out``; return the manifest's path.

    The manifest is written last (temp file, then rename): a folder without it is incomplete
    and is written again.
    """
    settings = {"scale": scale, "mean_seconds": mean_seconds, "seed": seed}
    manifest, meta = out / "manifest.csv", out / "synthetic.json"
    if manifest.exists():
        written = json.loads(meta.read_text()) if meta.exists() else None
        if written != settings:
            raise SystemExit(
                f"error: {out} already holds a corpus written with {written}, not {settings}; "
                "choose another folder or delete it"
            )
        return manifest
    rows = plan(scale=scale, mean_seconds=mean_seconds, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for row in tqdm(rows, desc=f"writing {out}", unit="wav"):
        path = out / "wav" / row["speaker"] / f"{row['id']}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, waveform(row, rng), SAMPLE_RATE, subtype="PCM_16")
    meta.write_text(json.dumps(settings))
    tmp = manifest.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "speaker", "gender", "session"])
        for row in rows:
            path = f"wav/{row['speaker']}/{row['id']}.wav"
            writer.writerow([path, row["label"], row["speaker"], row["gender"], row["session"]])
    os.replace(tmp, manifest)
    hours = sum(r["samples"] for r in rows) / SAMPLE_RATE / 3600
    print(f"{manifest}: {len(rows)} utterances, {hours:.2f} h of audio")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and write the corpus."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write (manifest.csv, wav/)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every count")
    parser.add_argument("--mean-seconds", type=float, default=4.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.scale <= 0 or args.mean_seconds <= 0:
        parser.error("--scale and --mean-seconds must be positive")
    write_corpus(args.out, scale=args.scale, mean_seconds=args.mean_seconds, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
