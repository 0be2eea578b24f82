"""Inference on audio files with a trained checkpoint.

Command line (any file soundfile reads, any sample rate, stereo mixed down)::

    python -m ser.predict ckpt=PATH audio=FILE_OR_DIR [out=predictions.csv|.json]
        [per_segment=true] [device=auto|cpu|cuda] [batch_size=64]

Prints one row per file: the predicted emotion, the probability of every class, the number of
segments used and the duration. Files that cannot be used (unreadable, empty, shorter than
one analysis frame, NaN or infinite samples) get their reason in the ``error`` column and
empty values elsewhere (``null`` in JSON, which is strict); the others are still predicted.

Python::

    predictor = Predictor.from_checkpoint("outputs/.../checkpoints/best-epoch012-uar0.6120.ckpt")
    prediction = predictor(waveform, sample_rate)   # waveform: (samples,) or (channels, samples)
    prediction.label, prediction.probs              # 'ang', {'ang': 0.71, 'sad': 0.05, ...}

Everything comes from the checkpoint (``checkpoint["ser"]``, written by ``SERModule``): the
network and its arguments, class names, feature config (peak normalisation included), the
fold's normalisation statistics and padding mode, segment length, evaluation segmenting and
combination rule. A recording is segmented, padded and combined exactly as the test split
was, so a test utterance gets the test step's prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import soundfile as sf
import torch
from omegaconf import DictConfig
from torch import nn
from tqdm import tqdm

from ser.config import CONFIG_DIR, exit_on_user_error, require_complete
from ser.data.audio import conform, load_audio
from ser.data.dataset import SegmentDataset, frame_store
from ser.data.features import LogMel3D
from ser.data.normalization import Normalizer, check_padding
from ser.data.segments import SegmentPolicy
from ser.errors import AudioError, CheckpointError, ConfigError, require_batch_size
from ser.io import write_json_atomic, write_text_atomic
from ser.metrics import combine_segments
from ser.specs import from_spec
from ser.text import align_table, csv_text

AUDIO_SUFFIXES = {f".{fmt.lower()}" for fmt in sf.available_formats()} | {".oga", ".opus"}


@dataclass
class Prediction:
    """The model's answer for one recording (or the reason there is none).

    ``segment_probs`` holds one ``{class: p}`` per segment and ``segment_starts_s`` where each
    segment starts, in seconds.
    """

    label: str | None
    probs: dict[str, float]
    segments: int
    duration_s: float | None
    segment_starts_s: list[float] = field(default_factory=list)
    segment_probs: list[dict[str, float]] = field(default_factory=list)
    path: str | None = None
    error: str | None = None


class Predictor:
    """A trained network with the preprocessing it was evaluated with.

    Args:
        net: the network (log-probabilities out).
        class_names: output classes, in order.
        features: waveform -> ``(3, T, n_mels)``.
        normalizer: the training fold's statistics.
        segment_frames: segment length in frames.
        segments: evaluation segmenting policy.
        combine: ``max`` or ``mean`` over an utterance's segments.
        padding: padding of short segments, ``mean`` or ``zeros`` (``datamodule.padding``).
        precision: Lightning precision of the evaluation (``bf16-mixed``: bf16 autocast on
            the device, as the test step ran).
        device: where the network runs.
        batch_size: segments per forward pass.
        checkpoint: the file it was loaded from (set by :meth:`from_checkpoint`), for the
            record.
    """

    def __init__(
        self,
        *,
        net: nn.Module,
        class_names: Sequence[str],
        features: LogMel3D,
        normalizer: Normalizer,
        segment_frames: int,
        segments: SegmentPolicy,
        combine: str,
        padding: str = "mean",
        precision: str = "32-true",
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        checkpoint: str | Path | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.class_names = list(class_names)
        self.features = features
        self.normalizer = normalizer
        self.segment_frames = segment_frames
        self.segments = segments
        self.combine = combine
        self.padding = check_padding(padding)
        self.precision = precision
        self.batch_size = batch_size
        self.checkpoint = None if checkpoint is None else Path(checkpoint)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, *, device: str | None = None, batch_size: int = 64
    ) -> Predictor:
        """Load a ``train.py`` checkpoint; ``device`` defaults to CUDA when available."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} does not exist")
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        except Exception as err:
            raise CheckpointError(f"{path} is not a PyTorch checkpoint ({err})") from err
        meta = checkpoint.get("ser") if isinstance(checkpoint, dict) else None
        if not meta or "state_dict" not in checkpoint:
            raise CheckpointError(
                f"{path} is not a ser checkpoint (no 'ser' metadata): use a .ckpt written by "
                "train.py (<run dir>/checkpoints/)"
            )
        class_names = meta["class_names"]
        net = from_spec(meta["net"], num_classes=len(class_names))
        prefix = "net."
        weights = {
            k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
        }
        try:
            net.load_state_dict(weights)
        except RuntimeError as err:
            raise CheckpointError(
                f"{path}: its weights do not fit this version's {type(net).__name__} (a "
                "checkpoint of an older network layout, e.g. a baseline trained before the "
                f"SEED.md layout fix); retrain it with train.py ({str(err).splitlines()[0]})"
            ) from err
        return cls(
            net=net,
            class_names=class_names,
            features=LogMel3D(**meta["features"]),
            normalizer=Normalizer.from_state_dict(meta["normalizer"]),
            segment_frames=meta["segment_frames"],
            segments=from_spec(meta["eval_segments"]),
            combine=meta["combine"],
            padding=meta.get("padding", "mean"),  # checkpoints before the option: mean
            precision=meta.get("precision", "32-true"),
            device=device or ("cuda" if torch.cuda.is_available() else "cpu"),
            batch_size=batch_size,
            checkpoint=path,
        )

    # ------------------------------------------------------------------ waveforms
    def __call__(self, waveform: torch.Tensor | np.ndarray, sample_rate: int) -> Prediction:
        """Predict one recording: ``(samples,)`` or ``(channels, samples)`` at any rate."""
        wave = torch.as_tensor(waveform, dtype=torch.float32)
        if wave.ndim == 2:
            wave = wave.mean(dim=0)
        if wave.ndim != 1 or wave.numel() == 0:
            raise AudioError(
                "expected a non-empty (samples,) or (channels, samples) waveform, "
                f"got shape {tuple(wave.shape)}"
            )
        wave = conform(
            wave,
            sample_rate,
            sample_rate=self.features.sample_rate,
            min_samples=self.features.win_length,
            source="waveform",
        )
        duration = wave.numel() / self.features.sample_rate
        return self.predict_features([self.features(wave)], [duration])[0]

    def predict_files(
        self, paths: Sequence[str | Path], *, progress: bool = True
    ) -> list[Prediction]:
        """Predict every file; unusable files get a :class:`Prediction` with ``error`` set."""
        predictions: list[Prediction | None] = [None] * len(paths)
        chunk: list[tuple[int, torch.Tensor, float]] = []

        def flush() -> None:
            results = self.predict_features([f for _, f, _ in chunk], [d for _, _, d in chunk])
            for (index, _, _), prediction in zip(chunk, results, strict=True):
                predictions[index] = prediction
            chunk.clear()

        for index, path in enumerate(
            tqdm(paths, desc="predict", unit="file", disable=not progress)
        ):
            try:
                wave = load_audio(
                    path,
                    sample_rate=self.features.sample_rate,
                    min_samples=self.features.win_length,
                )
            except AudioError as err:
                predictions[index] = Prediction(None, {}, 0, None, error=str(err))
            else:
                chunk.append((index, self.features(wave), wave.numel() / self.features.sample_rate))
                if len(chunk) >= self.batch_size:
                    flush()
        if chunk:
            flush()
        for path, prediction in zip(paths, predictions, strict=True):
            prediction.path = str(path)
        return predictions

    # ------------------------------------------------------------------ features
    @torch.inference_mode()
    def predict_features(
        self, features: Sequence[torch.Tensor], durations: Sequence[float]
    ) -> list[Prediction]:
        """Predict recordings given their ``(3, T, n_mels)`` features (batched over all)."""
        frames, offsets, lengths = frame_store(features)
        table = self.segments.segment(lengths, [""] * len(lengths), length=self.segment_frames)
        dataset = SegmentDataset(
            frames=self.normalizer(frames),
            offsets=torch.from_numpy(offsets),
            labels=torch.zeros(len(features), dtype=torch.long),
            table=table,
            length=self.segment_frames,
            padding=self.normalizer.padding_frame(self.padding),
        )
        bf16 = self.precision.startswith("bf16")
        seg_probs = []
        for start in range(0, len(dataset), self.batch_size):
            batch = dataset.__getitems__(range(start, min(start + self.batch_size, len(dataset))))
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                log_probs = self.net(batch["x"].to(self.device))
            seg_probs.append(log_probs.float().exp().cpu())
        seg_probs = torch.cat(seg_probs)
        seg_to_utt = torch.from_numpy(table.utterance)
        utt_probs = combine_segments(seg_probs, seg_to_utt, len(features), self.combine)
        hop_s = self.features.hop_length / self.features.sample_rate
        predictions = []
        for index, duration in enumerate(durations):
            mine = (seg_to_utt == index).nonzero().squeeze(1)
            probs = utt_probs[index].tolist()
            predictions.append(
                Prediction(
                    label=self.class_names[int(np.argmax(probs))],
                    probs=dict(zip(self.class_names, probs, strict=True)),
                    segments=len(mine),
                    duration_s=duration,
                    segment_starts_s=[
                        round(float(s) * hop_s, 4) for s in table.start[mine.numpy()]
                    ],
                    segment_probs=[
                        dict(zip(self.class_names, p, strict=True))
                        for p in seg_probs[mine].tolist()
                    ],
                )
            )
        return predictions


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
