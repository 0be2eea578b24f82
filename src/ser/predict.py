"""Inference on audio files with a trained checkpoint: the command line.

Command line (any file soundfile reads, any sample rate, stereo mixed down)::

    python -m ser.predict ckpt=PATH audio=FILE_OR_DIR [out=predictions.csv|.json]
        [windows=all|eval] [hop_s=1.0] [timeline=windows.csv|.json] [plot=timeline.png]
        [per_segment=true] [device=auto|cpu|cuda] [batch_size=64]

``windows=all`` (default) scores every window of the checkpoint's segment length,
``hop_s`` seconds apart, and streams the audio, so a recording of any length fits in memory
and counts whole; ``timeline=`` writes each window's probabilities and ``plot=`` draws them
over time. ``windows=eval`` scores the checkpoint's evaluation segments instead (the first
and last 3 s of a long utterance), as the test step did.

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

from ser.config import CONFIG_DIR
from ser.errors import (
    CheckpointError,  # noqa: F401 (import path promised by ser.errors)
    ConfigError,
    exit_on_user_error,
    require_batch_size,
)
from ser.inference import Prediction, Predictor
from ser.io import require_writable, write_json_atomic, write_text_atomic
from ser.options import require_complete
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


def timeline_rows(
    predictions: Sequence[Prediction], class_names: Sequence[str], *, window_s: float
) -> list[dict[str, Any]]:
    """One row per scored window: file, start and end (s), its top class, its probabilities."""
    return [
        {
            "path": p.path,
            "start_s": start,
            "end_s": round(min(start + window_s, p.duration_s or start + window_s), 4),
            "pred": max(probs, key=probs.get),
        }
        | {f"prob_{c}": probs[c] for c in class_names}
        for p in predictions
        for start, probs in zip(p.segment_starts_s, p.segment_probs, strict=True)
    ]


def write_timeline(rows_: list[dict[str, Any]], out: Path) -> None:
    """The timeline as JSON (by extension) or CSV."""
    if out.suffix.lower() == ".json":
        write_json_atomic(out, rows_)
    else:
        write_text_atomic(out, csv_text(rows_, ["path", "start_s", "end_s", "pred"]))


def write_plots(
    predictions: Sequence[Prediction], class_names: Sequence[str], out: Path
) -> list[Path]:
    """Class probabilities over time, one PNG per file: ``out`` itself for one file,
    ``<out stem>-<file stem>.png`` beside it for several."""
    from ser.io import write_bytes_atomic
    from ser.plots import save_figure, timeline_figure

    written = []
    usable = [p for p in predictions if p.segment_probs]
    for p in usable:
        path = out if len(usable) == 1 else out.with_name(f"{out.stem}-{Path(p.path).stem}.png")
        probs = {c: [w[c] for w in p.segment_probs] for c in class_names}
        figure = timeline_figure(p.segment_starts_s, probs, title=f"{Path(p.path).name}: {p.label}")
        write_bytes_atomic(path, save_figure(figure))
        written.append(path)
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
    if cfg.windows not in ("all", "eval"):
        raise ConfigError(
            f"windows={cfg.windows}: choose all (every window of the recording) or eval (the "
            "checkpoint's evaluation segments, as the test step scored utterances)"
        )
    if not isinstance(cfg.hop_s, int | float) or cfg.hop_s <= 0:
        raise ConfigError(f"hop_s={cfg.hop_s}: give the windows' step in seconds, e.g. 1.0")
    for option in ("out", "timeline", "plot"):
        if cfg.get(option):
            require_writable(cfg[option], option=option)
    if cfg.windows == "eval" and (cfg.timeline or cfg.plot):
        raise ConfigError("timeline= and plot= need windows=all (a window every hop_s seconds)")
    predictor = Predictor.from_checkpoint(cfg.ckpt, device=device, batch_size=cfg.batch_size)
    progress = cfg.progress and len(files) > 1
    if cfg.windows == "all":
        predictions = predictor.predict_files_windows(files, hop_s=cfg.hop_s, progress=progress)
    else:
        predictions = predictor.predict_files(files, progress=progress)
    table = rows(predictions, predictor.class_names)
    header = list(table[0])
    print(align_table([header, *([_format(r[k]) for k in header] for r in table)]))
    if cfg.out:
        for path in write_predictions(
            predictions, predictor.class_names, Path(cfg.out), per_segment=cfg.per_segment
        ):
            print(f"wrote {path}")
    if cfg.timeline:
        rate = predictor.features.frame_rate
        # utterance-level features: one window, the whole recording
        window_s = float("inf") if rate is None else predictor.segment_frames / rate
        timeline = timeline_rows(predictions, predictor.class_names, window_s=window_s)
        write_timeline(timeline, Path(cfg.timeline))
        print(f"wrote {cfg.timeline} ({len(timeline)} windows)")
    if cfg.plot:
        for path in write_plots(predictions, predictor.class_names, Path(cfg.plot)):
            print(f"wrote {path}")
    return predictions


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
