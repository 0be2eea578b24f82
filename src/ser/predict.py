"""Inference on audio files with a trained checkpoint: the command line.

Command line (any file soundfile reads, any sample rate, stereo mixed down)::

    python -m ser.predict ckpt=PATH audio=FILE_OR_DIR [out=predictions.csv|.json]
        [per_segment=true] [device=auto|cpu|cuda] [batch_size=64]

Prints one row per file: the predicted emotion, the probability of every class, the number of
segments used and the duration. Files that cannot be used (unreadable, empty, shorter than
one analysis frame, NaN or infinite samples) get their reason in the ``error`` column and
empty values elsewhere (``null`` in JSON, which is strict); the others are still predicted.

The preprocessing comes from the checkpoint, as the test step ran it; the Python API
(:class:`~ser.inference.Predictor`) is :mod:`ser.inference`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import hydra
import soundfile as sf
import torch
from omegaconf import DictConfig

from ser.config import CONFIG_DIR, exit_on_user_error, require_complete
from ser.errors import (
    CheckpointError,  # noqa: F401 (old import path, promised by ser.errors)
    ConfigError,
    require_batch_size,
)
from ser.inference import Prediction, Predictor
from ser.io import require_writable, write_json_atomic, write_text_atomic
from ser.text import align_table, csv_text

AUDIO_SUFFIXES = {f".{fmt.lower()}" for fmt in sf.available_formats()} | {".oga", ".opus"}


# ---------------------------------------------------------------------- command line
def audio_files(target: str | Path) -> list[Path]:
    """``target`` itself, or every audio file under a folder (sorted, recursive)."""
    target = Path(target).expanduser()
    if target.is_file():
        return [target]
    if target.is_dir():
        files = sorted(
            p for p in target.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
        )
        if not files:
            raise ConfigError(
                f"audio={target}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})"
            )
        return files
    raise ConfigError(f"audio={target} does not exist: give an audio file or a folder of them")


def rows(predictions: Sequence[Prediction], class_names: Sequence[str]) -> list[dict[str, Any]]:
    """One flat row per file (CSV and the printed table)."""
    return [
        {
            "path": p.path,
            "pred": p.label or "",
            **{f"prob_{c}": p.probs.get(c) for c in class_names},
            "segments": p.segments,
            "duration_s": p.duration_s,
            "error": p.error or "",
        }
        for p in predictions
    ]


def write_predictions(
    predictions: Sequence[Prediction], class_names: Sequence[str], out: Path, *, per_segment: bool
) -> list[Path]:
    """Write ``out`` as JSON (by extension) or CSV; per-segment CSV rows: ``<out>_segments.csv``."""
    if out.suffix.lower() == ".json":
        entries = []
        for p in predictions:
            entry = asdict(p)
            if not per_segment:
                entry.pop("segment_starts_s")
                entry.pop("segment_probs")
            entries.append(entry)
        write_json_atomic(out, entries)
        return [out]
    written = [out]
    write_text_atomic(out, csv_text(rows(predictions, class_names)))
    if per_segment:
        segment_rows = [
            {"path": p.path, "segment": i, "start_s": start}
            | {f"prob_{c}": probs[c] for c in class_names}
            for p in predictions
            for i, (start, probs) in enumerate(
                zip(p.segment_starts_s, p.segment_probs, strict=True)
            )
        ]
        segments_out = out.with_name(f"{out.stem}_segments.csv")
        write_text_atomic(segments_out, csv_text(segment_rows, ["path", "segment", "start_s"]))
        written.append(segments_out)
    return written


def _format(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@exit_on_user_error
def predict(cfg: DictConfig) -> list[Prediction]:
    """The command: predict, print the table, write ``cfg.out`` when given."""
    require_complete(cfg)
    files = audio_files(cfg.audio)
    device = None if cfg.device == "auto" else cfg.device
    if device and device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device}: no GPU is visible; use device=cpu or device=auto")
    require_batch_size("batch_size", cfg.batch_size)
    if cfg.out:
        require_writable(cfg.out, option="out")
    predictor = Predictor.from_checkpoint(cfg.ckpt, device=device, batch_size=cfg.batch_size)
    predictions = predictor.predict_files(files, progress=cfg.progress and len(files) > 1)
    table = rows(predictions, predictor.class_names)
    header = list(table[0])
    print(align_table([header, *([_format(r[k]) for k in header] for r in table)]))
    if cfg.out:
        for path in write_predictions(
            predictions, predictor.class_names, Path(cfg.out), per_segment=cfg.per_segment
        ):
            print(f"wrote {path}")
    return predictions


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
