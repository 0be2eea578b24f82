"""Per-utterance feature cache, safe for several processes filling it at once.

Layout: ``<root>/<corpus>-<key>/`` where ``key`` hashes the corpus identity (its resolved
root or manifest) and the feature config, so a changed config never reads stale features.
Each utterance is one ``.npy`` file named by a hash of its audio path, size and modification
time (an edited audio file is recomputed). A file that failed to load is remembered as a
``.bad`` text file holding the reason. Every file is written to a temporary name in the same
folder and renamed into place, so readers never see a partial file.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ser.data.audio import AudioError
from ser.data.corpora import Utterance
from ser.io import write_bytes_atomic

log = logging.getLogger(__name__)

#: bump when the feature code changes its output for the same config
FEATURE_VERSION = 1


@dataclass
class FillReport:
    """What :meth:`FeatureCache.fill` did."""

    computed: int = 0
    cached: int = 0
    bad: dict[str, str] = field(default_factory=dict)  # utterance id -> reason


class FeatureCache:
    """Features of one corpus and feature config, computed once per utterance.

    Args:
        root: the cache folder (shared by corpora and configs).
        corpus_name: short corpus name, for a readable folder name.
        corpus_identity: what identifies the corpus files (e.g. its resolved root).
        feature_config: the parameters that determine the features.

    Example:
        >>> cache = FeatureCache(root="cache", corpus_name="emodb", corpus_identity="/d/emodb",
        ...                      feature_config={"n_mels": 40})
        >>> cache.directory.name
        'emodb-...'
    """

    def __init__(
        self, *, root: str | Path, corpus_name: str, corpus_identity: str, feature_config: dict
    ) -> None:
        self.meta = {
            "corpus": corpus_identity,
            "features": feature_config,
            "version": FEATURE_VERSION,
        }
        key = hashlib.sha256(json.dumps(self.meta, sort_keys=True).encode()).hexdigest()[:16]
        self.directory = Path(root).expanduser() / f"{corpus_name}-{key}"

    def path_for(self, utterance: Utterance) -> Path:
        """The cache file of one utterance (depends on its path, size and mtime)."""
        stat = utterance.path.stat()
        identity = f"{utterance.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        name = hashlib.sha1(identity.encode()).hexdigest()[:24]
        return self.directory / f"{name}.npy"

    def fill(
        self,
        utterances: Sequence[Utterance],
        extract: Callable[[Utterance], torch.Tensor],
        *,
        progress: bool = True,
    ) -> FillReport:
        """Compute and store the features of every utterance not cached yet.

        Audio errors are recorded (``.bad`` files) and returned, not raised: the caller
        decides whether bad files are fatal.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        if not (self.directory / "meta.json").exists():
            write_bytes_atomic(
                self.directory / "meta.json", json.dumps(self.meta, indent=2).encode()
            )
        report = FillReport()
        todo = []
        for utterance in utterances:
            target = self.path_for(utterance)
            if target.exists():
                report.cached += 1
            elif target.with_suffix(".bad").exists():
                report.bad[utterance.id] = target.with_suffix(".bad").read_text()
            else:
                todo.append((utterance, target))
        bar = tqdm(
            todo, desc=f"features -> {self.directory}", unit="utt", disable=not (progress and todo)
        )
        for utterance, target in bar:
            try:
                features = extract(utterance).numpy()
            except AudioError as err:
                report.bad[utterance.id] = str(err)
                if err.permanent:  # a refused read is retried next time
                    write_bytes_atomic(target.with_suffix(".bad"), str(err).encode())
                continue
            write_bytes_atomic(target, _npy_bytes(features))
            report.computed += 1
        if todo:
            log.info(
                "feature cache %s: computed %d, cached %d, unusable %d",
                self.directory, report.computed, report.cached, len(report.bad),
            )  # fmt: skip
        return report

    def load(self, utterances: Sequence[Utterance]) -> list[torch.Tensor]:
        """Cached features of ``utterances`` (all must have been filled)."""
        features = []
        for utterance in utterances:
            path = self.path_for(utterance)
            try:
                features.append(torch.from_numpy(np.load(path)))
            except FileNotFoundError as err:
                raise FileNotFoundError(
                    f"{utterance.id}: no cached features at {path}; run prepare_data() first"
                ) from err
        return features


def _npy_bytes(array: np.ndarray) -> bytes:
    """``array`` serialised in ``.npy`` format."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32))
    return buffer.getvalue()
