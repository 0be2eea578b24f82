"""Device-resident batches (ser/data/resident.py): the DataLoader's batches, gathered where
the split lives; run on the CPU device here (the same code path as on a GPU)."""

from __future__ import annotations

import pytest
import torch

from ser.augment import SpeedPerturbation, WaveformAugmentations
from ser.data import SERDataModule
from ser.data.balance import WeightedSampler
from ser.data.corpora import EmoDB, Manifest
from ser.data.resident import ResidentLoader
from ser.errors import ConfigError
from ser.task import train


def datamodule(corpus, cache_dir, **kwargs) -> SERDataModule:
    dm = SERDataModule(corpus=corpus, fold=0, cache_dir=cache_dir, progress=False, **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def batches(loader, seed: int) -> list[dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    return [dict(b) for _ in range(2) for b in loader]  # two epochs: two shuffles


def assert_same(got: list[dict], expected: list[dict]) -> None:
    assert len(got) == len(expected) > 1
    for a, b in zip(got, expected, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(
    "options",
    [{}, {"balance": "sampler", "padding": "zeros"}],
    ids=["shuffled", "weighted-sampler-zero-padding"],
)
def test_resident_batches_are_the_data_loaders(emodb_root, emodb_cache_dir, options):
    def build() -> SERDataModule:
        kwargs = dict(options, seed=3)
        if kwargs.pop("balance", None):
            kwargs["balance"] = WeightedSampler()  # its own generator: one per data module
        return datamodule(EmoDB(root=emodb_root, download=False), emodb_cache_dir, **kwargs)

    expected_dm, resident_dm = build(), build()
    for loader in ("train_dataloader", "val_dataloader"):
        expected = getattr(expected_dm, loader)()
        resident = ResidentLoader(getattr(resident_dm, loader)(), device="cpu")
        assert len(resident) == len(expected)
        assert_same(batches(resident, seed=11), batches(expected, seed=11))


def test_resident_batches_draw_the_same_speed_versions(emodb_manifest, tmp_path):
    speed = WaveformAugmentations(speed=SpeedPerturbation(factors=[0.9, 1.0, 1.1]))
    dm = datamodule(Manifest(manifest=emodb_manifest), tmp_path / "cache", waveform_augment=speed)
    expected = batches(dm.train_dataloader(), seed=5)
    got = batches(ResidentLoader(dm.train_dataloader(), device="cpu"), seed=5)
    assert_same(got, expected)
    # the draws matter: another seed reads other versions of the same segments
    other = batches(dm.train_dataloader(), seed=6)
    assert any(not torch.equal(a["x"], b["x"]) for a, b in zip(other, expected, strict=False))


def test_a_resident_run_gives_the_same_results(compose_config, tmp_path):
    results = {}
    for resident in ("false", "true"):
        cfg = compose_config(
            ["model=asrnn", "debug=fast", f"datamodule.resident={resident}"],
            run_dir=tmp_path / resident,
        )
        results[resident] = train(cfg)
    for key in ("val_uar_best", "best_epoch", "test_uar", "test_wa", "steps_trained"):
        assert results["true"][key] == results["false"][key], key
    for a, b in zip(results["true"]["predictions"], results["false"]["predictions"], strict=True):
        assert a["pred"] == b["pred"] and a["probs"] == pytest.approx(b["probs"], abs=1e-6)


def test_an_unknown_resident_value_names_the_option(emodb_root, tmp_path):
    with pytest.raises(ConfigError, match=r"datamodule.resident='yes': choose auto, true or"):
        SERDataModule(corpus=EmoDB(root=emodb_root, download=False), fold=0,
                      cache_dir=tmp_path, resident="yes")  # fmt: skip
