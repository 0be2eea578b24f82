"""Read audio files as mono 16 kHz float32 waveforms (soundfile + torchaudio resampling)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import soundfile as sf
import torch
import torchaudio

from ser.errors import AudioError

#: libsndfile's error code for failures of the file system rather than of the file's content
SF_ERR_SYSTEM = 2


#: what soundfile raises for a file it cannot read
READ_ERRORS = (RuntimeError, TypeError, OSError)


def read_error(path: str | Path, err: Exception) -> AudioError:
    """The :class:`~ser.errors.AudioError` for soundfile's ``err`` reading ``path``:
    permanent, except libsndfile's "System error" (code 2) and OSError (missing,
    unreadable, I/O trouble), which may pass."""
    transient = isinstance(err, OSError) or getattr(err, "code", None) == SF_ERR_SYSTEM
    return AudioError(f"{path}: cannot read audio ({err})", permanent=not transient)


def load_audio(path: str | Path, *, sample_rate: int = 16000, min_samples: int = 1) -> torch.Tensor:
    """Read ``path``, mix channels down to mono and resample to ``sample_rate``.

    Args:
        path: any file soundfile reads (wav, flac, ogg, ...).
        sample_rate: output rate in Hz.
        min_samples: shortest acceptable length after resampling (one analysis frame).

    Returns:
        A 1-D float32 tensor.

    Raises:
        AudioError: naming the file and what is wrong with it.

    Example:
        >>> wave = load_audio("../shared/data/emodb/wav/03a01Fa.wav")  # 22.05 kHz copy
        >>> wave.shape  # 2.0 s at 16 kHz
        torch.Size([32000])
    """
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except READ_ERRORS as err:
        raise read_error(path, err) from err
    if data.size == 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    return conform(
        torch.from_numpy(data).mean(dim=1),
        rate,
        sample_rate=sample_rate,
        min_samples=min_samples,
        source=str(path),
    )


def conform(
    wave: torch.Tensor, rate: int, *, sample_rate: int, min_samples: int, source: str
) -> torch.Tensor:
    """Check a mono waveform is finite, resample it to ``sample_rate`` and check it spans
    ``min_samples``.

    ``source`` names the recording in the error message. One NaN or infinite sample would
    turn the fold's normalisation statistics, and then most weights, into NaN, so it is
    refused here, where the file is known.
    """
    finite = torch.isfinite(wave)
    if not bool(finite.all()):
        bad = (~finite).nonzero().squeeze(1)
        raise AudioError(
            f"{source}: {len(bad)} non-finite sample(s) (NaN or Inf), the first at sample "
            f"{int(bad[0])} of {wave.numel()}; repair or remove the file"
        )
    if rate != sample_rate:
        wave = _resampler(rate, sample_rate)(wave)
    if wave.numel() < min_samples:
        raise AudioError(
            f"{source}: {wave.numel() / sample_rate * 1000:.1f} ms of audio is shorter than one "
            f"analysis frame ({min_samples / sample_rate * 1000:.1f} ms)"
        )
    return wave


@lru_cache(maxsize=8)
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    """One resampling kernel per rate pair, built once."""
    return torchaudio.transforms.Resample(orig_freq=orig, new_freq=new)
