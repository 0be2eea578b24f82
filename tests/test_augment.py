"""Training augmentation (ser/augment.py): batch-level masks and mixup, waveform versions.

The data module's side of speed and noise (cached versions, draws, statistics) is tested in
tests/data/test_datamodule.py; a real fit with each in tests/test_module.py.
"""

import json
import math
from typing import ClassVar

import pytest
import torch
from torch.overrides import TorchFunctionMode

from ser.augment import (
    Augmentations,
    BatchAugmentation,
    Mixup,
    Noise,
    NoisePerturbation,
    SpecAugment,
    Speed,
    SpeedPerturbation,
    WaveformAugmentations,
    WaveformVariant,
)
from ser.data import SERDataModule
from ser.data.corpora import Manifest
from ser.errors import ConfigError, user_error
from ser.losses import smooth_labels, soft_nll_loss
from ser.task import train

SHAPE = (16, 3, 300, 40)  # (segments, channels, frames, mel bands)


def draw(transform: BatchAugmentation, x, target, seed: int):
    torch.manual_seed(seed)
    return transform(x, target)


# ----------------------------------------------------------------------------- SpecAugment


def masked_ranges(mask: torch.Tensor) -> list[tuple[int, int]]:
    """``(first, width)`` of each run of True in a 1-d boolean tensor."""
    runs, start = [], None
    for i, m in enumerate([*mask.tolist(), False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


@pytest.mark.parametrize("axis", ["freq", "time"])
def test_specaugment_masks_whole_bands_or_frames_in_all_channels(axis):
    freq = axis == "freq"
    transform = SpecAugment(
        freq_masks=1 if freq else 0, freq_width=20, time_masks=0 if freq else 1, time_width=150
    )
    x = torch.randn(SHAPE).abs() + 1  # no zeros of its own
    out, _ = draw(transform, x, torch.zeros(16, dtype=torch.long), seed=0)
    assert out.shape == SHAPE
    zero = out == 0
    # the same positions in the static, delta and delta-delta channels
    assert torch.equal(zero[:, 0], zero[:, 1]) and torch.equal(zero[:, 0], zero[:, 2])
    # a segment's channel is (frames, n_mels): a mel mask zeroes whole mel columns (every
    # frame of the band), a time mask whole frames (every band)
    across = 1 if freq else 2
    lines = zero[:, 0].all(dim=across)  # (segments, bands) or (segments, frames)
    assert lines.shape[1] == (40 if freq else 300)
    assert torch.equal(lines, zero[:, 0].any(dim=across))
    widths = []
    for segment in lines:
        runs = masked_ranges(segment)
        assert len(runs) <= 1  # one contiguous mask
        widths += [w for _, w in runs]
    assert max(widths) < (20 if freq else 150) and len(widths) > 8
    assert len({tuple(r.nonzero().flatten().tolist()) for r in lines}) > 4  # per segment
    assert torch.equal(out[~zero], x[~zero])


def test_specaugment_is_off_in_eval_and_seeded():
    transform = SpecAugment(time_width=80)
    x, y = torch.randn(SHAPE), torch.arange(16) % 4
    first, target = draw(transform, x, y, seed=3)
    assert target is y and not torch.equal(first, x)
    assert torch.equal(draw(transform, x, y, seed=3)[0], first)
    assert not torch.equal(draw(transform, x, y, seed=4)[0], first)
    transform.eval()
    out, target = draw(transform, x, y, seed=3)
    assert out is x and target is y


# ----------------------------------------------------------------------------- Mixup


def test_mixup_mixes_segments_and_targets_alike():
    x, onehot = torch.randn(8, 3, 300, 40), torch.eye(8)  # one class per segment
    mixed, soft = draw(Mixup(alpha=0.4), x, onehot, seed=0)
    assert mixed.shape == x.shape and soft.shape == (8, 8)
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(8))
    assert (soft >= 0).all()
    assert (soft.max(dim=1).values < 1).sum() >= 4  # most segments really mixed
    for i in range(8):
        # the target says which segments were mixed and how much of each
        weights = soft[i]
        expected = (weights[:, None, None, None] * x).sum(dim=0)
        torch.testing.assert_close(mixed[i], expected, rtol=1e-5, atol=1e-5)
        assert weights[i] >= 0 and (weights > 0).sum() <= 2


def test_mixup_is_off_in_eval_seeded_and_needs_distributions():
    mixup = Mixup()
    x, onehot = torch.randn(8, 3, 300, 40), torch.eye(4)[torch.arange(8) % 4]
    first = draw(mixup, x, onehot, seed=1)
    again = draw(mixup, x, onehot, seed=1)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(draw(mixup, x, onehot, seed=2)[0], first[0])
    with pytest.raises(ValueError, match="class distributions"):
        mixup(x, torch.arange(8) % 4)
    mixup.eval()
    out, target = mixup(x, onehot)
    assert out is x and target is onehot


def test_augmentations_apply_in_order_and_only_when_training():
    augment = Augmentations(specaugment=SpecAugment(), mixup=Mixup())
    assert list(augment.transforms) == ["specaugment", "mixup"] and augment.mixes
    assert not Augmentations(specaugment=SpecAugment()).mixes
    x, onehot = torch.randn(8, 3, 300, 40), torch.eye(4)[torch.arange(8) % 4]
    torch.manual_seed(5)
    out, soft = augment(x, onehot)
    torch.manual_seed(5)
    masked, _ = augment.transforms["specaugment"](x, onehot)
    expected = augment.transforms["mixup"](masked, onehot)
    assert torch.equal(out, expected[0]) and torch.equal(soft, expected[1])
    augment.eval()
    assert augment(x, onehot)[0] is x


class NoHostReads(TorchFunctionMode):
    """Fails on any call that reads a tensor's values on the host (a GPU sync on a GPU)."""

    READS = frozenset(
        {
            torch.Tensor.item,
            torch.Tensor.tolist,
            torch.Tensor.numpy,
            torch.Tensor.cpu,
            torch.Tensor.__bool__,
            torch.Tensor.__int__,
            torch.Tensor.__float__,
            torch.Tensor.__index__,
            torch.Tensor.nonzero,
            torch.nonzero,
            torch.masked_select,
        }
    )

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.READS:
            raise AssertionError(f"reads a tensor on the host: {func}")
        return func(*args, **(kwargs or {}))


def test_batch_augmentations_and_the_soft_loss_never_read_tensors_on_the_host():
    with NoHostReads():
        with pytest.raises(AssertionError, match="on the host"):  # the guard works
            bool(torch.ones(1) > 0)
        torch.manual_seed(0)
        augment = Augmentations(specaugment=SpecAugment(), mixup=Mixup())
        x, target = augment(torch.randn(8, 3, 300, 40), torch.eye(4)[torch.arange(8) % 4])
        log_probs = torch.randn(8, 4).log_softmax(dim=1)
        soft_nll_loss(log_probs, smooth_labels(target, 0.1), torch.rand(4))
    assert x.shape == (8, 3, 300, 40)


@pytest.mark.parametrize(
    ("build", "option"),
    [
        (lambda: SpecAugment(time_width=-1), "model.augment.specaugment.time_width=-1"),
        (lambda: Mixup(alpha=0), "model.augment.mixup.alpha=0"),
        (
            lambda: SpeedPerturbation(factors=[0.9, 0.9]),
            "datamodule.waveform_augment.speed.factors",
        ),
        (lambda: SpeedPerturbation(factors=[0.0, 1.0]), "waveform_augment.speed.factors"),
        (lambda: NoisePerturbation(snr_db=[30, 10]), "waveform_augment.noise.snr_db"),
        (lambda: NoisePerturbation(copies=0), "waveform_augment.noise.copies=0"),
        (lambda: NoisePerturbation(copies=1.5), "waveform_augment.noise.copies=1.5: give a whole"),
    ],
)
def test_bad_options_are_config_errors_naming_them(build, option):
    with pytest.raises(ConfigError, match=option.replace(".", r"\.").replace("[", r"\[")):
        build()


# ----------------------------------------------------------------------------- waveforms


def tone(freq: float, seconds: float = 1.0, rate: int = 16000) -> torch.Tensor:
    return 0.5 * torch.sin(2 * math.pi * freq * torch.arange(round(seconds * rate)) / rate)


def peak_hz(wave: torch.Tensor, rate: int = 16000) -> float:
    spectrum = torch.fft.rfft(wave).abs()
    return spectrum.argmax().item() * rate / len(wave)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_changes_duration_and_pitch_by_the_factor(factor):
    wave = tone(440.0)
    fast = Speed(factor)(wave, sample_rate=16000, utterance_id="u")
    assert abs(len(fast) - 16000 / factor) <= 1
    assert peak_hz(fast) == pytest.approx(440 * factor, abs=2)


def test_speed_factor_one_is_the_waveform_as_read():
    wave = torch.randn(16000)
    assert torch.equal(Speed(1.0)(wave, sample_rate=16000, utterance_id="u"), wave)
    variants = WaveformAugmentations(speed=SpeedPerturbation()).variants()
    assert [v.key() for v in variants] == [
        {"steps": [{"speed": 0.9}]},
        {},
        {"steps": [{"speed": 1.1}]},
    ]
    assert variants[1] == WaveformVariant()  # the existing (unperturbed) cache entries


@pytest.mark.parametrize("snr_db", [(20.0, 20.0), (5.0, 15.0)])
def test_noise_is_added_at_the_drawn_snr(snr_db):
    wave = tone(300.0, seconds=2.0) + 0.1 * tone(1234.0, seconds=2.0)
    measured = []
    for copy in range(6):
        noisy = Noise(snr_db, copy, seed=0)(wave, sample_rate=16000, utterance_id=f"u{copy}")
        assert noisy.shape == wave.shape
        noise = noisy - wave
        measured.append(10 * math.log10(wave.pow(2).sum() / noise.pow(2).sum()))
        assert abs(noise.mean().item()) < 0.05 * noise.std().item()  # zero-mean white noise
    assert all(snr_db[0] - 0.01 <= m <= snr_db[1] + 0.01 for m in measured)
    if snr_db[0] < snr_db[1]:
        assert max(measured) - min(measured) > 1  # an SNR per utterance and copy


def test_noise_is_seeded_by_seed_utterance_and_copy():
    wave = tone(300.0)

    def noisy(copy=0, seed=0, utterance="u"):
        return Noise((10.0, 30.0), copy, seed)(wave, sample_rate=16000, utterance_id=utterance)

    assert torch.equal(noisy(), noisy())
    for other in (noisy(copy=1), noisy(seed=1), noisy(utterance="v")):
        assert not torch.equal(other, noisy())
    perturbation = NoisePerturbation(snr_db=[10, 30], copies=2, seed=7)
    assert perturbation.variants() == [
        (),
        (Noise((10.0, 30.0), 0, 7),),
        (Noise((10.0, 30.0), 1, 7),),
    ]


def test_waveform_versions_combine_speed_then_noise_with_distinct_keys():
    augment = WaveformAugmentations(
        speed=SpeedPerturbation(factors=[0.9, 1.0, 1.1]), noise=NoisePerturbation(copies=2)
    )
    variants = augment.variants()
    assert len(variants) == 9
    keys = [repr(v.key()) for v in variants]
    assert len(set(keys)) == 9 and keys.count("{}") == 1
    both = WaveformVariant((Speed(1.1), Noise((10.0, 30.0), 1, 0)))
    assert both in variants and str(both) == "speed 1.1 + noise 1"
    wave = tone(440.0)
    expected = Noise((10.0, 30.0), 1, 0)(
        Speed(1.1)(wave, sample_rate=16000, utterance_id="u"), sample_rate=16000, utterance_id="u"
    )
    assert torch.equal(both(wave, sample_rate=16000, utterance_id="u"), expected)
    # the order is part of the version: noise then speed is another version
    reverse = WaveformAugmentations(
        noise=NoisePerturbation(copies=2), speed=SpeedPerturbation(factors=[0.9, 1.0, 1.1])
    ).variants()
    reversed_both = WaveformVariant(both.steps[::-1])
    assert reversed_both in reverse and reversed_both.key() != both.key()


# ----------------------------------------------------------------------------- end to end


class Spy(BatchAugmentation):
    """Records every call (training mode, shapes) in :attr:`calls`; changes nothing."""

    calls: ClassVar[list[tuple[bool, tuple[int, ...], tuple[int, ...]]]] = []

    def forward(self, x, target):
        Spy.calls.append((self.training, tuple(x.shape), tuple(target.shape)))
        return super().forward(x, target)

    def augment(self, x, target):
        return x, target


def fit(compose_config, tmp_path, overrides):
    """A debug=fast ASRNN fit and test with ``overrides``; its results.json."""
    cfg = compose_config(
        ["model=asrnn", "debug=fast", "print_config=false", *overrides], run_dir=tmp_path / "run"
    )
    results = train(cfg)
    assert (
        results["test_uar"]
        == json.loads((tmp_path / "run" / "results.json").read_text())["test_uar"]
    )
    return cfg, results


@pytest.mark.parametrize(
    ("augment", "target"),
    [("[specaugment]", (8,)), ("[specaugment,mixup]", (8, 4))],  # labels; class shares
)
def test_fit_augments_training_batches_only(compose_config, tmp_path, augment, target):
    Spy.calls = []
    cfg, results = fit(
        compose_config,
        tmp_path,
        [
            f"augment={augment}",
            "scheduler=warmup_cosine",
            f"+model.augment.spy._target_={__name__}.Spy",
        ],
    )
    assert list(cfg.model.augment)[1:] == [*augment.strip("[]").split(","), "spy"]
    # debug=fast: 2 epochs of 3 training batches of 8; validation and test never augmented
    assert Spy.calls == [(True, (8, 3, 300, 40), target)] * 6
    assert results["steps_trained"] == 6 and 0.0 <= results["test_uar"] <= 1.0


def test_fit_with_speed_perturbation_keeps_the_unperturbed_cache(
    compose_config, emodb_manifest, tmp_path
):
    corpus = ["data=manifest", f"data.manifest={emodb_manifest}"]
    cache = tmp_path / "cache"
    SERDataModule(
        corpus=Manifest(manifest=emodb_manifest), fold=0, cache_dir=cache, progress=False
    ).prepare_data()
    before = {p: p.stat().st_mtime_ns for p in cache.glob("*/*.npy")}  # entries, not store shards
    cfg, results = fit(
        compose_config, tmp_path, [*corpus, "augment=speed", f"datamodule.cache_dir={cache}"]
    )
    assert list(cfg.datamodule.waveform_augment.speed.factors) == [0.9, 1.0, 1.1]
    assert {p: p.stat().st_mtime_ns for p in before} == before  # 1.0: the entries as they were
    added = {p.parent for p in cache.glob("*/*.npy")} - {p.parent for p in before}
    variants = [json.loads((d / "meta.json").read_text())["variant"] for d in added]
    assert sorted(v["steps"][0]["speed"] for v in variants) == [0.9, 1.1]
    # each version holds the fold's training utterances only (2 speakers x 8 files)
    assert results["train_speakers"] == ["09", "10"]
    assert {len(list(d.glob("*.npy"))) for d in added} == {16}
    assert results["steps_trained"] > 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"time_width": 400}, "time_width=400 with time_masks=2 can mask all 300 frames"),
        ({"time_width": 150}, "time_width=150 with time_masks=2 can mask all 300 frames"),
        ({"freq_width": 20}, "freq_width=20 with freq_masks=2 can mask all 40 mel bands"),
    ],
)
def test_specaugment_masks_that_can_blank_a_segment_are_refused_before_training(
    compose_config, options, message
):
    """Widths are frames: 400 meant as milliseconds would blank whole segments (300 frames)."""
    import hydra

    overrides = [f"model.augment.specaugment.{k}={v}" for k, v in options.items()]
    cfg = compose_config(["model=asrnn", "augment=specaugment", *overrides])
    with pytest.raises(Exception) as raised:  # Hydra wraps it; entry points unwrap it
        hydra.utils.instantiate(cfg.model, class_names=["ang", "sad", "hap", "neu"])
    error = user_error(raised.value)
    assert isinstance(error, ConfigError) and message in str(error)
    fits = compose_config(
        ["model=asrnn", "augment=specaugment", "model.augment.specaugment.time_width=149"]
    )
    hydra.utils.instantiate(fits.model, class_names=["ang", "sad", "hap", "neu"])
