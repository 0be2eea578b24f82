"""The one path from audio to features: read -> (perturb) -> front-end -> cache.

Training (:class:`~ser.data.SERDataModule`), cross-corpus scoring (:mod:`ser.evaluate`) and
inference (:mod:`ser.inference`) all get their features here, so every front-end
(:mod:`ser.data.frontend`) works in all three, and a recording is featurised the same way in
each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm import tqdm

from ser.augment import WaveformVariant
from ser.data.audio import load_audio
from ser.data.cache import FeatureCache, FillReport
from ser.data.corpora import Corpus, Utterance
from ser.data.frontend import FrontEnd, failure
from ser.data.store import FrameStore, pack
from ser.errors import AudioError


class FeatureSource:
    """Features of utterances (or files) by one front-end, cached when ``cache_dir`` is set.

    Args:
        frontend: waveform -> ``(channels, frames, dims)``.
        cache_dir: root of the feature cache; ``None`` computes features in memory.
        progress: show a progress bar while extracting.
        workers: processes that fill a cold cache (:meth:`FeatureCache.fill`); a front-end
            with ``parallel_fill = False`` (a large encoder) always uses one.

    Example:
        >>> from ser.data.features import LogMel3D
        >>> source = FeatureSource(LogMel3D(), cache_dir="cache")
        >>> source.load(corpus, corpus.utterances)  # doctest: +SKIP
    """

    def __init__(
        self,
        frontend: FrontEnd,
        *,
        cache_dir: str | Path | None = None,
        progress: bool = True,
        workers: int = 1,
    ) -> None:
        self.frontend = frontend
        self.cache_dir = cache_dir
        self.progress = progress
        self.workers = workers if frontend.parallel_fill else 1

    # ------------------------------------------------------------------ one recording
    def waveform(
        self, item: Utterance | str | Path, variant: WaveformVariant | None = None
    ) -> torch.Tensor:
        """The audio of an utterance or file as the front-end reads it (mono, at its rate),
        perturbed by ``variant`` (speed or noise augmentation) when given."""
        frontend = self.frontend
        path = item.path if isinstance(item, Utterance) else Path(item)
        wave = load_audio(path, sample_rate=frontend.sample_rate, min_samples=frontend.min_samples)
        if variant is not None:
            key = item.id if isinstance(item, Utterance) else str(path)
            wave = variant(wave, sample_rate=frontend.sample_rate, utterance_id=key)
            # a sped-up recording of one frame is still one frame
            wave = F.pad(wave, (0, max(0, frontend.min_samples - wave.numel())))
        return wave

    def extract(
        self, item: Utterance | str | Path, variant: WaveformVariant | None = None
    ) -> torch.Tensor:
        """Features of one utterance or file; a front-end failure is an :class:`AudioError`
        naming the file."""
        return self.apply(_path(item), self.waveform(item, variant))

    def extract_many(
        self, utterances: Sequence[Utterance], variant: WaveformVariant | None = None
    ) -> list[torch.Tensor | AudioError]:
        """Features of several utterances in one front-end call (a batched encoder), each
        one's or its :class:`AudioError`. When the batched call fails, each utterance is
        retried alone, so the error names the file at fault."""
        outcomes: dict[int, torch.Tensor | AudioError] = {}
        read: list[tuple[int, Utterance, torch.Tensor]] = []
        for index, utterance in enumerate(utterances):
            try:
                read.append((index, utterance, self.waveform(utterance, variant)))
            except AudioError as err:
                outcomes[index] = err
        try:
            features = self.frontend.extract_many([wave for _, _, wave in read])
        except Exception:  # retried file by file, which names the one at fault
            features = [self._outcome(u.path, wave) for _, u, wave in read]
        for (index, _, _), feature in zip(read, features, strict=True):
            outcomes[index] = feature
        return [outcomes[index] for index in range(len(utterances))]

    def _outcome(self, path: str | Path, wave: torch.Tensor) -> torch.Tensor | AudioError:
        try:
            return self.apply(path, wave)
        except AudioError as err:
            return err

    def apply(self, path: str | Path, wave: torch.Tensor) -> torch.Tensor:
        """The front-end on ``wave``; its failure is an :class:`AudioError` naming ``path``."""
        try:
            return self.frontend(wave)
        except AudioError as err:
            raise AudioError(f"{path}: {err}", permanent=err.permanent) from err
        except Exception as err:
            raise failure(path, self.frontend, err) from err

    def stream(self, path: str | Path, *, block_frames: int) -> tuple[int, Iterator[torch.Tensor]]:
        """The frame count of ``path`` and its features as time-major blocks ``(frames,
        channels, dims)``: block by block from the file when the front-end can
        (:meth:`FrontEnd.stream`), else extracted whole and cut into blocks."""
        streamed = self.frontend.stream(path, block_frames=block_frames)
        if streamed is not None:
            return streamed
        features = self.extract(path).transpose(0, 1)
        blocks = (features[i : i + block_frames] for i in range(0, len(features), block_frames))
        return len(features), blocks

    # ------------------------------------------------------------------ a corpus
    def cache(self, corpus: Corpus, variant: WaveformVariant | None = None) -> FeatureCache:
        """The cache folder of ``corpus`` with this front-end (and waveform ``variant``)."""
        if self.cache_dir is None:
            raise ValueError("FeatureSource without cache_dir has no cache")
        return FeatureCache(
            root=self.cache_dir,
            corpus_name=corpus.name,
            corpus_identity=corpus.cache_identity,
            feature_config=self.frontend.cache_key(),
            variant=variant.key() if variant is not None and variant.key() else None,
        )

    def fill(
        self,
        corpus: Corpus,
        utterances: Sequence[Utterance],
        variant: WaveformVariant | None = None,
    ) -> FillReport:
        """Compute and cache the features of ``utterances`` not cached yet."""
        return self.cache(corpus, variant).fill(
            utterances,
            partial(self.extract, variant=variant),
            progress=self.progress,
            extract_many=lambda us: self.extract_many(us, variant),
            batch=self.frontend.batch_utterances,
            workers=self.workers,
        )

    def pack(
        self,
        corpus: Corpus,
        utterances: Sequence[Utterance],
        variant: WaveformVariant | None = None,
    ) -> FrameStore:
        """The packed on-disk store of ``utterances``' cached features (:mod:`ser.data.store`),
        packed now when missing or damaged."""
        return pack(
            self.cache(corpus, variant),
            utterances,
            extract=lambda u: self.extract(u, variant),
            progress=self.progress,
        )

    def load(
        self,
        corpus: Corpus,
        utterances: Sequence[Utterance],
        variant: WaveformVariant | None = None,
    ) -> list[torch.Tensor]:
        """Cached features of ``utterances`` (a missing or damaged entry is recomputed)."""
        return self.cache(corpus, variant).load(utterances, lambda u: self.extract(u, variant))

    def features(
        self, corpus: Corpus, utterances: Sequence[Utterance]
    ) -> tuple[list[torch.Tensor], dict[str, str]]:
        """``(features, bad)``: through the cache when there is one, else in memory.
        ``bad`` maps the id of each unusable utterance to the reason (no features then)."""
        if self.cache_dir is not None:
            bad = self.fill(corpus, utterances).bad
            return ([] if bad else self.load(corpus, utterances)), bad
        out, bad = [], {}
        for utterance in tqdm(utterances, desc="features", unit="file", disable=not self.progress):
            try:
                out.append(self.extract(utterance))
            except AudioError as err:
                bad[utterance.id] = str(err)
        return out, bad


def _path(item: Utterance | str | Path) -> Path:
    return item.path if isinstance(item, Utterance) else Path(item)
