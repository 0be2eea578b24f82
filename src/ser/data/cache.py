"""Per-utterance feature cache, safe for several processes filling it at once.

Layout: ``<root>/<corpus>-<key>/`` where ``key`` hashes the corpus identity (its resolved
root or manifest), the feature config and, for the features of a perturbed version of the
waveforms (speed or noise augmentation, :mod:`ser.augment`), the perturbation, so a changed
config never reads stale features and each version has its own folder.
Each utterance is one ``.npy`` file named by a hash of its audio path, size and modification
time (an edited audio file is recomputed). A file that failed to load is remembered as a
``.bad`` text file holding the reason. Every file is written to a temporary name in the same
folder and renamed into place, so readers never see a partial file.

Several processes filling the same cache at once (a parallel sweep starting cold) share the
work without locks: each extracts the missing utterances in its own random order and checks
again, just before extracting one, whether another process has stored it meanwhile.

A damaged entry (a truncated file after a full disk, a writer killed on a network filesystem,
values that are not finite) is logged, deleted and recomputed, never trusted: :meth:`fill`
checks each entry's ``.npy`` header against its file size, :meth:`load` every value read.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import multiprocessing
import os
import pickle
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ser.data.corpora import Utterance
from ser.errors import AudioError
from ser.io import write_bytes_atomic

log = logging.getLogger(__name__)

#: bump when the feature code changes its output for the same config
FEATURE_VERSION = 1

#: utterances per task of a parallel fill: enough to amortise a task, few enough for an even
#: share and a moving progress bar
FILL_CHUNK = 32

#: a fill is parallel when its rest would take longer than this in one process: starting a
#: process (importing torch) takes a few seconds
PARALLEL_AFTER_S = 10.0


@dataclass
class FillReport:
    """What :meth:`FeatureCache.fill` did."""

    computed: int = 0
    cached: int = 0
    #: damaged entries deleted and recomputed in this pass (each one also counts in
    #: ``computed``, in ``bad`` if its audio failed this time, or in ``cached`` if another
    #: process stored it again meanwhile)
    recomputed: int = 0
    bad: dict[str, str] = field(default_factory=dict)  # utterance id -> reason


class CorruptEntryError(RuntimeError):
    """A cache entry could not be read back and there was no way to recompute it here."""


#: what ``np.load`` raises for a damaged file (a missing one is handled apart)
_LOAD_ERRORS = (ValueError, EOFError, OSError, pickle.UnpicklingError)


class FeatureCache:
    """Features of one corpus and feature config, computed once per utterance.

    Args:
        root: the cache folder (shared by corpora and configs).
        corpus_name: short corpus name, for a readable folder name.
        corpus_identity: what identifies the corpus files (e.g. its resolved root).
        feature_config: the parameters that determine the features.
        variant: the waveform perturbation the features are computed after
            (``WaveformVariant.key()``, e.g. ``{"steps": [{"speed": 0.9}]}``); ``None`` or
            ``{}``: the waveform as read, whose folder is the one of the versions before the
            option.

    Example:
        >>> cache = FeatureCache(root="cache", corpus_name="emodb", corpus_identity="/d/emodb",
        ...                      feature_config={"n_mels": 40})
        >>> cache.directory.name
        'emodb-...'
    """

    def __init__(
        self,
        *,
        root: str | Path,
        corpus_name: str,
        corpus_identity: str,
        feature_config: dict,
        variant: dict | None = None,
    ) -> None:
        self.meta = {
            "corpus": corpus_identity,
            "features": feature_config,
            "version": FEATURE_VERSION,
        }
        if variant:
            self.meta["variant"] = variant
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
        extract_many: Callable[[list[Utterance]], list[torch.Tensor | AudioError]] | None = None,
        batch: int = 1,
        workers: int = 1,
    ) -> FillReport:
        """Compute and store the features of every utterance not cached yet.

        An existing entry is checked by its ``.npy`` header alone (3-d float32, file size as
        the header promises): a damaged one is logged, deleted and recomputed in this pass.
        Audio errors are recorded (``.bad`` files) and returned, not raised: the caller
        decides whether bad files are fatal. The missing entries are computed in a random
        order, and one that another process stores (or records as bad) in the meantime is
        taken from it, counted as ``cached`` (or ``bad``), not computed again.

        ``extract_many`` (with ``batch`` > 1) extracts ``batch`` missing utterances per call,
        returning each one's features or its :class:`AudioError`: a front-end that encodes
        padded batches (:class:`~ser.data.ssl.SSLEncoder`) fills the cache faster.

        ``workers`` > 1 extracts in that many processes (started fresh, each with one
        thread; ``extract`` must pickle), in chunks of :data:`FILL_CHUNK` utterances that
        share the work as concurrent fillers do, once the first chunk, extracted here, shows
        the rest would take more than :data:`PARALLEL_AFTER_S` seconds in this process.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        if not (self.directory / "meta.json").exists():
            write_bytes_atomic(
                self.directory / "meta.json", json.dumps(self.meta, indent=2).encode()
            )
        report = FillReport()
        todo = []  # (utterance, its entry, whether a damaged entry of it was deleted)
        for utterance in utterances:
            target = self.path_for(utterance)
            state = _state(utterance, target, report)
            if state == "damaged":
                report.recomputed += 1
            if state != "done":
                todo.append((utterance, target, state == "damaged"))
        # Processes filling this cache at once (the workers of a parallel sweep on a cold
        # cache) all find the same entries missing. In the same order they would all extract
        # every utterance, in lock-step; each in its own random order, with the check below,
        # they rarely meet on one, so N of them extract about 1/N of the corpus each. (A
        # rotation by an offset would not do: consecutive process ids give adjacent offsets,
        # and once one process reaches the part that the next one has done it skips ahead to
        # that process's current utterance and walks with it from then on.) A private
        # generator, seeded by the system: the global random state stays as it is.
        random.Random().shuffle(todo)
        bar = tqdm(
            total=len(todo), desc=f"features -> {self.directory}", unit="utt",
            disable=not (progress and todo),
        )  # fmt: skip
        # the first chunk here, and the rest in processes when it would take longer than
        # starting them (each imports torch) is worth
        here = todo[:FILL_CHUNK] if workers > 1 else todo
        started = time.monotonic()
        self._extract_here(here, extract, extract_many, batch, report, bar)
        rest = todo[len(here) :]
        if rest and (time.monotonic() - started) / len(here) * len(rest) > PARALLEL_AFTER_S:
            self._fill_in_processes(rest, extract, report, workers=workers, bar=bar)
        else:
            self._extract_here(rest, extract, extract_many, batch, report, bar)
        bar.close()
        if report.computed or report.recomputed or report.bad:
            log.info(
                "feature cache %s: computed %d, cached %d, damaged and recomputed %d, unusable %d",
                self.directory, report.computed, report.cached, report.recomputed,
                len(report.bad),
            )  # fmt: skip
        # in the corpus's order, not the random one: errors quote the first few
        report.bad = {u.id: report.bad[u.id] for u in utterances if u.id in report.bad}
        return report

    def _extract_here(
        self,
        todo: list[tuple[Utterance, Path, bool]],
        extract: Callable[[Utterance], torch.Tensor],
        extract_many: Callable[[list[Utterance]], list[torch.Tensor | AudioError]] | None,
        batch: int,
        report: FillReport,
        bar: tqdm,
    ) -> None:
        """Extract and store the ``todo`` entries in this process, ``batch`` per call."""
        for first in range(0, len(todo), batch):
            missing = []
            for utterance, target, deleted in todo[first : first + batch]:
                # stored (or found unreadable) by another process since the scan: take it
                state = _state(utterance, target, report)
                if state == "done":
                    continue
                if state == "damaged" and not deleted:  # counted once per utterance
                    report.recomputed += 1
                missing.append((utterance, target))
            if extract_many is not None:
                outcomes = extract_many([u for u, _ in missing])
            else:
                outcomes = [_outcome(extract, u) for u, _ in missing]
            for (utterance, target), outcome in zip(missing, outcomes, strict=True):
                if isinstance(outcome, AudioError):
                    report.bad[utterance.id] = str(outcome)
                    if outcome.permanent:  # a refused read is retried next time
                        write_bytes_atomic(target.with_suffix(".bad"), str(outcome).encode())
                    continue
                _store(target, outcome)
                report.computed += 1
            bar.update(min(batch, len(todo) - first))

    def _fill_in_processes(
        self,
        todo: list[tuple[Utterance, Path, bool]],
        extract: Callable[[Utterance], torch.Tensor],
        report: FillReport,
        *,
        workers: int,
        bar: tqdm,
    ) -> None:
        """Extract the ``todo`` entries in ``workers`` fresh processes, chunk by chunk,
        adding what they did to ``report`` (a damaged entry was already counted)."""
        chunks = [todo[i : i + FILL_CHUNK] for i in range(0, len(todo), FILL_CHUNK)]
        context = multiprocessing.get_context("spawn")  # a forked torch can deadlock
        bar.set_description(f"features -> {self.directory} ({workers} processes)")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
            futures = {
                pool.submit(_fill_chunk, self, extract, [u for u, _, _ in chunk]): len(chunk)
                for chunk in chunks
            }
            for future in as_completed(futures):
                part = future.result()
                report.computed += part.computed
                report.cached += part.cached
                report.bad.update(part.bad)
                bar.update(futures[future])

    def load(
        self,
        utterances: Sequence[Utterance],
        extract: Callable[[Utterance], torch.Tensor] | None = None,
    ) -> list[torch.Tensor]:
        """Cached features of ``utterances``, each ``(channels, frames, n_mels)`` float32.

        An entry that cannot be read, or holds values that are not finite, is logged and
        deleted. With ``extract`` it is recomputed and stored again, as is a missing entry
        (e.g. one another process has just deleted as damaged); an audio error then
        propagates as :class:`AudioError`. Without ``extract`` a damaged entry is a
        :class:`CorruptEntryError` and a missing one a ``FileNotFoundError``, both naming
        the utterance and the file.
        """
        features = []
        for utterance in utterances:
            path = self.path_for(utterance)
            try:
                array = np.load(path)
            except FileNotFoundError as err:
                if extract is None:
                    raise FileNotFoundError(
                        f"{utterance.id}: no cached features at {path}; run prepare_data() first"
                    ) from err
                log.info("%s: no cached features at %s; computing them", utterance.id, path)
                array = _store(path, extract(utterance))
            except _LOAD_ERRORS as err:
                array = _replace_damaged(utterance, path, f"unreadable: {err}", extract)
            else:
                problem = _array_problem(array)
                if problem is not None:
                    array = _replace_damaged(utterance, path, problem, extract)
            features.append(torch.from_numpy(array))
        return features


def _one_thread() -> None:
    """A fill process uses one core: the pool has one process per core."""
    torch.set_num_threads(1)


def _fill_chunk(
    cache: FeatureCache, extract: Callable[[Utterance], torch.Tensor], utterances: list[Utterance]
) -> FillReport:
    """One chunk of a parallel fill, in a pool process."""
    return cache.fill(utterances, extract, progress=False)


def _outcome(
    extract: Callable[[Utterance], torch.Tensor], utterance: Utterance
) -> torch.Tensor | AudioError:
    """``extract(utterance)``, or the :class:`AudioError` it raised."""
    try:
        return extract(utterance)
    except AudioError as err:
        return err


def _state(utterance: Utterance, target: Path, report: FillReport) -> str:
    """Whether ``utterance`` still needs extracting into its entry ``target``.

    ``"done"``: a sound entry (counted in ``report.cached``) or a ``.bad`` record (put in
    ``report.bad``) exists; ``"damaged"``: a damaged entry existed, logged and deleted
    (:func:`_discard`); ``"missing"``: there is nothing. Entries are written atomically, so
    the ``.npy`` header check (:func:`npy_problem`) is enough for one that another
    process has just written, as for any other.
    """
    if target.exists():
        problem = npy_problem(target)
        if problem is None:
            report.cached += 1
            return "done"
        _discard(utterance, target, problem)
        return "damaged"
    bad = target.with_suffix(".bad")
    if bad.exists():
        report.bad[utterance.id] = bad.read_text()
        return "done"
    return "missing"


def _discard(utterance: Utterance, path: Path, problem: str) -> None:
    """Log and delete the damaged entry ``path`` of ``utterance``."""
    log.warning(
        "%s: damaged cached features at %s (%s); deleting the entry to recompute it",
        utterance.id, path, problem,
    )  # fmt: skip
    path.unlink(missing_ok=True)


def _replace_damaged(
    utterance: Utterance,
    path: Path,
    problem: str,
    extract: Callable[[Utterance], torch.Tensor] | None,
) -> np.ndarray:
    """Delete a damaged entry found by :meth:`FeatureCache.load`; recompute it if possible."""
    _discard(utterance, path, problem)
    if extract is None:
        raise CorruptEntryError(
            f"{utterance.id}: damaged cached features at {path} ({problem}); the entry was "
            "deleted, rerun prepare_data() (or the run) to recompute it"
        )
    return _store(path, extract(utterance))


def _store(path: Path, features: torch.Tensor) -> np.ndarray:
    """Write ``features`` atomically to ``path``; returns the float32 array stored."""
    array = np.ascontiguousarray(features.numpy(), dtype=np.float32)
    write_bytes_atomic(path, _npy_bytes(array))
    return array


_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def read_npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int, int]:
    """``(shape, dtype, data_offset, file_size)`` from the header of the ``.npy`` file
    ``path``; ``ValueError`` or ``OSError`` when it cannot be read."""
    with path.open("rb") as f:
        version = np.lib.format.read_magic(f)
        if version not in _HEADER_READERS:
            raise ValueError(f"unsupported .npy version {version}")
        shape, _, dtype = _HEADER_READERS[version](f)
        return shape, dtype, f.tell(), os.fstat(f.fileno()).st_size


def npy_problem(path: Path) -> str | None:
    """Why the ``.npy`` file ``path`` is not a whole 3-d float32 array, or ``None``; reads
    only its header."""
    try:
        shape, dtype, header_bytes, size = read_npy_header(path)
    except (ValueError, OSError) as err:
        return f"bad header: {err}"
    if dtype != np.float32 or len(shape) != 3:
        return f"holds a {dtype} array of shape {shape}, not 3-d float32"
    expected = header_bytes + math.prod(shape) * dtype.itemsize
    if size != expected:
        return f"{size} bytes where its header promises {expected}"
    return None


def entry_shape(path: Path) -> tuple[int, int, int] | None:
    """The ``(channels, frames, dims)`` of a sound cache entry, or ``None`` when it is
    missing or damaged."""
    if npy_problem(path) is not None:
        return None
    return tuple(read_npy_header(path)[0])


def _array_problem(array: np.ndarray) -> str | None:
    """Why a loaded entry is unusable, or ``None``."""
    if array.dtype != np.float32 or array.ndim != 3:
        return f"holds a {array.dtype} array of shape {array.shape}, not 3-d float32"
    if not np.isfinite(array).all():
        return "values that are not finite (NaN/Inf)"
    return None


def _npy_bytes(array: np.ndarray) -> bytes:
    """``array`` serialised in ``.npy`` format."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
