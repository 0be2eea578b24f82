"""SERDataModule: one fold of a corpus as loaders of normalised feature segments."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from ser.augment import WaveformAugmentations
from ser.data.balance import Balance, NoBalance
from ser.data.cache import FillReport
from ser.data.corpora import Corpus, Utterance
from ser.data.dataset import SegmentDataset, collate_segments, frame_store, version_segments
from ser.data.features import LogMel3D
from ser.data.fold_checks import SPLITS, check_classes_covered, drop_unusable
from ser.data.folds import Fold
from ser.data.frontend import FrontEnd, check_same_frontend
from ser.data.minority import fixed_minority, fold_policy
from ser.data.normalization import Normalizer, check_padding, coverage, fit_normalizer
from ser.data.resident import ResidentLoader, resident_device
from ser.data.segments import FirstLast, PerClass, SegmentPolicy, SegmentTable, Sliding
from ser.data.source import FeatureSource
from ser.data.store import DiskFrames, MemoryFrames, check_store
from ser.errors import ConfigError, CorpusError, require_batch_size
from ser.hardware import usable_cpus

log = logging.getLogger(__name__)


class SERDataModule(L.LightningDataModule):
    """Train / val / test loaders of one speaker-independent fold.

    ``prepare_data`` makes the corpus available and fills the feature cache; ``setup`` builds
    the fold: segments, training balance, and z-score statistics from the training segments
    only (applied to all three splits).

    With waveform augmentation (``augment=speed``, ``noise``) the features of every version
    of the training utterances are cached (a cache folder per version; the unperturbed one is
    :attr:`cache`) and held in the frame store next to the unperturbed features; each
    training segment of a batch is read from one version drawn at random, at the same
    stretch of the recording (:func:`~ser.data.dataset.rescale_segments`). Segmenting,
    balance, class weights and the normalisation statistics come from the unperturbed
    features alone, so they equal those of a run without it; validation and test read the
    unperturbed features only. Each version adds a copy of the training features to the
    store (on disk, or in memory with ``store=memory``).

    Args:
        corpus: the corpus (utterances and folds).
        fold: fold index (``corpus.folds()``).
        features: the front-end, waveform -> ``(channels, frames, dims)``
            (:mod:`ser.data.frontend`; default: 3D log-mel).
        cache_dir: root of the feature cache.
        segment_s: segment length in seconds (3 s: 300 log-mel frames, 150 frames of a 50 Hz
            encoder); an utterance-level front-end (functionals) gives one segment per
            utterance.
        train_segments: training segmenting policy (default: first+last, sliding with hop 100
            for the minority class). The minority classes of a :class:`PerClass` policy are,
            in this order: its ``minority_classes``, the corpus's (``data.minority_classes``,
            ``[hap]`` in ``conf/data/iemocap.yaml``), or else the class with the fewest
            training utterances of the fold. The choice is logged at ``setup``.
        eval_segments: validation/test policy (default: first+last).
        padding: how segments shorter than ``segment_s`` are padded. ``mean`` (default):
            zeros after the z-score, i.e. the training mean; ``zeros``: zero features before
            the z-score, as the original did, i.e. ``-mean / std`` after it. The statistics
            exclude padding either way; checkpoints carry the choice to inference.
        balance: class-balance strategy for training.
        batch_size: training batch size.
        eval_batch_size: validation/test batch size (default: ``batch_size``).
        num_workers: loader worker processes.
        pin_memory: pin batches (for GPU training).
        skip_bad_audio: drop unusable files (unreadable, empty, too short, NaN/Inf samples)
            with a warning instead of failing; :attr:`dropped` records them with their split
            and reason (``results.json``'s ``dropped_files``).
        seed: seed of the weighted sampler.
        progress: show a progress bar while extracting features.
        waveform_augment: versions of the training waveforms to train on
            (:class:`~ser.augment.WaveformAugmentations`); ``None``: the waveforms as read.
        test_split: build the test split. ``False`` (``test=false``, a hyper-parameter
            search): the test speakers' audio is never read, not even into the cache.
        resident: keep each split's tensors on the training device and gather batches there
            (:class:`~ser.data.resident.ResidentLoader`: the same batches, no workers, no
            copy per step). ``auto``: on a GPU with one process; ``true`` also on the CPU.
            Not with DDP (each process would see every batch).
        store: where the fold's frames are read from during the run. ``disk`` (default): a
            sharded store packed once per corpus and front-end (:mod:`ser.data.store`), read
            segment by segment, so a process holds the batch and the index, not the corpus,
            and the processes of a node share it through the page cache; ``memory``: one
            tensor in each process (no packed copy on disk).
        fill_workers: processes that extract the features of a cold cache; ``None``: one
            per core this job may use (its CPU affinity, e.g. SLURM's ``--cpus-per-task``).

    Example:
        >>> from ser.data.corpora import EmoDB
        >>> dm = SERDataModule(corpus=EmoDB(root="../shared/data/emodb"), fold=0,
        ...                    cache_dir="cache")  # doctest: +SKIP
        >>> dm.prepare_data(); dm.setup("fit")  # doctest: +SKIP
        >>> next(iter(dm.train_dataloader()))["x"].shape  # doctest: +SKIP
        torch.Size([30, 3, 300, 40])
    """

    def __init__(
        self,
        *,
        corpus: Corpus,
        fold: int,
        features: FrontEnd | None = None,
        cache_dir: str | Path = "cache",
        segment_s: float = 3.0,
        train_segments: SegmentPolicy | None = None,
        eval_segments: SegmentPolicy | None = None,
        padding: str = "mean",
        balance: Balance | None = None,
        batch_size: int = 30,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        skip_bad_audio: bool = False,
        seed: int = 0,
        progress: bool = True,
        waveform_augment: WaveformAugmentations | None = None,
        test_split: bool = True,
        resident: bool | str = "auto",
        store: str = "disk",
        fill_workers: int | None = None,
    ) -> None:
        super().__init__()
        self.store = check_store(store)
        if fill_workers is not None and fill_workers < 1:
            raise ConfigError(
                f"datamodule.fill_workers={fill_workers}: give 1 or more processes, or null "
                "for every core this job may use"
            )
        if resident not in (True, False, "auto"):
            raise ConfigError(f"datamodule.resident={resident!r}: choose auto, true or false")
        require_batch_size("datamodule.batch_size", batch_size)
        if eval_batch_size is not None:
            require_batch_size("datamodule.eval_batch_size", eval_batch_size)
        if num_workers < 0:
            raise ConfigError(f"datamodule.num_workers={num_workers}: give 0 or more")
        if len(corpus.classes) < 2:
            raise CorpusError(
                f"{corpus.name}: data.classes={list(corpus.classes)}: a classifier needs at "
                "least two classes; give two or more"
            )
        self.corpus = corpus
        self.fold_index = fold
        if not segment_s > 0:
            raise ConfigError(f"datamodule.segment_s={segment_s}: give a length in seconds > 0")
        self.features = features or LogMel3D()
        self.source = FeatureSource(
            self.features,
            cache_dir=cache_dir,
            progress=progress,
            workers=fill_workers or usable_cpus(),
        )
        #: the unperturbed features' cache
        self.cache = self.source.cache(corpus)
        self.segment_s = float(segment_s)
        #: the segment length in the front-end's frames
        self.segment_frames = self.features.segment_frames(segment_s)
        self.train_segments = train_segments or PerClass(default=FirstLast(), minority=Sliding())
        self.eval_segments = eval_segments or FirstLast()
        self.padding = check_padding(padding)
        self.balance = balance or NoBalance()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.skip_bad_audio = skip_bad_audio
        self.seed = seed
        self.progress = progress
        self.resident = resident
        #: the splits built; without the test split the test speakers' audio is never read
        self.splits = SPLITS if test_split else ("train", "val")
        #: the versions of the training waveforms drawn from (empty: the waveforms as read)
        self.variants = waveform_augment.variants() if waveform_augment is not None else []
        #: the feature cache of every perturbed version (the unperturbed one is ``cache``)
        self.variant_caches = {
            variant: self.source.cache(corpus, variant)
            for variant in self.variants
            if variant.key()
        }
        fixed_minority(self.train_segments, corpus)  # a class outside data.classes: refused here
        self.minority_classes: tuple[str, ...] | None = None  # the fold's, set by setup()
        self.normalizer: Normalizer | None = None
        self.class_weights: torch.Tensor | None = None
        self.utterances: dict[str, list[Utterance]] = {}
        #: unusable files of the fold left out by ``skip_bad_audio``: id, path, speaker, split,
        #: reason
        self.dropped: list[dict[str, str]] = []
        self.datasets: dict[str, SegmentDataset] = {}
        self._sampler = None
        #: per device, the split tensors moved there (resident): the shared frame store once
        self._moved: dict[torch.device, dict[int, torch.Tensor]] = {}

    # ----------------------------------------------------------------- corpus and fold
    @property
    def classes(self) -> tuple[str, ...]:
        return self.corpus.classes

    @property
    def num_classes(self) -> int:
        return len(self.corpus.classes)

    @property
    def fold(self) -> Fold:
        return self.corpus.fold(self.fold_index)

    @property
    def frame_rate(self) -> float | None:
        """The front-end's frames per second (``None``: one vector per utterance)."""
        return self.features.frame_rate

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(channels, frames, dims)`` of one segment: what the network is built for."""
        return self.features.channels, self.segment_frames, self.features.dims

    def _fill(self, utterances: list[Utterance]) -> FillReport:
        return self.source.fill(self.corpus, utterances)

    def prepare_data(self) -> None:
        """Download the corpus if needed, compute the features not cached yet (with waveform
        augmentation, also those of each version of the fold's training utterances; a file
        that cannot be read is reported by the unperturbed pass) and, with
        ``store=disk``, pack the fold's store. Lightning calls it in one process per node,
        so the ranks of a DDP run share one extraction and one packing."""
        self.corpus.prepare()
        fold = self.fold
        members = [u for u in self.corpus.utterances if fold.split_of(u.speaker) in self.splits]
        if self.splits == SPLITS:
            report = self._fill(self.corpus.utterances)
        else:  # only the fold's built splits: the test speakers' audio is not read
            report = self._fill(members)
        usable = [u for u in members if u.id not in report.bad]
        train = [u for u in usable if fold.split_of(u.speaker) == "train"]
        for variant in self.variant_caches:
            self.source.fill(self.corpus, train, variant)
        if self.store == "disk" and (self.skip_bad_audio or not report.bad):
            self.source.pack(self.corpus, usable)
            for variant in self.variant_caches:
                self.source.pack(self.corpus, train, variant)

    # ----------------------------------------------------------------- fold set-up
    def setup(self, stage: str | None = None) -> None:
        """Build the fold's segments, balance and normalisation (once)."""
        if self.datasets:
            return
        fold = self.fold
        members = [u for u in self.corpus.utterances if fold.split_of(u.speaker) in self.splits]
        usable, self.dropped = drop_unusable(
            members, self._fill(members), corpus=self.corpus, fold=fold, skip=self.skip_bad_audio
        )
        label_index = {c: i for i, c in enumerate(self.classes)}

        split_index = {}
        for split in self.splits:
            index = np.array(
                [i for i, u in enumerate(usable) if fold.split_of(u.speaker) == split],
                dtype=np.int64,
            )
            if len(index) == 0:
                raise CorpusError(
                    f"fold {fold.index} of {self.corpus.name}: no {split} utterances "
                    f"(speakers {list(getattr(fold, split))})"
                )
            split_index[split] = index
            self.utterances[split] = [usable[i] for i in index]
        check_classes_covered(
            self.utterances, corpus=self.corpus, fold=fold, dropped=bool(self.dropped)
        )
        frames, offsets, lengths = self._frames(usable)
        tables = {}
        for split in self.splits:
            index = split_index[split]
            labels = [usable[i].label for i in index]
            if split == "train":
                policy, self.minority_classes = fold_policy(
                    self.train_segments, self.corpus, fold.index, labels
                )
            else:
                policy = self.eval_segments
            tables[split] = policy.segment(
                lengths[index], labels, length=self.segment_frames, frame_rate=self.frame_rate
            )

        train_labels = np.array([label_index[u.label] for u in self.utterances["train"]])
        seg_labels = train_labels[tables["train"].utterance]
        keep = self.balance.select(seg_labels, self.num_classes)
        tables["train"] = tables["train"].subset(keep)
        seg_labels = seg_labels[keep]
        global_table = SegmentTable(
            split_index["train"][tables["train"].utterance],
            tables["train"].start,
            tables["train"].valid,
        )
        self.normalizer = fit_normalizer(frames, coverage(global_table, offsets))
        self.class_weights = self.balance.class_weights(seg_labels, self.num_classes)
        self._sampler = self.balance.sampler(seg_labels, self.num_classes, self.seed)

        offsets_t = torch.from_numpy(offsets)
        train_versions = self._train_versions(
            tables["train"],
            offsets,
            lengths,
            unperturbed=len(usable),
            train_index=split_index["train"],
        )
        for split in self.splits:
            labels = torch.tensor([label_index[u.label] for u in self.utterances[split]])
            self.datasets[split] = SegmentDataset(
                frames=frames,
                offsets=offsets_t[torch.from_numpy(split_index[split])],
                labels=labels,
                table=tables[split],
                length=self.segment_frames,
                normalizer=self.normalizer,
                padding=self.padding,
                variants=train_versions if split == "train" else (),
            )
        log.info("%s", self.summary())

    def _frames(
        self, usable: list[Utterance]
    ) -> tuple[MemoryFrames | DiskFrames, np.ndarray, np.ndarray]:
        """``(frames, offsets, lengths)``: the unperturbed features of the fold's ``usable``
        utterances, then each version's of its training utterances, on disk or in memory
        (:attr:`store`)."""
        versions = [(None, usable)] + [(v, self.utterances["train"]) for v in self.variant_caches]
        if self.store == "memory":
            features = []
            for variant, utterances in versions:
                features += self.source.load(self.corpus, utterances, variant)
            return frame_store(features)
        stores = [self.source.pack(self.corpus, utts, variant) for variant, utts in versions]
        frames = stores[0].frames
        offsets, lengths = [stores[0].offsets], [stores[0].lengths]
        for store in stores[1:]:
            offsets.append(store.offsets + frames.num_rows)
            lengths.append(store.lengths)
            frames += store.frames
        return frames, np.concatenate(offsets), np.concatenate(lengths)

    def _train_versions(
        self,
        table: SegmentTable,
        offsets: np.ndarray,
        lengths: np.ndarray,
        *,
        unperturbed: int,
        train_index: np.ndarray,
    ) -> list[tuple[torch.Tensor, SegmentTable]]:
        """The training segments in each version drawn from (none without waveform
        augmentation). The frame store holds the ``unperturbed`` utterances of the fold first,
        then one block of the training utterances per perturbed version, in
        :attr:`variant_caches` order."""
        if not self.variant_caches:
            return []
        n_train = len(train_index)
        first = {v: unperturbed + k * n_train for k, v in enumerate(self.variant_caches)}
        return version_segments(
            table,
            offsets,
            lengths,
            train_index=train_index,
            blocks=[first.get(variant) for variant in self.variants],
            length=self.segment_frames,
        )

    def summary(self) -> str:
        """One line per split: speakers, utterances and segments per class."""
        lines = [
            f"{self.corpus.name} fold {self.fold_index}, features {self.features.describe()}, "
            f"segments of {self.segment_frames} frame(s):"
        ]
        for split in self.splits:
            counts = Counter(u.label for u in self.utterances[split])
            seg_counts = Counter(
                self.utterances[split][i].label for i in self.datasets[split].table.utterance
            )
            per_class = ", ".join(f"{c} {counts[c]}/{seg_counts[c]}" for c in self.classes)
            lines.append(
                f"  {split:5s} speakers {','.join(getattr(self.fold, split))}: "
                f"{len(self.utterances[split])} utterances / {len(self.datasets[split])} segments "
                f"({per_class})"
            )
        if self.variant_caches:
            versions = ", ".join(map(str, self.variants))
            lines.append(
                f"  training segments drawn from {len(self.variants)} versions: {versions}"
            )
        return "\n".join(lines)

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The fold's preprocessing, which Lightning saves in every checkpoint: what
        inference needs to treat a recording as the test split was (:mod:`ser.checkpoint`)."""
        if self.normalizer is None:
            return {}  # not set up: nothing to save
        return {
            "classes": list(self.classes),
            "corpus": self.corpus.name,
            "fold": self.fold.as_dict(),
            "features": self.features.record(),
            "frame_rate": self.frame_rate,
            "normalizer": self.normalizer.state_dict(),
            "padding": self.padding,
            "segment_frames": self.segment_frames,
            "eval_segments": self.eval_segments.config(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Refuse a checkpoint (``ckpt_path``) of another corpus, fold or class set: it saw
        other speakers. The statistics are this fold's own, computed by :meth:`setup`."""
        recorded = state_dict.get("features")
        if recorded is not None:
            check_same_frontend(recorded, self.features.record())
        stored = (state_dict.get("corpus"), state_dict.get("fold"), state_dict.get("classes"))
        current = (self.corpus.name, self.fold.as_dict(), list(self.classes))
        if stored != current:
            raise ConfigError(
                f"ckpt_path: the checkpoint was trained on {stored[0]} fold "
                f"{(stored[1] or {}).get('fold')} with classes {stored[2]}, not on this run's "
                f"{current[0]} fold {current[1]['fold']} with {current[2]}; resuming it would "
                "train or test on the wrong speakers"
            )

    def _loader(self, split: str, *, train: bool) -> DataLoader | ResidentLoader:
        if not self.datasets:
            raise RuntimeError("call setup() before asking for loaders")
        loader = DataLoader(
            self.datasets[split],
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train and self._sampler is None,
            sampler=self._sampler if train else None,
            drop_last=train and len(self.datasets[split]) > self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_segments,
        )
        device = resident_device(self.resident, self.trainer)
        if device is None:
            return loader
        return ResidentLoader(loader, device=device, moved=self._moved.setdefault(device, {}))

    def train_dataloader(self) -> DataLoader | ResidentLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader | ResidentLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader | ResidentLoader:
        if "test" not in self.splits:
            raise ConfigError(
                "the test split was not built (datamodule.test_split=false, e.g. test=false in "
                "a hyper-parameter search): its speakers' audio is never read"
            )
        return self._loader("test", train=False)
