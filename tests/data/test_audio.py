"""Reading audio as mono 16 kHz float32 (ser/data/audio.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from ser.data.audio import AudioError, load_audio


def test_stereo_44k_becomes_mono_16k(tmp_path):
    rate, seconds = 44100, 0.5
    t = np.arange(round(rate * seconds)) / rate
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    right = 0.3 * np.sin(2 * np.pi * 1250 * t + 0.4)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), rate, subtype="PCM_16")

    wave = load_audio(path)
    assert wave.dtype == torch.float32
    assert wave.ndim == 1
    assert wave.numel() == math.ceil(t.size * 16000 / rate)

    stored, _ = sf.read(path, dtype="float32")  # what the file holds after 16-bit rounding
    mono = torch.from_numpy(stored).mean(dim=1)
    expected = torchaudio.functional.resample(mono, rate, 16000)
    torch.testing.assert_close(wave, expected, rtol=0, atol=1e-5)
    # not one channel alone
    one = torchaudio.functional.resample(torch.from_numpy(stored[:, 0]), rate, 16000)
    assert (wave - one).abs().max() > 0.1


def test_16k_mono_is_read_unchanged(tmp_path):
    data = (np.random.default_rng(0).uniform(-1, 1, 4000) * 32767).astype(np.int16)
    path = tmp_path / "mono.wav"
    sf.write(path, data, 16000, subtype="PCM_16")
    wave = load_audio(path)
    torch.testing.assert_close(wave, torch.from_numpy(data.astype(np.float32) / 32768))


def test_other_output_rate(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(16000, dtype=np.int16), 16000, subtype="PCM_16")
    assert load_audio(path, sample_rate=8000).numel() == 8000


def _unreadable(path):
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEnot really a wave file" * 4)


def _empty(path):
    path.write_bytes(b"")


def _no_samples(path):
    sf.write(path, np.zeros(0, dtype=np.int16), 16000, subtype="PCM_16")


def _too_short(path):
    sf.write(path, np.full(100, 1000, dtype=np.int16), 16000, subtype="PCM_16")


@pytest.mark.parametrize("make", [_unreadable, _empty, _no_samples, _too_short])
def test_bad_files_raise_audio_error_naming_the_file(tmp_path, make):
    path = tmp_path / f"bad{make.__name__}.wav"
    make(path)
    with pytest.raises(AudioError) as err:
        load_audio(path, min_samples=400)  # one 25 ms frame at 16 kHz
    assert str(path) in str(err.value)


def test_missing_file_is_an_audio_error(tmp_path):
    with pytest.raises(AudioError, match="nothere"):
        load_audio(tmp_path / "nothere.wav")


def test_minimum_length_is_checked_after_resampling(tmp_path):
    path = tmp_path / "short44k.wav"
    # 600 samples at 44.1 kHz = 13.6 ms: enough samples before resampling, too few after
    sf.write(path, np.full(600, 1000, dtype=np.int16), 44100, subtype="PCM_16")
    with pytest.raises(AudioError, match="shorter than one analysis frame"):
        load_audio(path, min_samples=400)
    assert load_audio(path, min_samples=200).numel() == math.ceil(600 * 16000 / 44100)


def test_content_errors_are_permanent_and_file_system_errors_are_not(tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio")
    with pytest.raises(AudioError) as content:
        load_audio(junk)
    assert content.value.permanent
    with pytest.raises(AudioError) as missing:
        load_audio(tmp_path / "vanished.wav")
    assert not missing.value.permanent and "vanished.wav" in str(missing.value)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused_naming_the_file(tmp_path, value):
    y = np.random.default_rng(1).uniform(-0.5, 0.5, 16000).astype(np.float32)
    y[1000:1100] = value
    path = tmp_path / "nan.wav"
    sf.write(path, y, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"100 non-finite sample\(s\).*sample 1000") as err:
        load_audio(path)
    assert str(path) in str(err.value)
    assert err.value.permanent  # remembered as a bad file, not retried on every run


def test_non_finite_samples_are_caught_before_resampling_spreads_them(tmp_path):
    y = np.zeros(22050, dtype=np.float32)
    y[5] = np.nan
    path = tmp_path / "nan22k.wav"
    sf.write(path, y, 22050, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"1 non-finite sample\(s\)"):
        load_audio(path)
