"""Long recordings in bounded memory: audio read in blocks, features per block.

A 10-hour recording is 2.3 GB of 16 kHz float32 samples, and more at its native rate.
:func:`stream_features` reads a file block by block (soundfile), resamples each block with a
margin on both sides, and computes its 3D log-mel frames with enough context frames that
pre-emphasis and the delta windows see what they would in the whole file. The blocks
concatenate to the whole file's features: exactly when the file is at the features' rate,
and up to the resampler's rounding otherwise. Memory stays that of one block, whatever the
length of the file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
import torch

from ser.data.audio import READ_ERRORS, _resampler, read_error
from ser.data.features import LogMel3D
from ser.errors import AudioError


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, read from its header."""

    rate: int
    samples: int  # per channel, at ``rate``

    @property
    def duration_s(self) -> float:
        return self.samples / self.rate


def audio_info(path: str | Path) -> AudioInfo:
    """The sample rate and length of ``path`` (:class:`~ser.errors.AudioError` if unreadable)."""
    try:
        info = sf.info(str(path))
    except READ_ERRORS as err:
        raise read_error(path, err) from err
    if info.frames <= 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    return AudioInfo(rate=int(info.samplerate), samples=int(info.frames))


def frame_count(info: AudioInfo, features: LogMel3D) -> int:
    """Frames :class:`~ser.data.features.LogMel3D` gives for the whole file."""
    samples = math.ceil(info.samples * features.sample_rate / info.rate)  # as resampling gives
    if samples < features.win_length:
        return 0
    return 1 + (samples - features.win_length) // features.hop_length


class BlockReader:
    """Samples ``[start, stop)`` of a file, mono at ``sample_rate``, read and resampled
    with a margin so that the block's edges match the whole file's resampling."""

    def __init__(self, path: str | Path, info: AudioInfo, *, sample_rate: int) -> None:
        self.path = Path(path)
        self.info = info
        self.sample_rate = sample_rate
        g = math.gcd(info.rate, sample_rate)
        # native sample a * unit_in lands exactly on output sample a * unit_out
        self.unit_in, self.unit_out = info.rate // g, sample_rate // g
        self.margin = self.unit_in * math.ceil(max(64, info.rate // 50) / self.unit_in)
        self.file = sf.SoundFile(str(path))

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Output samples ``[start, stop)`` (clipped to the file) as a 1-D float32 tensor."""
        if self.info.rate == self.sample_rate:
            return self._native(start, stop)
        first = max(0, (start // self.unit_out) * self.unit_in - self.margin)
        last = min(self.info.samples, -(-stop // self.unit_out) * self.unit_in + self.margin)
        wave = _resampler(self.info.rate, self.sample_rate)(self._native(first, last))
        offset = first // self.unit_in * self.unit_out
        return wave[start - offset : stop - offset]

    def _native(self, start: int, stop: int) -> torch.Tensor:
        self.file.seek(start)
        data = self.file.read(stop - start, dtype="float32", always_2d=True)
        wave = torch.from_numpy(data).mean(dim=1)
        finite = torch.isfinite(wave)
        if not bool(finite.all()):
            at = (start + int((~finite).nonzero()[0])) / self.info.rate
            raise AudioError(
                f"{self.path}: non-finite samples (NaN or Inf), the first at {at:.2f} s; "
                "repair or remove the file"
            )
        return wave

    def close(self) -> None:
        self.file.close()


def stream_features(
    path: str | Path, features: LogMel3D, *, block_frames: int = 6000
) -> Iterator[torch.Tensor]:
    """The features of ``path`` as consecutive time-major blocks ``(frames, 3, n_mels)``
    of at most ``block_frames`` frames (6000: one minute at 10 ms), in order.

    Concatenated, the blocks equal ``features(load_audio(path)).transpose(0, 1)``. With
    ``peak_normalize`` the file is read twice: once for its peak.
    """
    info = audio_info(path)
    total = frame_count(info, features)
    if total == 0:
        raise AudioError(
            f"{path}: {info.duration_s * 1000:.1f} ms of audio is shorter than one analysis "
            f"frame ({features.win_length / features.sample_rate * 1000:.1f} ms)"
        )
    plain = LogMel3D(**(features.config() | {"peak_normalize": False}))
    # pre-emphasis looks 1 sample back and each delta pass delta_width frames each way
    context = 2 * features.delta_width + 2
    hop, win = features.hop_length, features.win_length
    reader = BlockReader(path, info, sample_rate=features.sample_rate)
    try:
        peak = torch.tensor(1.0)
        if features.peak_normalize:
            peak = max(
                reader.read(f * hop, min(total, f + block_frames) * hop + win).abs().max()
                for f in range(0, total, block_frames)
            )
            peak = peak if peak > 0 else torch.tensor(1.0)
        for first in range(0, total, block_frames):
            last = min(total, first + block_frames)
            lo, hi = max(0, first - context), min(total, last + context)
            wave = reader.read(lo * hop, (hi - 1) * hop + win) / peak
            frames = plain(wave)  # (3, hi - lo, n_mels)
            yield frames[:, first - lo : last - lo].transpose(0, 1).contiguous()
    finally:
        reader.close()


def window_starts(total: int, *, length: int, hop: int) -> list[int]:
    """Start frames of every window of ``length`` frames, ``hop`` apart, over ``total``
    frames; the last one ends with the recording, so every frame is scored.

    Example:
        >>> window_starts(750, length=300, hop=100)
        [0, 100, 200, 300, 400, 450]
        >>> window_starts(300, length=300, hop=100)
        [0]
    """
    if total < length:
        return []
    starts = list(range(0, total - length + 1, hop))
    if starts[-1] != total - length:
        starts.append(total - length)
    return starts
