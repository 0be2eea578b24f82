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
from ser.data.dataset import SegmentDataset, collate_segments, frame_store, rescale_segments
from ser.data.features import LogMel3D
from ser.data.folds import Fold
from ser.data.frontend import FrontEnd, describe_record
from ser.data.normalization import Normalizer, check_padding, fit_normalizer, frame_weights
from ser.data.resident import ResidentLoader
from ser.data.segments import FirstLast, PerClass, SegmentPolicy, SegmentTable, Sliding
from ser.data.source import FeatureSource
from ser.errors import AudioError, ConfigError, CorpusError, require_batch_size

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


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
    unperturbed features only. Memory: one copy of the training features per version.

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
    ) -> None:
        super().__init__()
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
        self.source = FeatureSource(self.features, cache_dir=cache_dir, progress=progress)
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
        self._fixed_minority()  # a class outside data.classes fails here, before extraction
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
        """Download the corpus if needed and compute the features not cached yet (with
        waveform augmentation, also those of each version of the fold's training utterances;
        a file that cannot be read is reported by the unperturbed pass)."""
        self.corpus.prepare()
        if self.splits == SPLITS:
            self._fill(self.corpus.utterances)
        else:  # only the fold's built splits: the test speakers' audio is not read
            fold = self.fold
            built = [u for u in self.corpus.utterances if fold.split_of(u.speaker) in self.splits]
            self._fill(built)
        if self.variant_caches:
            fold = self.fold
            train = [u for u in self.corpus.utterances if fold.split_of(u.speaker) == "train"]
            for variant in self.variant_caches:
                self.source.fill(self.corpus, train, variant)

    # ----------------------------------------------------------------- fold set-up
    def setup(self, stage: str | None = None) -> None:
        """Build the fold's segments, balance and normalisation (once)."""
        if self.datasets:
            return
        fold = self.fold
        members = [u for u in self.corpus.utterances if fold.split_of(u.speaker) in self.splits]
        usable = self._drop_bad(members, self._fill(members))
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
        self._check_classes_covered()
        # the unperturbed features of the fold, then each version's of its training utterances
        features = self.source.load(self.corpus, usable)
        for variant in self.variant_caches:
            features += self.source.load(self.corpus, self.utterances["train"], variant)
        frames, offsets, lengths = frame_store(features)
        tables = {}
        for split in self.splits:
            index = split_index[split]
            labels = [usable[i].label for i in index]
            policy = self._train_policy(labels) if split == "train" else self.eval_segments
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
        self.normalizer = fit_normalizer(frames, frame_weights(global_table, offsets, len(frames)))
        frames = self.normalizer(frames)
        self.class_weights = self.balance.class_weights(seg_labels, self.num_classes)
        self._sampler = self.balance.sampler(seg_labels, self.num_classes, self.seed)

        offsets_t = torch.from_numpy(offsets)
        padding = self.normalizer.padding_frame(self.padding)
        train_versions = self._train_variants(
            tables["train"], offsets, lengths, len(usable), split_index["train"]
        )
        for split in self.splits:
            labels = torch.tensor([label_index[u.label] for u in self.utterances[split]])
            self.datasets[split] = SegmentDataset(
                frames=frames,
                offsets=offsets_t[torch.from_numpy(split_index[split])],
                labels=labels,
                table=tables[split],
                length=self.segment_frames,
                padding=padding,
                variants=train_versions if split == "train" else (),
            )
        log.info("%s", self.summary())

    def _train_variants(
        self,
        table: SegmentTable,
        offsets: np.ndarray,
        lengths: np.ndarray,
        unperturbed: int,
        train_index: np.ndarray,
    ) -> list[tuple[torch.Tensor, SegmentTable]]:
        """``(offsets, table)`` of the training segments in each version drawn from.

        ``offsets`` and ``lengths`` are those of the frame store, which holds the
        ``unperturbed`` utterances of the fold first, then one block of the training
        utterances per perturbed version, in :attr:`variant_caches` order (``first``: the
        store index of its first utterance).
        """
        if not self.variant_caches:
            return []
        n_train = len(train_index)
        first = {v: unperturbed + k * n_train for k, v in enumerate(self.variant_caches)}
        versions = []
        for variant in self.variants:
            if variant not in first:  # the waveform as read
                versions.append((torch.from_numpy(offsets[train_index]), table))
                continue
            block = slice(first[variant], first[variant] + n_train)
            rescaled = rescale_segments(
                table, lengths[train_index], lengths[block], length=self.segment_frames
            )
            versions.append((torch.from_numpy(offsets[block]), rescaled))
        return versions

    def _check_classes_covered(self) -> None:
        """Refuse a fold whose training or validation split lacks a class.

        The model would keep an output it never learns (or never selects on), and UAR would
        count that class against it. A test split without a class is fine: its recall is
        undefined (``null``) and UAR averages over the classes present.
        """
        for split in ("train", "val"):
            present = {u.label for u in self.utterances[split]}
            absent = [c for c in self.classes if c not in present]
            if absent:
                speakers = ",".join(getattr(self.fold, split))
                raise CorpusError(
                    f"{self.corpus.name} fold {self.fold_index}: no {split} utterances of "
                    f"class(es) {absent} ({split} speakers {speakers}"
                    f"{', after skipping unusable files' if self.dropped else ''}); leave "
                    "them out of data.classes or choose folds whose speakers have them"
                )

    def _fixed_minority(self) -> tuple[tuple[str, ...] | None, str]:
        """Minority classes fixed by the config, and the option that fixed them.

        ``(None, "")`` when nothing fixes them (the automatic choice) or the training policy
        is not :class:`PerClass`.
        """
        policy = self.train_segments
        if not isinstance(policy, PerClass):
            return None, ""
        if policy.minority_classes is not None:
            chosen, source = policy.minority_classes, "datamodule.train_segments.minority_classes"
        elif self.corpus.minority_classes is not None:
            chosen, source = tuple(self.corpus.minority_classes), "data.minority_classes"
        else:
            return None, ""
        unknown = [c for c in chosen if c not in self.classes]
        if unknown:
            raise CorpusError(
                f"{source}={list(chosen)}: {unknown} not among the classes of "
                f"{self.corpus.name} {list(self.classes)}; name classes of data.classes, or set "
                f"{source}=null for the automatic choice (the class with the fewest training "
                "utterances)"
            )
        return chosen, source

    def _train_policy(self, labels: list[str]) -> SegmentPolicy:
        """The training policy with this fold's minority classes settled, and logged."""
        policy = self.train_segments
        if not isinstance(policy, PerClass):
            return policy
        counts = Counter(labels)
        chosen, source = self._fixed_minority()
        if chosen is None:
            chosen = policy.resolve_minority(labels)
            how = "chosen automatically (the fewest training utterances)"
        else:
            how = f"fixed by {source}"
        log.info(
            "%s fold %d: minority class(es) %s %s; their training segments: %r",
            self.corpus.name, self.fold_index,
            ", ".join(f"{c} ({counts[c]} training utterances)" for c in chosen), how,
            policy.minority,
        )  # fmt: skip
        self.minority_classes = chosen
        return PerClass(default=policy.default, minority=policy.minority, minority_classes=chosen)

    def _drop_bad(self, utterances: list[Utterance], report: FillReport) -> list[Utterance]:
        if not report.bad:
            return utterances
        examples = "; ".join(f"{k}: {v}" for k, v in list(report.bad.items())[:3])
        if not self.skip_bad_audio:
            raise AudioError(
                f"{len(report.bad)} unusable audio file(s) in {self.corpus.name} ({examples}). "
                "Fix or remove them, or set datamodule.skip_bad_audio=true to skip them"
            )
        fold = self.fold
        self.dropped = [
            {
                "id": u.id,
                "path": str(u.path),
                "speaker": u.speaker,
                "split": fold.split_of(u.speaker),
                "reason": report.bad[u.id],
            }
            for u in utterances
            if u.id in report.bad
        ]
        per_split = Counter(d["split"] for d in self.dropped)
        log.warning(
            "skipping %d unusable audio file(s) (datamodule.skip_bad_audio=true; %s): %s",
            len(self.dropped),
            ", ".join(f"{per_split[s]} {s}" for s in SPLITS if per_split[s]),
            examples,
        )
        return [u for u in utterances if u.id not in report.bad]

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
        if recorded is not None and _frontend_key(recorded) != _frontend_key(
            self.features.record()
        ):
            raise ConfigError(
                f"ckpt_path: the checkpoint was trained on features "
                f"{describe_record(recorded)}, not on this run's "
                f"{describe_record(self.features.record())}; resume it with the features it "
                "was trained on (features=...), or train a new run"
            )
        stored = (state_dict.get("corpus"), state_dict.get("fold"), state_dict.get("classes"))
        current = (self.corpus.name, self.fold.as_dict(), list(self.classes))
        if stored != current:
            raise ConfigError(
                f"ckpt_path: the checkpoint was trained on {stored[0]} fold "
                f"{(stored[1] or {}).get('fold')} with classes {stored[2]}, not on this run's "
                f"{current[0]} fold {current[1]['fold']} with {current[2]}; resuming it would "
                "train or test on the wrong speakers"
            )

    # ----------------------------------------------------------------- loaders
    def _resident_device(self) -> torch.device | None:
        """Where batches are gathered without a DataLoader (``resident``), or ``None``."""
        trainer = self.trainer
        if self.resident is False or trainer is None:
            return None
        device = trainer.strategy.root_device
        if trainer.world_size > 1:
            if self.resident is True:
                raise ConfigError(
                    f"datamodule.resident=true with {trainer.world_size} processes (DDP): each "
                    "would see every batch; use datamodule.resident=auto or false"
                )
            return None
        return device if self.resident is True or device.type == "cuda" else None

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
        device = self._resident_device()
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


def _frontend_key(record: dict[str, Any]) -> dict[str, Any]:
    """A recorded front-end with its class (checkpoints written before the choice of
    front-end have none: log-mel)."""
    return {"_target_": "ser.data.features.LogMel3D", **record}
