"""3D log-mel features (ser/data/features.py; SEED.md "Input")."""

from __future__ import annotations

import numpy as np
import pytest
import python_speech_features as psf
import torch
import torchaudio

from ser.data.audio import load_audio
from ser.data.features import LogMel3D, peak_normalize
from ser.errors import ConfigError

SR = 16000
WIN = SR * 25 // 1000  # 25 ms frames
HOP = SR * 10 // 1000  # 10 ms hop


def frames_for(num_samples: int) -> int:
    """The framing formula of features.py's docstring."""
    return 1 + (num_samples - WIN) // HOP


@pytest.fixture(scope="module")
def wave() -> torch.Tensor:
    rng = np.random.default_rng(3)
    t = np.arange(SR * 7 // 10 + 37) / SR
    x = 0.3 * np.sin(2 * np.pi * 300 * t) * np.sin(2 * np.pi * 3 * t) + 0.05 * rng.standard_normal(
        t.size
    )
    return torch.from_numpy(x.astype(np.float32))


@pytest.mark.parametrize("seconds", [0.025, 0.5, 2.0, 3.0])
def test_shape_dtype_and_frame_count(seconds):
    n = round(SR * seconds)
    out = LogMel3D()(torch.randn(n, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (3, frames_for(n), 40)
    assert out.dtype == torch.float32


def test_frame_count_just_below_and_above_a_hop():
    extract = LogMel3D()
    for n in (WIN + HOP - 1, WIN + HOP, WIN + HOP + 1):
        assert extract(torch.zeros(n)).shape[1] == frames_for(n)


def test_batched_input_gives_the_same_features(wave):
    extract = LogMel3D()
    batch = extract(torch.stack([wave, wave.flip(0)]))
    assert batch.shape == (2, 3, frames_for(wave.numel()), 40)
    torch.testing.assert_close(batch[0], extract(wave))
    torch.testing.assert_close(batch[1], extract(wave.flip(0)))


def test_static_channel_equals_a_direct_log_mel_computation(wave):
    """Frame k covers samples [k*hop, k*hop + win): pre-emphasis, |FFT|^2/512, mel, log."""
    x = wave.double().numpy()
    emphasised = np.append(x[0], x[1:] - 0.97 * x[:-1])
    n = frames_for(x.size)
    frames = np.stack([emphasised[k * HOP : k * HOP + WIN] for k in range(n)])
    power = np.abs(np.fft.rfft(frames, 512)) ** 2 / 512
    fbank = torchaudio.functional.melscale_fbanks(
        257, 0.0, SR / 2, 40, SR, norm=None, mel_scale="htk"
    ).double()
    expected = torch.from_numpy(power).matmul(fbank).clamp_min(1e-10).log().float()
    torch.testing.assert_close(LogMel3D()(wave)[0], expected, rtol=1e-4, atol=1e-4)


def test_deltas_are_python_speech_features_deltas_of_the_previous_channel(wave):
    """The original's delta: ``python_speech_features.delta`` with N=2 (edge frames repeated)."""
    out = LogMel3D()(wave).double().numpy()
    static, delta, delta2 = out  # (time, n_mels) each
    np.testing.assert_allclose(delta, psf.delta(static, 2), atol=1e-5)
    np.testing.assert_allclose(delta2, psf.delta(delta, 2), atol=1e-5)
    assert np.abs(delta).max() > 0 and np.abs(delta2).max() > 0


@pytest.fixture(scope="module")
def emodb_speech(emodb_root) -> list[torch.Tensor]:
    """20 real Emo-DB recordings (every 27th file), at 16 kHz as ser reads them."""
    paths = sorted((emodb_root / "wav").glob("*.wav"))[::27][:20]
    return [load_audio(p, sample_rate=SR, min_samples=WIN) for p in paths]


def test_static_log_mel_is_python_speech_features_logfbank_up_to_the_documented_differences(
    emodb_speech,
):
    """Golden test against the original's ``python_speech_features.logfbank`` on real speech.

    Documented differences: torchaudio's mel filters on the exact mel scale (logfbank snaps
    them to FFT bins), the last partial frame dropped (logfbank zero-pads it), and the log
    floor (1e-10 here, machine epsilon there). On speech frames (within 6 nats of the file's
    loudest), they leave a median difference of 0.05 nats and a mean of 0.12 on this copy;
    a Hann window, no pre-emphasis, an 11 ms hop or 20 ms frames give medians of 0.25-2.0.
    """
    medians, means = [], []
    for wave in emodb_speech:
        ours = LogMel3D()(wave)[0].double().numpy()
        reference = psf.logfbank(wave.double().numpy(), SR, nfilt=40, nfft=512)
        partial = (wave.numel() - WIN) % HOP != 0
        assert len(reference) == len(ours) + partial  # logfbank's zero-padded last frame
        reference = reference[: len(ours)]
        energy = np.log(np.exp(reference).sum(axis=1))
        speech = energy > energy.max() - 6
        difference = np.abs(ours[speech] - reference[speech])
        medians.append(np.median(difference))
        means.append(difference.mean())
    assert np.mean(medians) < 0.07 and np.mean(means) < 0.16


def test_delta_width_changes_the_delta_window(wave):
    out = LogMel3D(delta_width=1)(wave)
    expected = torchaudio.functional.compute_deltas(out[0].T, win_length=3)
    torch.testing.assert_close(out[1].T, expected)


def test_silence_stays_finite():
    out = LogMel3D()(torch.zeros(SR // 2))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], torch.full_like(out[0], float(np.log(1e-10))))


@pytest.mark.parametrize(
    "change",
    [
        {"sample_rate": 8000},
        {"n_mels": 64},
        {"win_ms": 20.0},
        {"hop_ms": 5.0},
        {"n_fft": 1024},
        {"preemphasis": 0.0},
        {"delta_width": 3},
        {"window": "hann"},
        {"log_floor": 1e-6},
    ],
)
def test_changing_a_parameter_changes_config(change):
    base = LogMel3D().config()
    changed = LogMel3D(**change).config()
    assert changed != base
    assert {k for k in base if base[k] != changed[k]} == set(change)
    assert LogMel3D().config() == base


def test_parameters_that_change_the_output_are_in_config(wave):
    # a config difference is what tells the cache to recompute: every parameter above
    # also changes the features themselves
    base = LogMel3D()(wave)
    for change in ({"preemphasis": 0.0}, {"window": "hamming"}, {"log_floor": 1e-3}):
        assert not torch.equal(LogMel3D(**change)(wave), base), change


def test_bad_options():
    with pytest.raises(ConfigError, match=r"features\.window='triangle': choose one of"):
        LogMel3D(window="triangle")
    with pytest.raises(ConfigError, match=r"features\.win_ms=50\.0: .* 800 samples .*n_fft=512"):
        LogMel3D(win_ms=50.0)


# ------------------------------------------------------------- peak normalisation (option)


def test_peak_normalize_equals_the_features_of_the_peak_normalised_waveform(wave):
    loud = wave * 3.7
    by_hand = torch.from_numpy(loud.double().numpy() / np.abs(loud.double().numpy()).max())
    assert by_hand.abs().max().item() == pytest.approx(1.0)
    assert peak_normalize(loud).abs().max().item() == pytest.approx(1.0)
    torch.testing.assert_close(peak_normalize(loud), by_hand.float())
    out = LogMel3D(peak_normalize=True)(loud)
    torch.testing.assert_close(out, LogMel3D()(by_hand.float()), rtol=1e-5, atol=1e-4)
    # it changes the features, and makes them independent of the gain
    assert not torch.allclose(out, LogMel3D()(loud), atol=1e-2)
    torch.testing.assert_close(
        LogMel3D(peak_normalize=True)(wave * 0.05), out, rtol=1e-5, atol=1e-4
    )


def test_peak_normalize_is_per_waveform_in_a_batch(wave):
    extract = LogMel3D(peak_normalize=True)
    batch = extract(torch.stack([wave, 10 * wave.flip(0)]))
    torch.testing.assert_close(batch[0], extract(wave))
    torch.testing.assert_close(batch[1], extract(wave.flip(0)), rtol=1e-5, atol=1e-4)


def test_peak_normalize_of_silence_is_finite():
    silence = torch.zeros(2, SR // 2)
    assert torch.equal(peak_normalize(silence), silence)
    out = LogMel3D(peak_normalize=True)(silence)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, LogMel3D()(silence))


def test_peak_normalize_is_in_config_only_when_on():
    base = LogMel3D().config()
    on = LogMel3D(peak_normalize=True).config()
    assert "peak_normalize" not in base  # the default keeps the cache key of earlier versions
    assert on == {**base, "peak_normalize": True}
    assert LogMel3D(**on).peak_normalize and not LogMel3D(**base).peak_normalize
