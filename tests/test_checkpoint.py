"""Checkpoints (ser.checkpoint): config nodes, the module and data state Lightning saves,
format versions, and format-1 checkpoints of earlier versions."""

import functools
import json

import pytest
import torch
from hydra.utils import instantiate

from ser.checkpoint import DATA_KEY, factory_node, read
from ser.data.segments import FirstLast, PerClass, Sliding
from ser.errors import CheckpointError, ConfigError
from ser.inference import Predictor
from ser.models import ASRNN
from ser.module import SERModule
from ser.task import train


def test_nested_segment_policy_round_trips_through_json() -> None:
    policy = PerClass(default=FirstLast(), minority=Sliding(hop_s=0.5), minority_classes=["hap"])
    rebuilt = instantiate(json.loads(json.dumps(policy.config())))
    assert isinstance(rebuilt, PerClass)
    assert isinstance(rebuilt.default, FirstLast) and rebuilt.minority.hop_s == 0.5
    assert tuple(rebuilt.minority_classes) == ("hap",)
    frames, labels = [150, 420, 900], ["ang", "hap", "neu"]
    expected = policy.segment(frames, labels, length=300)
    got = rebuilt.segment(frames, labels, length=300)
    assert (got.start == expected.start).all() and (got.utterance == expected.utterance).all()


def test_a_network_node_rebuilds_the_network_with_its_weights() -> None:
    factory = functools.partial(ASRNN, n_mels=16, frames=40, window=4, shift=2)
    torch.manual_seed(0)
    net = factory(num_classes=3).eval()
    rebuilt = instantiate(json.loads(json.dumps(factory_node(factory))))(num_classes=3).eval()
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(2, 3, 40, 16)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), net(x))
    assert rebuilt.window_starts() == net.window_starts() == [0, 2, 4, 6, 8, 10, 12, 14, 16]


def test_load_from_checkpoint_rebuilds_the_module_that_was_tested(trained):
    results, best = trained
    module = SERModule.load_from_checkpoint(best).eval()
    assert isinstance(module.net, ASRNN) and module.name == "asrnn"
    assert module.class_names == results["classes"] and module.combine == "max"
    stored = torch.load(best, map_location="cpu", weights_only=False)
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, stored["state_dict"][key])
    with pytest.raises(ConfigError, match="has no optimizer"):
        module.configure_optimizers()  # rebuilt to evaluate, not to train


def test_a_checkpoint_with_since_renamed_or_retired_arguments_still_loads(trained, tmp_path):
    """Checkpoints written before ``use_class_weights`` was retired and ADSRNN's ``combine``
    became ``window_combine`` load with the arguments under their current names."""
    results, best = trained
    checkpoint = torch.load(best, map_location="cpu", weights_only=False)
    checkpoint["hyper_parameters"]["use_class_weights"] = True
    old = tmp_path / "before.ckpt"
    torch.save(checkpoint, old)
    module = SERModule.load_from_checkpoint(old).eval()
    assert module.class_names == results["classes"]
    adsrnn = {"_target_": "ser.models.ADSRNN", "_partial_": True, "combine": "recursive"}
    upgraded = read_checkpoint_with(tmp_path, checkpoint, net=adsrnn)["hyper_parameters"]
    assert upgraded["net"] == {
        "_target_": "ser.models.ADSRNN",
        "_partial_": True,
        "window_combine": "recursive",
    }
    assert "use_class_weights" not in upgraded


def read_checkpoint_with(folder, checkpoint: dict, **hparams) -> dict:
    """:func:`ser.checkpoint.read` of ``checkpoint`` with ``hparams`` changed."""
    path = folder / "changed.ckpt"
    changed = checkpoint | {"hyper_parameters": checkpoint["hyper_parameters"] | hparams}
    torch.save(changed, path)
    return read(path)


def format_1(checkpoint: dict) -> dict:
    """The layout of checkpoints written before format 2: everything under ``ser``, objects
    as ``{"target", "kwargs"}``, Lightning's hyper-parameters not rebuildable."""
    hparams, data = checkpoint["hyper_parameters"], checkpoint[DATA_KEY]
    net = {k: v for k, v in hparams["net"].items() if not k.startswith("_")}
    old = {k: v for k, v in checkpoint.items() if k not in {DATA_KEY, "ser"}}
    old["hyper_parameters"] = {
        "name": hparams["name"], "class_names": hparams["class_names"],
        "net": {"target": hparams["net"]["_target_"], "kwargs": net}, "center_loss": False,
        "mse_weight": hparams["mse_weight"], "combine": hparams["combine"],
        "use_class_weights": True,
    }  # fmt: skip
    old["ser"] = {
        "format": 1, "name": hparams["name"], "class_names": hparams["class_names"],
        "net": old["hyper_parameters"]["net"], "combine": hparams["combine"],
        "features": data["features"], "normalizer": data["normalizer"],
        "padding": data["padding"], "segment_frames": data["segment_frames"],
        "eval_segments": {"target": "ser.data.segments.FirstLast", "kwargs": {}},
        "corpus": data["corpus"], "fold": data["fold"],
        "precision": checkpoint["ser"]["precision"],
    }  # fmt: skip
    return old


def test_a_format_1_checkpoint_still_predicts_but_does_not_resume(
    trained, audio_dir, compose_config, tmp_path, capsys
):
    results, best = trained
    old = tmp_path / "format1.ckpt"
    torch.save(format_1(torch.load(best, map_location="cpu", weights_only=False)), old)
    folder, names = audio_dir
    files = [folder / f"{name}.wav" for name in names]
    predictor = Predictor.from_checkpoint(old, device="cpu")
    expected = {p["id"]: p for p in results["predictions"]}
    for path, prediction in zip(files, predictor.predict_files(files, progress=False), strict=True):
        assert prediction.label == expected[path.stem]["pred"]
        assert prediction.probs == pytest.approx(expected[path.stem]["probs"], abs=1e-5)

    cfg = compose_config(
        ["model=asrnn", "debug=fast", f"ckpt_path={old}", "trainer.max_epochs=4"],
        run_dir=tmp_path / "resumed",
    )
    with pytest.raises(SystemExit) as exit_:
        train(cfg)
    assert exit_.value.code == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert "the checkpoint has format 1, written by an older version of ser" in line
    assert not (tmp_path / "resumed" / "results.json").exists()


def test_an_unknown_format_is_refused_naming_the_file(trained, tmp_path):
    _, best = trained
    checkpoint = torch.load(best, map_location="cpu", weights_only=False)
    checkpoint["ser"]["format"] = 99
    newer = tmp_path / "newer.ckpt"
    torch.save(checkpoint, newer)
    with pytest.raises(CheckpointError, match=r"newer\.ckpt has checkpoint format 99"):
        read(newer)
    with pytest.raises(CheckpointError, match="format 99"):
        Predictor.from_checkpoint(newer)


def test_a_checkpoint_in_torch_s_legacy_serialisation_is_read(trained, tmp_path, audio_dir):
    """torch.save(..., _use_new_zipfile_serialization=False) files cannot be memory-mapped;
    they are still valid checkpoints and predict as the original does."""
    _, best = trained
    legacy = tmp_path / "legacy.ckpt"
    checkpoint = torch.load(best, map_location="cpu", weights_only=False)
    torch.save(checkpoint, legacy, _use_new_zipfile_serialization=False)
    assert read(legacy)["ser"]["format"] == read(best)["ser"]["format"]
    folder, names = audio_dir
    files = [folder / f"{name}.wav" for name in names[:3]]
    original = Predictor.from_checkpoint(best, device="cpu").predict_files(files, progress=False)
    again = Predictor.from_checkpoint(legacy, device="cpu").predict_files(files, progress=False)
    assert [p.probs for p in again] == [p.probs for p in original]
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"garbage\.ckpt is not a PyTorch checkpoint"):
        read(garbage)
