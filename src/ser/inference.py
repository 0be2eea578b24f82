"""The inference API: a trained checkpoint with the preprocessing it was evaluated with.

Python::

    predictor = Predictor.from_checkpoint("outputs/.../checkpoints/best-epoch012-uar0.6120.ckpt")
    prediction = predictor(waveform, sample_rate)   # waveform: (samples,) or (channels, samples)
    prediction.label, prediction.probs              # 'ang', {'ang': 0.71, 'sad': 0.05, ...}
    predictor.predict_files(paths)                  # one Prediction per file, errors included

Everything comes from the checkpoint (:mod:`ser.checkpoint`): the network, class names and
combination rule (``SERModule.from_checkpoint``), and the data module's state: feature
config (the front-end and its settings), the fold's normalisation statistics and padding mode,
segment length and evaluation segmenting. A recording is segmented, padded and combined
exactly as the test split was, so a test utterance gets the test step's prediction.

The command line on top of it is :mod:`ser.predict`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from torch import nn
from tqdm import tqdm

from ser.checkpoint import DATA_KEY, read
from ser.data.audio import conform
from ser.data.dataset import SegmentDataset, frame_store
from ser.data.frontend import FrontEnd, frontend_from_record
from ser.data.normalization import Normalizer, check_padding
from ser.data.segments import SegmentPolicy
from ser.data.source import FeatureSource
from ser.errors import AudioError, CheckpointError
from ser.metrics import combine_segments
from ser.stream import audio_info, window_starts


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
        features: the front-end, waveform -> ``(channels, frames, dims)``.
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
        features: FrontEnd,
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
        self.source = FeatureSource(features, progress=False)
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
        from ser.module import SERModule  # Lightning: imported only to load checkpoints

        path = Path(path)
        checkpoint = read(path)
        try:
            module = SERModule.from_checkpoint(checkpoint)
        except RuntimeError as err:
            raise CheckpointError(
                f"{path}: its weights do not fit this version's network (a checkpoint of an "
                "older network layout, e.g. a baseline trained before the SEED.md layout fix); "
                f"retrain it with train.py ({str(err).splitlines()[0]})"
            ) from err
        data = checkpoint[DATA_KEY]
        return cls(
            net=module.net,
            class_names=module.class_names,
            features=frontend_from_record(data["features"]),
            normalizer=Normalizer.from_state_dict(data["normalizer"]),
            segment_frames=data["segment_frames"],
            segments=instantiate(data["eval_segments"]),
            combine=module.combine,
            padding=data["padding"],
            precision=checkpoint["ser"]["precision"],
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
            min_samples=self.features.min_samples,
            source="waveform",
        )
        duration = wave.numel() / self.features.sample_rate
        return self.predict_features([self.source.apply("waveform", wave)], [duration])[0]

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
                wave = self.source.waveform(path)
                features = self.source.apply(path, wave)
            except AudioError as err:
                predictions[index] = Prediction(None, {}, 0, None, error=str(err))
            else:
                chunk.append((index, features, wave.numel() / self.features.sample_rate))
                if len(chunk) >= self.batch_size:
                    flush()
        if chunk:
            flush()
        for path, prediction in zip(paths, predictions, strict=True):
            prediction.path = str(path)
        return predictions

    # ------------------------------------------------------------------ long recordings
    @torch.inference_mode()
    def predict_windows(
        self, path: str | Path, *, hop_s: float = 1.0, block_frames: int = 6000
    ) -> Prediction:
        """Score every window of ``path`` in bounded memory, whatever its length.

        Windows of the checkpoint's segment length, ``hop_s`` seconds apart, the last one
        ending with the recording (:func:`ser.stream.window_starts`), each scored by the
        network; the recording's label combines them all as the test step combines an
        utterance's segments. The features come block by block
        (:meth:`~ser.data.source.FeatureSource.stream`): with the log-mel front-end memory
        does not grow with the file's length. ``segment_starts_s`` / ``segment_probs`` are
        the timeline. A recording shorter than one window is scored as the test step scores
        a short utterance (one padded segment), and so is every recording with an
        utterance-level front-end (functionals: one vector per recording).
        """
        info = audio_info(path)
        rate = self.features.frame_rate
        if rate is None:
            return self._predict_whole(path, info.duration_s)
        length = self.segment_frames
        total, blocks = self.source.stream(path, block_frames=block_frames)
        starts = window_starts(total, length=length, hop=max(1, round(hop_s * rate)))
        if not starts:  # shorter than one window: one padded segment, as in evaluation
            return self._predict_whole(path, info.duration_s)
        bf16 = self.precision.startswith("bf16")
        pending = torch.empty(0, self.features.channels, self.features.dims)
        pending_start = 0  # frame index of pending[0]
        next_window, batch, seg_probs = 0, [], []

        def score(windows: list[torch.Tensor]) -> None:
            x = torch.stack(windows).transpose(1, 2).to(self.device)  # (B, C, L, dims)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                seg_probs.append(self.net(x).float().exp().cpu())
            windows.clear()

        for block in blocks:
            pending = torch.cat([pending, self.normalizer(block)])
            while next_window < len(starts) and (
                starts[next_window] + length <= pending_start + len(pending)
            ):
                offset = starts[next_window] - pending_start
                batch.append(pending[offset : offset + length])
                next_window += 1
                if len(batch) == self.batch_size:
                    score(batch)
            if next_window < len(starts):  # frames before the next window are done with
                drop = min(starts[next_window] - pending_start, len(pending))
                pending, pending_start = pending[drop:].clone(), pending_start + drop
        if next_window < len(starts):
            raise AudioError(
                f"{path}: its header announces {info.duration_s:.2f} s, but the audio ends "
                f"before window {next_window + 1} of {len(starts)}; the file is truncated"
            )
        if batch:
            score(batch)
        probs = torch.cat(seg_probs)
        utterance = combine_segments(probs, torch.zeros(len(probs), dtype=torch.long), 1,
                                     self.combine)[0].tolist()  # fmt: skip
        return Prediction(
            label=self.class_names[int(np.argmax(utterance))],
            probs=dict(zip(self.class_names, utterance, strict=True)),
            segments=len(starts),
            duration_s=info.duration_s,
            segment_starts_s=[round(start / rate, 4) for start in starts],
            segment_probs=[dict(zip(self.class_names, p, strict=True)) for p in probs.tolist()],
            path=str(path),
        )

    def _predict_whole(self, path: str | Path, duration_s: float) -> Prediction:
        """``path`` scored as the test step scores an utterance (its evaluation segments)."""
        prediction = self.predict_features([self.source.extract(path)], [duration_s])[0]
        prediction.path = str(path)
        return prediction

    def predict_files_windows(
        self, paths: Sequence[str | Path], *, hop_s: float = 1.0, progress: bool = True
    ) -> list[Prediction]:
        """:meth:`predict_windows` for every file; unusable files get ``error`` set."""
        predictions = []
        for path in tqdm(paths, desc="predict", unit="file", disable=not progress):
            try:
                predictions.append(self.predict_windows(path, hop_s=hop_s))
            except AudioError as err:
                predictions.append(Prediction(None, {}, 0, None, path=str(path), error=str(err)))
        return predictions

    # ------------------------------------------------------------------ features
    @torch.inference_mode()
    def predict_features(
        self, features: Sequence[torch.Tensor], durations: Sequence[float | None]
    ) -> list[Prediction]:
        """Predict recordings given their ``(channels, frames, dims)`` features (batched)."""
        frames, offsets, lengths = frame_store(features)
        rate = self.features.frame_rate
        table = self.segments.segment(
            lengths, [""] * len(lengths), length=self.segment_frames, frame_rate=rate
        )
        dataset = SegmentDataset(
            frames=frames,
            offsets=torch.from_numpy(offsets),
            labels=torch.zeros(len(features), dtype=torch.long),
            table=table,
            length=self.segment_frames,
            normalizer=self.normalizer,
            padding=self.padding,
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
        seconds_per_frame = 0.0 if rate is None else 1 / rate
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
                        round(float(s) * seconds_per_frame, 4) for s in table.start[mine.numpy()]
                    ],
                    segment_probs=[
                        dict(zip(self.class_names, p, strict=True))
                        for p in seg_probs[mine].tolist()
                    ],
                )
            )
        return predictions
