"""What every front-end (waveform -> features) provides, and rebuilding one from its record.

A front-end maps one mono waveform at its ``sample_rate`` to features ``(channels, frames,
dims)``: 3D log-mel (:class:`~ser.data.features.LogMel3D`, ``(3, T, 40)`` at 100 frames per
second), openSMILE low-level descriptors or functionals (:mod:`ser.data.smile`) and frozen
self-supervised encoders (:mod:`ser.data.ssl`). Everything downstream (the feature cache,
segmenting, normalisation, the networks, evaluation and inference) sees only this contract,
so a new front-end is one subclass and one ``conf/features/<name>.yaml``.

``frame_rate`` is frames per second, so that segment lengths given in seconds mean the same
stretch of audio whatever the front-end; ``None`` marks an utterance-level front-end (one
vector per recording, e.g. openSMILE functionals), whose utterances are one segment each.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ser.errors import AudioError, ConfigError


class FrontEnd(nn.Module):
    """Waveform ``(samples,)`` at :attr:`sample_rate` -> ``(channels, frames, dims)`` float32.

    Subclasses set :attr:`kind`, :attr:`sample_rate`, :attr:`channels`, :attr:`dims`,
    :attr:`frame_rate` and :attr:`min_samples`, and implement :meth:`forward` and
    :meth:`config`. They may override :meth:`extract_many` (a batched pass) and
    :meth:`stream` (bounded memory on long recordings).
    """

    #: short name of the front-end family, in logs and error messages
    kind: str = ""
    sample_rate: int
    channels: int
    dims: int
    #: frames per second; ``None``: one feature vector per recording
    frame_rate: float | None
    #: the shortest waveform that gives a frame
    min_samples: int
    #: utterances per :meth:`extract_many` call while filling the cache
    batch_utterances: int = 1
    #: whether a cold cache may be filled by several processes, each with its own copy of
    #: the front-end (``False`` for a large encoder: one copy, batched, on one device)
    parallel_fill: bool = True

    def config(self) -> dict[str, Any]:
        """The constructor arguments that determine the output (``cls(**config())``
        rebuilds an equivalent front-end)."""
        raise NotImplementedError

    def cache_key(self) -> dict[str, Any]:
        """What identifies this front-end's output in the feature cache."""
        return {"frontend": self.kind, **self.config()}

    def record(self) -> dict[str, Any]:
        """The front-end as a Hydra ``_target_`` node (checkpoints, results).

        Example:
            >>> from ser.data.features import LogMel3D
            >>> LogMel3D(n_mels=20).record()["_target_"]
            'ser.data.features.LogMel3D'
        """
        cls = type(self)
        return {"_target_": f"{cls.__module__}.{cls.__qualname__}", **self.config()}

    def describe(self) -> str:
        """One line for logs: the family and its settings."""
        rate = "per utterance" if self.frame_rate is None else f"{self.frame_rate:g} frames/s"
        return f"{self.kind} ({self.channels}x{self.dims}, {rate})"

    def segment_frames(self, seconds: float) -> int:
        """Frames in ``seconds`` of audio (at least 1; 1 for utterance-level front-ends).

        Example:
            >>> from ser.data.features import LogMel3D
            >>> LogMel3D().segment_frames(3.0)
            300
        """
        if self.frame_rate is None:
            return 1
        return max(1, round(seconds * self.frame_rate))

    def extract_many(self, waves: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The features of several waveforms (a subclass may batch them)."""
        return [self(wave) for wave in waves]

    def stream(
        self, path: str | Path, *, block_frames: int
    ) -> tuple[int, Iterator[torch.Tensor]] | None:
        """The frame count of the file at ``path`` and its features as time-major blocks
        ``(frames, channels, dims)`` of at most ``block_frames`` frames, in order, read block
        by block so that memory does not grow with the recording's length; ``None`` when the
        front-end cannot work block by block (:meth:`FeatureSource.stream
        <ser.data.source.FeatureSource.stream>` then extracts the whole file)."""
        return None


def frontend_from_record(record: Mapping[str, Any]) -> FrontEnd:
    """The front-end a checkpoint recorded (:meth:`FrontEnd.record`).

    A record without ``_target_`` is a log-mel config (checkpoints that do not name their
    front-end are read as log-mel).
    """
    from hydra.utils import instantiate

    from ser.data.features import LogMel3D

    if "_target_" not in record:
        return LogMel3D(**record)
    return instantiate(dict(record), _convert_="all")


def describe_record(record: Mapping[str, Any]) -> str:
    """A recorded front-end in words, for errors that compare two.

    Example:
        >>> describe_record({"_target_": "ser.data.smile.OpenSmile", "feature_set": "eGeMAPSv02"})
        'OpenSmile(feature_set=eGeMAPSv02)'
    """
    target = str(record.get("_target_", "ser.data.features.LogMel3D")).rsplit(".", 1)[-1]
    settings = ", ".join(f"{k}={v}" for k, v in record.items() if k != "_target_")
    return f"{target}({settings})"


def check_same_frontend(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """Refuse resuming a checkpoint (``ckpt_path``) trained on another front-end, naming both.
    A record without a class is log-mel (checkpoints that do not name their front-end)."""

    def key(record: Mapping[str, Any]) -> dict[str, Any]:
        return {"_target_": "ser.data.features.LogMel3D", **record}

    if key(recorded) != key(current):
        raise ConfigError(
            f"ckpt_path: the checkpoint was trained on features {describe_record(recorded)}, "
            f"not on this run's {describe_record(current)}; resume it with the features it "
            "was trained on (features=...), or train a new run"
        )


def failure(path: str | Path, frontend: FrontEnd, err: Exception) -> AudioError:
    """An :class:`AudioError` for a front-end that failed on one file, naming both."""
    return AudioError(f"{path}: {frontend.kind} features failed ({type(err).__name__}: {err})")
