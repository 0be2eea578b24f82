"""3D log-mel features: static log-mel energies, their delta and delta-delta.

Follows the recipe of ``python_speech_features.logfbank`` as the original work used it
(pre-emphasis 0.97, 25 ms rectangular frames every 10 ms, 512-point FFT, power spectrum
divided by the FFT size, HTK-scale mel filters without area normalisation, natural log),
built from torchaudio, with deltas over N=2 frames each side. Two small differences remain:
torchaudio's triangular filters are evaluated on the exact mel scale rather than snapped to
FFT bins, and the last partial frame is dropped rather than zero-padded, so a waveform of
``n`` samples gives ``1 + (n - win) // hop`` frames (``win`` = 400, ``hop`` = 160 at 16 kHz).

``peak_normalize=True`` first divides each waveform by its largest absolute sample, as the
original did before ``logfbank`` (off by default; ``experiment=seed_iemocap`` turns it on).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
import torchaudio
from torch import nn

from ser.data.frontend import FrontEnd
from ser.errors import ConfigError

WINDOWS = {"rectangular": torch.ones, "hann": torch.hann_window, "hamming": torch.hamming_window}


class LogMel3D(FrontEnd):
    """Waveform ``(..., samples)`` at ``sample_rate`` -> ``(..., 3, frames, n_mels)`` float32.

    Args:
        sample_rate: input rate in Hz.
        n_mels: mel bands.
        win_ms: frame length in milliseconds.
        hop_ms: frame step in milliseconds.
        n_fft: FFT size.
        preemphasis: pre-emphasis coefficient (0 disables it).
        delta_width: N of the regression deltas (window ``2N + 1``).
        window: frame window, ``rectangular`` (logfbank's default), ``hann`` or ``hamming``.
        log_floor: energies are clamped to this before the log (silent frames stay finite).
        peak_normalize: divide each waveform by its peak ``max |x|`` first (the original's
            preprocessing; all-zero audio is left as it is). It makes the features
            independent of the recording's gain.

    Example:
        >>> extract = LogMel3D()
        >>> extract(torch.randn(32000)).shape  # 2 s at 16 kHz
        torch.Size([3, 198, 40])
    """

    kind = "logmel"
    channels = 3

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        n_mels: int = 40,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        n_fft: int = 512,
        preemphasis: float = 0.97,
        delta_width: int = 2,
        window: str = "rectangular",
        log_floor: float = 1e-10,
        peak_normalize: bool = False,
    ) -> None:
        super().__init__()
        if window not in WINDOWS:
            raise ConfigError(f"features.window={window!r}: choose one of {sorted(WINDOWS)}")
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.win_ms = win_ms
        self.hop_ms = hop_ms
        self.n_fft = n_fft
        self.preemphasis = preemphasis
        self.delta_width = delta_width
        self.window = window
        self.log_floor = log_floor
        self.peak_normalize = bool(peak_normalize)
        self.win_length = round(sample_rate * win_ms / 1000)
        self.hop_length = round(sample_rate * hop_ms / 1000)
        self.dims = n_mels
        self.frame_rate = sample_rate / self.hop_length
        self.min_samples = self.win_length
        if self.win_length > n_fft:
            raise ConfigError(
                f"features.win_ms={win_ms}: a frame of {self.win_length} samples exceeds "
                f"features.n_fft={n_fft}"
            )
        self.spectrogram = torchaudio.transforms.Spectrogram(
            n_fft=n_fft,
            win_length=self.win_length,
            hop_length=self.hop_length,
            window_fn=WINDOWS[window],
            center=False,
            power=2.0,
        )
        self.mel = torchaudio.transforms.MelScale(
            n_mels=n_mels, sample_rate=sample_rate, n_stft=n_fft // 2 + 1, mel_scale="htk"
        )

    def config(self) -> dict:
        """The parameters that determine the output (cache key, checkpoints).

        ``peak_normalize`` is listed only when on, so the default has the cache key (and
        finds the cached features) of a config without the option; when on, the key differs.
        """
        config = {
            "sample_rate": self.sample_rate,
            "n_mels": self.n_mels,
            "win_ms": self.win_ms,
            "hop_ms": self.hop_ms,
            "n_fft": self.n_fft,
            "preemphasis": self.preemphasis,
            "delta_width": self.delta_width,
            "window": self.window,
            "log_floor": self.log_floor,
        }
        if self.peak_normalize:
            config["peak_normalize"] = True
        return config

    def cache_key(self) -> dict:
        """:meth:`config` alone, without the front-end's class, so log-mel features cached
        under a key without it are found."""
        return self.config()

    def stream(self, path: str | Path, *, block_frames: int) -> tuple[int, Iterator[torch.Tensor]]:
        """Block by block from the file (:func:`ser.stream.stream_features`): memory stays
        that of one block, whatever the recording's length."""
        from ser.stream import audio_info, frame_count, stream_features

        total = frame_count(audio_info(path), self)
        return total, stream_features(path, self, block_frames=block_frames)

    @torch.no_grad()
    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        wave = waveform.float()
        if self.peak_normalize:
            wave = peak_normalize(wave)
        if self.preemphasis:
            wave = torchaudio.functional.preemphasis(wave, coeff=self.preemphasis)
        # torch.stft frames n_fft samples with the window centred in them; padding by the
        # difference makes frame k start at sample k * hop, as logfbank's framing does.
        left = (self.n_fft - self.win_length) // 2
        wave = nn.functional.pad(wave, (left, self.n_fft - self.win_length - left))
        power = self.spectrogram(wave) / self.n_fft
        static = self.mel(power).clamp_min(self.log_floor).log()
        width = 2 * self.delta_width + 1
        delta = torchaudio.functional.compute_deltas(static, win_length=width)
        delta2 = torchaudio.functional.compute_deltas(delta, win_length=width)
        return torch.stack([static, delta, delta2], dim=-3).transpose(-1, -2).contiguous()


def peak_normalize(waveform: torch.Tensor) -> torch.Tensor:
    """``waveform`` ``(..., samples)`` divided by its largest absolute sample (per waveform).

    An all-zero waveform is returned unchanged (no division by zero).

    Example:
        >>> peak_normalize(torch.tensor([0.1, -0.4, 0.2]))
        tensor([ 0.2500, -1.0000,  0.5000])
    """
    peak = waveform.abs().amax(dim=-1, keepdim=True)
    return waveform / torch.where(peak > 0, peak, torch.ones_like(peak))
