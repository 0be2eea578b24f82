"""ser.stream and Predictor.predict_windows: long recordings scored window by window, the
audio and features streamed in blocks, equal to computing the whole file at once."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from ser.data.audio import load_audio
from ser.data.features import LogMel3D
from ser.errors import AudioError
from ser.inference import Predictor
from ser.stream import stream_features, window_starts


@pytest.fixture(scope="module")
def long_recordings(emovo_root, tmp_path_factory):
    """About 40 s of EMOVO speech as one 16 kHz mono file, and the same as 44.1 kHz stereo."""
    import torchaudio

    folder = tmp_path_factory.mktemp("long")
    waves = [sf.read(p, dtype="float32")[0] for p in sorted((emovo_root / "f1").glob("*.wav"))[:12]]
    wave = np.concatenate(waves)
    sf.write(folder / "mono16k.wav", wave, 16000)
    wide = torchaudio.functional.resample(torch.from_numpy(wave), 16000, 44100).numpy()
    sf.write(folder / "stereo44k.flac", np.stack([wide, 0.25 * wide], axis=1), 44100)
    return folder


@pytest.mark.parametrize(("name", "tolerance"), [("mono16k.wav", 0.0), ("stereo44k.flac", 1e-3)])
@pytest.mark.parametrize("peak_normalize", [False, True])
def test_streamed_blocks_are_the_whole_file_s_features(
    long_recordings, name, tolerance, peak_normalize
):
    path = long_recordings / name
    features = LogMel3D(peak_normalize=peak_normalize)
    whole = features(load_audio(path)).transpose(0, 1)
    blocks = list(stream_features(path, features, block_frames=333))
    assert max(len(b) for b in blocks) == 333 and len(blocks) == -(-len(whole) // 333)
    assert torch.cat(blocks).shape == whole.shape
    assert float((torch.cat(blocks) - whole).abs().max()) <= tolerance


def whole_file_windows(predictor: Predictor, path, *, hop_s: float):
    """The oracle: the whole file's features at once, every window cut from them."""
    wave = load_audio(path, sample_rate=predictor.features.sample_rate)
    frames = predictor.normalizer(predictor.features(wave).transpose(0, 1))
    hop = round(hop_s * predictor.features.sample_rate / predictor.features.hop_length)
    starts = window_starts(len(frames), length=predictor.segment_frames, hop=hop)
    x = torch.stack([frames[s : s + predictor.segment_frames] for s in starts]).transpose(1, 2)
    with torch.inference_mode():
        return starts, predictor.net(x).exp()


def test_every_window_is_scored_as_the_whole_file_would_be(trained, long_recordings):
    _, checkpoint = trained
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", batch_size=7)
    path = long_recordings / "mono16k.wav"
    starts, oracle = whole_file_windows(predictor, path, hop_s=0.5)
    prediction = predictor.predict_windows(path, hop_s=0.5, block_frames=250)
    assert prediction.segments == len(starts) > 60
    assert prediction.segment_starts_s == [round(s * 0.01, 4) for s in starts]
    streamed = torch.tensor(
        [[p[c] for c in predictor.class_names] for p in prediction.segment_probs]
    )
    assert torch.allclose(streamed, oracle, atol=1e-5)
    # the recording's label combines every window, as the test step combines segments
    combined = oracle.max(dim=0).values if predictor.combine == "max" else oracle.mean(dim=0)
    combined = combined / combined.sum()
    assert [prediction.probs[c] for c in predictor.class_names] == pytest.approx(
        combined.tolist(), abs=1e-5
    )
    # the evaluation segments of the same file: its first and last 3 s only
    (first_last,) = predictor.predict_files([path], progress=False)
    assert first_last.segments == 2 and first_last.segment_starts_s[0] == 0.0


def test_a_short_recording_is_one_padded_segment_as_in_evaluation(trained, emodb_root):
    _, checkpoint = trained
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    path = emodb_root / "wav" / "03a01Fa.wav"  # 2 s: shorter than one 3 s window
    (evaluated,) = predictor.predict_files([path], progress=False)
    windowed = predictor.predict_windows(path)
    assert windowed.segments == 1 and windowed.probs == pytest.approx(evaluated.probs)


def test_unusable_audio_is_named(tmp_path, long_recordings):
    nan = tmp_path / "nan.wav"
    wave, rate = sf.read(long_recordings / "mono16k.wav", dtype="float32")
    wave[rate * 20] = np.nan
    sf.write(nan, wave, rate, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: non-finite samples .* the first at 20\.00 s"):
        list(stream_features(nan, LogMel3D()))
    with pytest.raises(AudioError, match="cannot read audio"):
        list(stream_features(tmp_path / "missing.wav", LogMel3D()))


def test_windows_further_apart_than_their_length_are_cut_where_they_start(trained, long_recordings):
    """hop_s=4 with 3 s windows: frames between windows are skipped, never shifted."""
    _, checkpoint = trained
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    path = long_recordings / "mono16k.wav"
    starts, oracle = whole_file_windows(predictor, path, hop_s=4.0)
    prediction = predictor.predict_windows(path, hop_s=4.0, block_frames=250)
    assert prediction.segment_starts_s == [round(s * 0.01, 4) for s in starts]
    streamed = torch.tensor(
        [[p[c] for c in predictor.class_names] for p in prediction.segment_probs]
    )
    assert torch.allclose(streamed, oracle, atol=1e-5)


def test_a_truncated_file_is_scored_as_far_as_it_goes_or_named(trained, long_recordings, tmp_path):
    _, checkpoint = trained
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    cut = tmp_path / "cut.wav"
    data = (long_recordings / "mono16k.wav").read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])  # the header still announces the whole file
    try:
        prediction = predictor.predict_windows(cut)
    except AudioError as err:
        assert "cut.wav" in str(err) and "truncated" in str(err)
    else:  # libsndfile read the header's length from the file's size
        assert prediction.segments == len(prediction.segment_probs) > 0
        assert prediction.duration_s == pytest.approx(sf.info(cut).duration)
