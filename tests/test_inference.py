"""The inference API (ser.inference): files, waveforms, preprocessing, checkpoint errors."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ser.data.audio import load_audio
from ser.data.features import LogMel3D
from ser.errors import CheckpointError
from ser.inference import Predictor
from ser.task import train


def test_directory_predictions_equal_the_test_step(trained, audio_dir):
    results, checkpoint = trained
    folder, names = audio_dir
    test_predictions = {p["id"]: p for p in results["predictions"]}
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    files = sorted(folder.iterdir())
    predictions = {Path(p.path).stem: p for p in predictor.predict_files(files, progress=False)}
    for name in names:
        assert predictions[name].error is None
        assert predictions[name].label == test_predictions[name]["pred"]
        for c, p in test_predictions[name]["probs"].items():
            assert predictions[name].probs[c] == pytest.approx(p, abs=1e-5)
    corrupt = predictions["corrupt"]
    assert corrupt.label is None and "corrupt.wav" in corrupt.error and corrupt.segments == 0
    nan = predictions["nan"]
    assert nan.label is None and nan.probs == {} and nan.duration_s is None
    assert "nan.wav" in nan.error and "100 non-finite sample(s)" in nan.error
    stereo = predictions["stereo"]
    assert stereo.error is None and stereo.label in predictor.class_names
    assert stereo.duration_s == pytest.approx(2.0, abs=1e-3)
    assert stereo.segments == 1
    assert sum(stereo.probs.values()) == pytest.approx(1.0, abs=1e-5)


def test_waveform_api_matches_the_test_step(trained, emodb_root):
    results, checkpoint = trained
    expected = next(p for p in results["predictions"] if p["id"] == "03a02Ta")
    wave, rate = sf.read(emodb_root / "wav" / "03a02Ta.wav", dtype="float32")
    prediction = Predictor.from_checkpoint(checkpoint)(wave, rate)
    assert prediction.label == expected["pred"]
    assert prediction.probs == pytest.approx(expected["probs"], abs=1e-5)


def test_long_recording_is_segmented_and_combined_like_evaluation(trained, emodb_root):
    _, checkpoint = trained
    predictor = Predictor.from_checkpoint(checkpoint)
    parts = [
        sf.read(emodb_root / "wav" / f"{n}.wav", dtype="float32")
        for n in ("03a01Fa", "03a05Wa", "03a04Nc")
    ]
    wave = np.concatenate([w for w, _ in parts])  # 6 s -> 598 frames -> first and last 300
    prediction = predictor(wave, parts[0][1])
    assert prediction.segments == 2
    assert prediction.segment_starts_s == [0.0, pytest.approx((598 - 300) * 0.01)]
    by_max = np.max([list(p.values()) for p in prediction.segment_probs], axis=0)
    assert list(prediction.probs.values()) == pytest.approx(list(by_max / by_max.sum()), abs=1e-6)


def test_original_preprocessing_travels_to_inference(compose_config, audio_dir, tmp_path):
    """features.peak_normalize and datamodule.padding=zeros (experiment=seed_iemocap) come
    from the checkpoint: predictions still equal the test step's."""
    cfg = compose_config(
        ["model=asrnn", "debug=fast", "trainer.max_epochs=3", "model.optimizer.lr=0.003",
         "features.peak_normalize=true", "datamodule.padding=zeros",
         f"datamodule.cache_dir={tmp_path / 'cache'}"],
        run_dir=tmp_path / "run",
    )  # fmt: skip
    results = train(cfg)
    checkpoint = Path(results["best_checkpoint"])
    meta = torch.load(checkpoint, map_location="cpu", weights_only=False)["SERDataModule"]
    assert meta["padding"] == "zeros" and meta["features"]["peak_normalize"] is True
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    assert predictor.padding == "zeros" and predictor.features.peak_normalize
    folder, names = audio_dir
    files = [folder / f"{name}.wav" for name in names]  # 2 s: one padded segment each
    expected = {p["id"]: p for p in results["predictions"]}
    for path, prediction in zip(files, predictor.predict_files(files, progress=False), strict=True):
        assert prediction.label == expected[path.stem]["pred"]
        assert prediction.probs == pytest.approx(expected[path.stem]["probs"], abs=1e-5)
    # what the network is fed: peak-normalised features, zero-padded before the z-score
    fed = []
    predictor.net.register_forward_pre_hook(lambda module, args: fed.append(args[0]))
    wave, rate = sf.read(files[0], dtype="float32")
    predictor(wave, rate)
    predictor(0.2 * wave, rate)  # the recording's gain does not matter
    audio = load_audio(files[0])
    features = LogMel3D()(audio / audio.abs().max())  # (3, T, 40), T < 300
    frames = features.shape[1]
    mean, std = meta["normalizer"]["mean"][:, None], meta["normalizer"]["std"][:, None]
    padded = torch.zeros(3, 300, 40)
    padded[:, :frames] = features
    for x in fed:
        assert x.shape == (1, 3, 300, 40)
        torch.testing.assert_close(x[0], (padded - mean) / std, rtol=1e-4, atol=1e-4)
    assert fed[0][0, 0, frames:].abs().min() > 0.5  # mean padding (the default) holds 0


def test_bad_checkpoints_are_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        Predictor.from_checkpoint(tmp_path / "missing.ckpt")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a ser checkpoint"):
        Predictor.from_checkpoint(foreign)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_text("hello")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        Predictor.from_checkpoint(garbage)


def test_checkpoint_of_an_older_layout_is_one_clear_error(trained, tmp_path):
    """Weights named as before the Dense layers (``linear.0.weight``) are refused clearly."""
    _, best = trained
    checkpoint = torch.load(best, map_location="cpu", weights_only=False)
    checkpoint["state_dict"] = {
        k.replace("net.linear.linear.", "net.linear.0."): v
        for k, v in checkpoint["state_dict"].items()
    }
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    with pytest.raises(CheckpointError, match=r"old\.ckpt: .*older network layout.*retrain"):
        Predictor.from_checkpoint(old)


def test_a_cpu_bf16_checkpoint_predicts_like_its_test_step(compose_config, tmp_path, emodb_root):
    # the test step ran under CPU bf16 autocast; fp32 inference differs by about 1e-3
    overrides = ["model=asrnn", "debug=fast", "trainer.max_epochs=3", "model.optimizer.lr=0.003"]
    cfg = compose_config([*overrides, "trainer.precision=bf16-mixed"], run_dir=tmp_path / "bf16")
    results = train(cfg)
    predictor = Predictor.from_checkpoint(results["best_checkpoint"], device="cpu")
    assert predictor.precision == "bf16-mixed"
    expected = results["predictions"]
    files = [emodb_root / "wav" / f"{p['id']}.wav" for p in expected]
    for prediction, test_step in zip(
        predictor.predict_files(files, progress=False), expected, strict=True
    ):
        assert prediction.label == test_step["pred"]
        assert prediction.probs == pytest.approx(test_step["probs"], abs=1e-5)
