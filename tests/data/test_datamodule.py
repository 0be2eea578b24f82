"""SERDataModule: one fold of a corpus as loaders (ser/data/datamodule.py)."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from ser.augment import NoisePerturbation, SpeedPerturbation, WaveformAugmentations
from ser.config import CONFIG_DIR
from ser.data import SERDataModule
from ser.data.audio import AudioError
from ser.data.balance import ClassWeightedLoss, FixedPerClass, WeightedSampler
from ser.data.corpora import IEMOCAP, CorpusError, EmoDB, Manifest
from ser.data.dataset import rescale_segments
from ser.data.segments import PerClass, Sliding
from ser.errors import ConfigError

# shared/data/emodb/README.md: emotion letters of the 4-class subset, and the 10 speakers
FOUR = {"W": "ang", "T": "sad", "F": "hap", "N": "neu"}
SPEAKERS = ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"]


def four_class_ids(emodb_root, speakers):
    """Ids of the 4-class files of ``speakers``, straight from the file names."""
    return {
        p.stem
        for p in (emodb_root / "wav").glob("*.wav")
        if p.stem[:2] in speakers and p.stem[5] in FOUR
    }


def emodb_dm(emodb_root, cache_dir, fold, **kwargs):
    dm = SERDataModule(
        corpus=EmoDB(root=emodb_root, download=False),
        fold=fold,
        cache_dir=cache_dir,
        progress=False,
        **kwargs,
    )
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def fold0(emodb_root, emodb_cache_dir):
    return emodb_dm(emodb_root, emodb_cache_dir, 0)


@pytest.mark.parametrize(("fold", "test", "val"), [(0, "03", "08"), (5, "12", "14")])
def test_splits_are_the_fold_speakers(emodb_root, emodb_cache_dir, fold, test, val):
    dm = emodb_dm(emodb_root, emodb_cache_dir, fold)
    train = [s for s in SPEAKERS if s not in (test, val)]
    ids = {split: {u.id for u in dm.utterances[split]} for split in ("train", "val", "test")}
    assert ids["test"] == four_class_ids(emodb_root, [test])
    assert ids["val"] == four_class_ids(emodb_root, [val])
    assert ids["train"] == four_class_ids(emodb_root, train)
    assert sum(len(v) for v in ids.values()) == 339


def test_train_batches(fold0):
    batch = next(iter(fold0.train_dataloader()))
    assert batch["x"].shape == (fold0.batch_size, 3, 300, 40)
    assert batch["x"].dtype == torch.float32
    assert batch["y"].dtype == torch.int64
    assert set(batch["y"].tolist()) <= set(range(4))
    for loader in (fold0.val_dataloader(), fold0.test_dataloader()):
        batch = next(iter(loader))
        assert batch["x"].shape[1:] == (3, 300, 40)
        assert batch["x"].dtype == torch.float32


@pytest.mark.parametrize("split", ["val", "test"])
def test_eval_batches_map_to_the_split_utterances(fold0, split):
    loader = getattr(fold0, f"{split}_dataloader")()
    utterances = fold0.utterances[split]
    features = fold0.cache.load(utterances)
    seen = []
    for batch in loader:
        for row, utt in enumerate(batch["utt"].tolist()):
            utterance = utterances[utt]
            assert batch["y"][row] == fold0.classes.index(utterance.label)
            # the segment holds this utterance's normalised frames (2 s: one padded segment)
            stored = features[utt].transpose(0, 1)  # (T, 3, n_mels)
            expected = fold0.normalizer(stored).permute(1, 0, 2)
            frames = expected.shape[1]
            assert frames < 300
            torch.testing.assert_close(batch["x"][row, :, :frames], expected)
            assert (batch["x"][row, :, frames:] == 0).all()
            seen.append(utt)
    assert sorted(seen) == list(range(len(utterances)))  # every utterance exactly once


def test_train_set_covers_the_training_utterances(fold0):
    ds = fold0.datasets["train"]
    utt = ds.__getitems__(list(range(len(ds))))["utt"]
    assert set(utt.tolist()) == set(range(len(fold0.utterances["train"])))


def train_labels(dm):
    return dm.datasets["train"].__getitems__(list(range(len(dm.datasets["train"]))))["y"]


def test_fixed_per_class_balance_of_the_training_segments(emodb_root, emodb_cache_dir):
    dm = emodb_dm(emodb_root, emodb_cache_dir, 0, balance=FixedPerClass(n=20))
    assert torch.bincount(train_labels(dm), minlength=4).tolist() == [20, 20, 20, 20]


def imbalanced(counts):
    return counts.max() > 1.5 * counts.min()


def test_class_weighted_loss_weights_of_the_training_segments(emodb_root, emodb_cache_dir):
    dm = emodb_dm(emodb_root, emodb_cache_dir, 0, balance=ClassWeightedLoss())
    counts = torch.bincount(train_labels(dm), minlength=4).double()
    expected = counts.sum() / (4 * counts)
    torch.testing.assert_close(dm.class_weights, expected.float())
    assert imbalanced(counts)


def test_weighted_sampler_feeds_the_train_loader(emodb_root, emodb_cache_dir):
    dm = emodb_dm(emodb_root, emodb_cache_dir, 0, balance=WeightedSampler(), seed=3)
    counts = torch.bincount(train_labels(dm), minlength=4)
    assert imbalanced(counts.double())
    drawn = torch.cat([b["y"] for _ in range(5) for b in dm.train_dataloader()])
    share = torch.bincount(drawn, minlength=4).double() / len(drawn)
    # ~1300 draws of p = 1/4: sd 0.012; 0.05 is 4 sd
    torch.testing.assert_close(
        share, torch.full((4,), 0.25, dtype=torch.float64), atol=0.05, rtol=0
    )


def test_minority_class_gets_sliding_windows(emodb_manifest, tmp_path):
    # 2 s files are 198 frames; with 60-frame segments the training policy decides the
    # windows: hop 50 plus the end-aligned one for hap, first+last for the other classes
    dm = SERDataModule(
        corpus=Manifest(manifest=emodb_manifest),
        fold=0,
        cache_dir=tmp_path / "cache",
        segment_s=0.6,
        train_segments=PerClass(
            default=Sliding(hop_s=10.0), minority=Sliding(hop_s=0.5), minority_classes=["hap"]
        ),
        progress=False,
    )
    dm.prepare_data()
    dm.setup("fit")
    table = dm.datasets["train"].table
    for u, utterance in enumerate(dm.utterances["train"]):
        starts = table.start[table.utterance == u].tolist()
        assert starts == ([0, 50, 100, 138] if utterance.label == "hap" else [0, 138])


def bad_manifest(emodb_manifest):
    """Corrupt one training file (speaker 09) of the small corpus."""
    bad = sorted((emodb_manifest.parent / "audio").glob("09*.wav"))[0]
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEbroken")
    return bad


def test_bad_audio_fails_by_default_naming_the_file(emodb_manifest, tmp_path):
    bad = bad_manifest(emodb_manifest)
    dm = SERDataModule(
        corpus=Manifest(manifest=emodb_manifest), fold=0, cache_dir=tmp_path, progress=False
    )
    dm.prepare_data()  # records the bad file
    with pytest.raises(AudioError) as err:
        dm.setup("fit")
    assert str(bad) in str(err.value)
    assert "datamodule.skip_bad_audio=true" in str(err.value)


def test_bad_audio_skipped_with_a_warning(emodb_manifest, tmp_path, caplog):
    bad = bad_manifest(emodb_manifest)
    good = SERDataModule(
        corpus=Manifest(manifest=emodb_manifest), fold=0, cache_dir=tmp_path, progress=False
    )
    n_train = sum(u.speaker in good.fold.train for u in good.corpus.utterances)
    dm = SERDataModule(
        corpus=Manifest(manifest=emodb_manifest),
        fold=0,
        cache_dir=tmp_path,
        skip_bad_audio=True,
        progress=False,
    )
    with caplog.at_level(logging.WARNING, logger="ser.data"):
        dm.prepare_data()
        dm.setup("fit")
    assert "skipping 1 unusable audio file(s)" in caplog.text
    assert str(bad) in caplog.text
    assert len(dm.utterances["train"]) == n_train - 1
    assert bad.stem not in {u.id.split("/")[-1] for u in dm.utterances["train"]}


def test_loaders_need_setup(emodb_root, emodb_cache_dir):
    dm = SERDataModule(
        corpus=EmoDB(root=emodb_root, download=False), fold=0, cache_dir=emodb_cache_dir
    )
    with pytest.raises(RuntimeError, match="setup"):
        dm.train_dataloader()


def test_fold_out_of_range_at_setup(emodb_root, emodb_cache_dir):
    from ser.data.corpora import CorpusError

    dm = SERDataModule(
        corpus=EmoDB(root=emodb_root, download=False), fold=10, cache_dir=emodb_cache_dir
    )
    with pytest.raises(CorpusError, match=r"0\.\.9"):
        dm.setup("fit")


def test_from_the_hydra_config(emodb_root, emodb_cache_dir):
    overrides = [
        "+datamodule=default",
        "+features=logmel",
        "+balance=fixed",
        "+fold=3",
        "+seed=11",
        f"data.root={emodb_root}",
        f"paths.cache_dir={emodb_cache_dir}",
        "datamodule.progress=false",
    ]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="inspect", overrides=overrides)
    dm = instantiate(cfg.datamodule)
    assert isinstance(dm, SERDataModule)
    assert isinstance(dm.corpus, EmoDB) and dm.corpus.root == emodb_root
    assert dm.fold.test == ("10",) and dm.seed == 11
    assert isinstance(dm.balance, FixedPerClass) and dm.balance.n == 300  # SEED.md
    assert isinstance(dm.train_segments, PerClass)
    assert dm.train_segments.minority.hop_s == 1.0
    # the configured features are SEED.md's, i.e. the code defaults: same cache folder
    default = SERDataModule(corpus=dm.corpus, fold=3, cache_dir=emodb_cache_dir)
    assert dm.cache.directory == default.cache.directory
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape == (cfg.datamodule.batch_size, 3, 300, 40)


def test_iemocap_fixture_fold(iemocap_tree, tmp_path):
    """Short utterances (0.2-0.4 s) through the whole pipeline; session-based splits."""
    corpus = IEMOCAP(root=iemocap_tree.root)
    dm = SERDataModule(corpus=corpus, fold=3, cache_dir=tmp_path, batch_size=4, progress=False)
    dm.prepare_data()
    dm.setup("fit")
    expected = {
        split: {
            t.id
            for t in iemocap_tree.truth
            if t.has_wav and t.improvised and t.label in corpus.classes and t.speaker in speakers
        }
        for split, speakers in (
            ("test", {"Ses02M"}),
            ("val", {"Ses02F"}),
            ("train", {f"Ses0{s}{g}" for s in (1, 3, 4, 5) for g in "FM"}),
        )
    }
    for split, ids in expected.items():
        assert {u.id for u in dm.utterances[split]} == ids, split
        # every utterance is shorter than a segment: one segment each
        assert len(dm.datasets[split]) == len(ids)
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape == (4, 3, 300, 40)
    valid = dm.datasets["train"].table.valid[batch["seg"].numpy()]
    assert valid.max() < 300
    for row, v in enumerate(valid):
        assert (batch["x"][row, :, v:] == 0).all()


# ------------------------------------------------------------- minority class


def manifest_counts(manifest, speakers):
    """Utterances per class of ``speakers``, read from the manifest CSV itself."""
    rows = [line.split(",") for line in manifest.read_text().splitlines()[1:]]
    return Counter(label for _, label, speaker, _ in rows if speaker in speakers)


def small_dm(emodb_manifest, cache_dir, *, corpus_minority=None, **policy):
    """The small Emo-DB manifest corpus, 60-frame segments: hop 50 for the minority."""
    corpus = Manifest(manifest=emodb_manifest, minority_classes=corpus_minority)
    return SERDataModule(
        corpus=corpus,
        fold=0,
        cache_dir=cache_dir,
        segment_s=0.6,
        train_segments=PerClass(default=Sliding(hop_s=10.0), minority=Sliding(hop_s=0.5), **policy),
        progress=False,
    )


def sliding_classes(dm):
    """Classes whose training utterances got the minority policy's windows."""
    table = dm.datasets["train"].table
    return {
        utterance.label
        for u, utterance in enumerate(dm.utterances["train"])
        if table.start[table.utterance == u].tolist() == [0, 50, 100, 138]
    }


def test_automatic_minority_choice_is_logged(emodb_manifest, tmp_path, caplog):
    # training speakers 09 and 10: sad is relabelled until it is the rarest class
    manifest = emodb_manifest.read_text().splitlines()
    sad = [i for i, line in enumerate(manifest) if ",sad,09," in line or ",sad,10," in line]
    manifest[sad[0]] = manifest[sad[0]].replace(",sad,", ",neu,")
    emodb_manifest.write_text("\n".join(manifest) + "\n")
    counts = manifest_counts(emodb_manifest, {"09", "10"})
    rarest = min(counts, key=counts.__getitem__)
    assert rarest == "sad" and sorted(counts.values())[:2] == [counts["sad"], counts["sad"] + 1]
    dm = small_dm(emodb_manifest, tmp_path)
    with caplog.at_level(logging.INFO, logger="ser.data"):
        dm.prepare_data()
        dm.setup("fit")
    assert dm.minority_classes == ("sad",)
    assert sliding_classes(dm) == {"sad"}
    assert f"minority class(es) sad ({counts['sad']} training utterances) chosen automatically" in (
        caplog.text
    )


def test_corpus_minority_classes_replace_the_automatic_choice(emodb_manifest, tmp_path, caplog):
    counts = manifest_counts(emodb_manifest, {"09", "10"})
    automatic = small_dm(emodb_manifest, tmp_path)
    automatic.prepare_data()
    automatic.setup("fit")
    fixed = small_dm(emodb_manifest, tmp_path, corpus_minority=("neu",))
    with caplog.at_level(logging.INFO, logger="ser.data"):
        fixed.setup("fit")
    assert automatic.minority_classes != ("neu",)  # ties: the first class in sorted order
    assert fixed.minority_classes == ("neu",)
    assert sliding_classes(fixed) == {"neu"}
    assert f"neu ({counts['neu']} training utterances) fixed by data.minority_classes" in (
        caplog.text
    )
    # the policy's own minority_classes come first
    explicit = small_dm(
        emodb_manifest, tmp_path, corpus_minority=("neu",), minority_classes=["hap", "sad"]
    )
    with caplog.at_level(logging.INFO, logger="ser.data"):
        explicit.setup("fit")
    assert sliding_classes(explicit) == {"hap", "sad"}
    assert "fixed by datamodule.train_segments.minority_classes" in caplog.text


def test_minority_class_outside_the_class_list_fails_at_construction(emodb_manifest, tmp_path):
    with pytest.raises(CorpusError, match=r"data\.minority_classes=\['fru'\]: \['fru'\] not"):
        small_dm(emodb_manifest, tmp_path, corpus_minority=("fru",))
    with pytest.raises(CorpusError, match=r"datamodule\.train_segments\.minority_classes=null"):
        small_dm(emodb_manifest, tmp_path, minority_classes=["hap", "fea"])


def test_data_iemocap_fixes_hap_where_ang_is_the_rarest(
    compose_config, iemocap_builder, tmp_path, caplog
):
    """The original augments hap; counted per fold, ang can be the rarest training class."""
    root = tmp_path / "IEMOCAP_full_release"
    truth = iemocap_builder(root)
    # relabel the angry turns of sessions 1 and 2 as frustrated (fru is not a class)
    moved = ("Ses01", "Ses02")
    for session in (1, 2):
        for path in (root / f"Session{session}" / "dialog" / "EmoEvaluation").glob("*.txt"):
            if not path.name.startswith("."):
                path.write_text(path.read_text().replace("\tang\t", "\tfru\t"))
    corpus = IEMOCAP(root=root)

    def train_counts(fold):
        return Counter(
            t.label
            for t in truth
            if t.has_wav and t.improvised and t.speaker in corpus.fold(fold).train
            and not (t.label == "ang" and t.speaker.startswith(moved))
            and t.label in ("ang", "sad", "hap", "neu")
        )  # fmt: skip

    fold = next(k for k in range(10) if min(train_counts(k).values()) == train_counts(k)["ang"])
    counts = train_counts(fold)
    assert counts["ang"] < min(counts["hap"], counts["sad"], counts["neu"])

    def setup(*overrides):
        cfg = compose_config(["data=iemocap", f"data.root={root}", f"fold={fold}", *overrides])
        dm = instantiate(cfg.datamodule, cache_dir=tmp_path / "cache", progress=False)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="ser.data"):
            dm.prepare_data()
            dm.setup("fit")
        return dm

    fixed = setup()
    assert fixed.corpus.minority_classes == ("hap",)
    assert fixed.minority_classes == ("hap",)
    assert f"hap ({counts['hap']} training utterances) fixed by data.minority_classes" in (
        caplog.text
    )
    assert setup("experiment=seed_iemocap").minority_classes == ("hap",)
    automatic = setup("data.minority_classes=null")
    assert automatic.minority_classes == ("ang",)
    assert f"ang ({counts['ang']} training utterances) chosen automatically" in caplog.text


@pytest.mark.parametrize(("speakers", "split"), [(["08"], "val"), (["09", "10"], "train")])
def test_a_class_missing_from_training_or_validation_refuses_the_fold(
    emodb_manifest, tmp_path, speakers, split
):
    # fold 0: test 03, validation 08, training 09 and 10
    lines = emodb_manifest.read_text().splitlines()
    kept = [x for x in lines if not any(x.endswith(f",sad,{s},") for s in speakers)]
    assert len(kept) == len(lines) - 2 * len(speakers)
    emodb_manifest.write_text("\n".join(kept) + "\n")
    dm = SERDataModule(
        corpus=Manifest(manifest=emodb_manifest), fold=0, cache_dir=tmp_path, progress=False
    )
    with pytest.raises(
        CorpusError, match=rf"fold 0: no {split} utterances of class\(es\) \['sad'\]"
    ):
        dm.setup("fit")


def test_a_class_missing_from_the_test_speaker_is_allowed(emodb_manifest, tmp_path):
    lines = emodb_manifest.read_text().splitlines()
    emodb_manifest.write_text("\n".join(x for x in lines if not x.endswith(",sad,03,")) + "\n")
    dm = SERDataModule(
        corpus=Manifest(manifest=emodb_manifest), fold=0, cache_dir=tmp_path, progress=False
    )
    dm.setup("fit")
    assert "sad" not in {u.label for u in dm.utterances["test"]}
    assert "sad" in {u.label for u in dm.utterances["val"]}


@pytest.mark.parametrize(
    ("option", "value"), [("batch_size", 0), ("eval_batch_size", -1), ("batch_size", 2.5)]
)
def test_batch_sizes_must_be_positive(emodb_root, emodb_cache_dir, option, value):
    with pytest.raises(ConfigError, match=rf"datamodule.{option}={value}: give a positive"):
        SERDataModule(
            corpus=EmoDB(root=emodb_root, download=False),
            fold=0,
            cache_dir=emodb_cache_dir,
            **{option: value},
        )


# ----------------------------------------------------------------------------- waveform versions


def manifest_dm(manifest, cache_dir, waveform_augment=None) -> SERDataModule:
    dm = SERDataModule(
        corpus=Manifest(manifest=manifest),
        fold=0,
        cache_dir=cache_dir,
        balance=ClassWeightedLoss(),
        progress=False,
        waveform_augment=waveform_augment,
    )
    dm.prepare_data()
    dm.setup("fit")
    return dm


def segment_of(dm, features, start, valid):
    """The normalised, padded segment ``(3, length, n_mels)`` of ``features`` at ``start``."""
    frames = dm.normalizer(features.transpose(0, 1)[start : start + valid])
    x = torch.zeros(dm.segment_frames, *frames.shape[1:])
    x[:valid] = frames
    return x.transpose(0, 1)


def test_speed_versions_are_drawn_for_training_segments_only(emodb_manifest, tmp_path):
    base = manifest_dm(emodb_manifest, tmp_path / "cache")
    speed = WaveformAugmentations(speed=SpeedPerturbation(factors=[0.9, 1.0, 1.1]))
    dm = manifest_dm(emodb_manifest, tmp_path / "cache", speed)
    assert [str(v) for v in dm.variants] == ["speed 0.9", "unperturbed", "speed 1.1"]
    # statistics, class weights, segments and evaluation data: those of the unperturbed run
    assert torch.equal(dm.normalizer.mean, base.normalizer.mean)
    assert torch.equal(dm.normalizer.std, base.normalizer.std)
    for field in ("utterance", "start", "valid"):
        ours, theirs = dm.datasets["train"].table, base.datasets["train"].table
        assert np.array_equal(getattr(ours, field), getattr(theirs, field))
    assert torch.equal(dm.class_weights, base.class_weights)
    for split in ("val", "test"):
        ours, theirs = dm.datasets[split], base.datasets[split]
        index = list(range(len(theirs)))
        torch.manual_seed(0)
        assert torch.equal(ours.__getitems__(index)["x"], theirs.__getitems__(index)["x"])
    # every training segment comes from one version, at the same stretch of the recording
    train = dm.utterances["train"]
    features = {str(v): c.load(train) for v, c in dm.variant_caches.items()}
    features["unperturbed"] = dm.cache.load(train)
    table, length = dm.datasets["train"].table, dm.segment_frames
    lengths = np.array([f.shape[1] for f in features["unperturbed"]])
    expected = {}
    for name, feats in features.items():
        moved = rescale_segments(
            table, lengths, np.array([f.shape[1] for f in feats]), length=length
        )
        expected[name] = [
            segment_of(dm, feats[u], s, v)
            for u, s, v in zip(moved.utterance, moved.start, moved.valid, strict=True)
        ]
    assert len({f[0].shape[1] for f in features.values()}) == 3  # 3 lengths of utterance 0
    drawn = Counter()
    for seed in (0, 1):
        torch.manual_seed(seed)
        batch = dm.datasets["train"].__getitems__(list(range(len(table))))
        for i, x in enumerate(batch["x"]):
            matches = [n for n in expected if torch.allclose(x, expected[n][i], atol=1e-5)]
            assert len(matches) == 1, (i, matches)
            drawn[matches[0]] += 1
    assert set(drawn) == {"speed 0.9", "unperturbed", "speed 1.1"}
    torch.manual_seed(0)
    again = dm.datasets["train"].__getitems__(list(range(len(table))))["x"]
    torch.manual_seed(0)
    assert torch.equal(dm.datasets["train"].__getitems__(list(range(len(table))))["x"], again)


def test_speed_factor_one_alone_is_the_unaugmented_data(emodb_manifest, tmp_path):
    base = manifest_dm(emodb_manifest, tmp_path / "cache")
    dm = manifest_dm(
        emodb_manifest,
        tmp_path / "cache",
        WaveformAugmentations(speed=SpeedPerturbation(factors=[1.0])),
    )
    assert dm.variant_caches == {}
    index = list(range(len(base.datasets["train"])))
    state = torch.get_rng_state()
    x = dm.datasets["train"].__getitems__(index)["x"]
    assert torch.equal(torch.get_rng_state(), state)  # nothing drawn
    assert torch.equal(x, base.datasets["train"].__getitems__(index)["x"])


def test_noise_versions_are_cached_and_seeded(emodb_manifest, tmp_path):
    noise = WaveformAugmentations(noise=NoisePerturbation(snr_db=[20, 20], copies=2, seed=3))
    dm = manifest_dm(emodb_manifest, tmp_path / "cache", noise)
    assert [str(v) for v in dm.variants] == ["unperturbed", "noise 0", "noise 1"]
    train = dm.utterances["train"]
    clean = dm.cache.load(train)
    copies = [cache.load(train) for cache in dm.variant_caches.values()]
    for noisy in copies:
        for c, n in zip(clean, noisy, strict=True):
            assert n.shape == c.shape and not torch.allclose(n, c)
    assert not torch.allclose(copies[0][0], copies[1][0])
    # recomputing a version (another run, fold or process) gives the same features
    again = manifest_dm(emodb_manifest, tmp_path / "other-cache", noise)
    for cache, other in zip(dm.variant_caches.values(), again.variant_caches.values(), strict=True):
        assert cache.directory.name == other.directory.name
        for a, b in zip(cache.load(train), other.load(train), strict=True):
            assert torch.equal(a, b)
