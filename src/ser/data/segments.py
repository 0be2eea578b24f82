"""Cut utterances of T frames into fixed-length segments (default 3 s: 300 log-mel frames).

An utterance of T <= length frames gives one segment, zero-padded at the end. Longer ones:

- :class:`FirstLast`: the first and the last ``length`` frames (SEED.md's evaluation policy
  and its training policy for the majority classes);
- :class:`Sliding`: every window starting at 0, hop, 2*hop, ... that fits, plus one window
  ending at the last frame when the hop does not land there (full coverage);
- :class:`PerClass`: one policy for most classes and another for the minority class(es)
  (SEED.md's training policy: first+last, and sliding with a 1 s hop for the minority class).

Hops are in seconds, converted with the front-end's ``frame_rate``, so a policy means the
same stretch of audio whatever the front-end (a 1 s hop is 100 log-mel frames, 50 frames of a
50 Hz encoder).

Segments are kept as a :class:`SegmentTable` of (utterance index, start, valid frames), not as
copies of the frames; the data set gathers and pads them batch by batch.

Example:
    >>> table = FirstLast().segment([120, 300, 450], ["ang", "sad", "hap"], length=300)
    >>> table.utterance.tolist(), table.start.tolist(), table.valid.tolist()
    ([0, 1, 2, 2], [0, 0, 0, 150], [120, 300, 300, 300])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ser.checkpoint import node
from ser.errors import ConfigError


@dataclass(frozen=True)
class SegmentTable:
    """Segments as parallel arrays; ``utterance`` indexes the list that was segmented."""

    utterance: np.ndarray  # int64 (N,)
    start: np.ndarray  # int64 (N,) first frame
    valid: np.ndarray  # int64 (N,) frames before the zero padding

    def __len__(self) -> int:
        return len(self.utterance)

    def subset(self, index: np.ndarray) -> SegmentTable:
        """The segments at ``index`` (an int array), in that order."""
        return SegmentTable(self.utterance[index], self.start[index], self.valid[index])


class SegmentPolicy(ABC):
    """Where the segments of one utterance start."""

    @abstractmethod
    def starts(self, num_frames: int, length: int, frame_rate: float | None = 100.0) -> list[int]:
        """Start frames of the segments of an utterance of ``num_frames`` frames
        (``frame_rate``: frames per second, ``None`` for one vector per utterance)."""

    def segment(
        self,
        num_frames: Sequence[int],
        labels: Sequence[str],
        *,
        length: int,
        frame_rate: float | None = 100.0,
    ) -> SegmentTable:
        """Segments of every utterance, in utterance order."""
        return _table(num_frames, [self] * len(num_frames), length, frame_rate)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    def config(self) -> dict[str, Any]:
        """The policy as a Hydra ``_target_`` node, for checkpoints.

        Example:
            >>> from hydra.utils import instantiate
            >>> instantiate(Sliding(hop_s=0.5).config())
            Sliding(hop_s=0.5)
        """
        kwargs = {
            k: v.config() if isinstance(v, SegmentPolicy) else v for k, v in vars(self).items()
        }
        return node(type(self), kwargs)


class FirstLast(SegmentPolicy):
    """First and last ``length`` frames (one padded segment when T <= length)."""

    def starts(self, num_frames: int, length: int, frame_rate: float | None = 100.0) -> list[int]:
        return [0] if num_frames <= length else [0, num_frames - length]


class Sliding(SegmentPolicy):
    """Windows every ``hop_s`` seconds (at least one frame apart), plus an end-aligned
    window for full coverage."""

    def __init__(self, *, hop_s: float = 1.0) -> None:
        if not hop_s > 0:
            raise ConfigError(
                f"Sliding(hop_s={hop_s}): give the hop in seconds, > 0 "
                "(datamodule.train_segments.minority.hop_s or datamodule.eval_segments.hop_s)"
            )
        self.hop_s = hop_s

    def hop_frames(self, frame_rate: float | None) -> int:
        """The hop in frames at ``frame_rate`` (at least 1)."""
        return 1 if frame_rate is None else max(1, round(self.hop_s * frame_rate))

    def starts(self, num_frames: int, length: int, frame_rate: float | None = 100.0) -> list[int]:
        if num_frames <= length:
            return [0]
        starts = list(range(0, num_frames - length + 1, self.hop_frames(frame_rate)))
        if starts[-1] != num_frames - length:
            starts.append(num_frames - length)
        return starts


class PerClass(SegmentPolicy):
    """``minority`` policy for the minority classes, ``default`` for the others.

    Args:
        default: policy of most classes.
        minority: policy of the minority classes.
        minority_classes: their names; ``None`` picks the class with the fewest utterances
            among those being segmented (:meth:`resolve_minority`). :class:`SERDataModule`
            first takes the corpus's choice (``data.minority_classes``, IEMOCAP: ``hap``)
            and logs the classes it uses.
    """

    def __init__(
        self,
        *,
        default: SegmentPolicy,
        minority: SegmentPolicy,
        minority_classes: Sequence[str] | None = None,
    ) -> None:
        self.default = default
        self.minority = minority
        self.minority_classes = None if minority_classes is None else tuple(minority_classes)

    def starts(self, num_frames: int, length: int, frame_rate: float | None = 100.0) -> list[int]:
        return self.default.starts(num_frames, length, frame_rate)

    def resolve_minority(self, labels: Sequence[str]) -> tuple[str, ...]:
        """The classes that get the minority policy for these labels."""
        if self.minority_classes is not None:
            return self.minority_classes
        counts = Counter(labels)
        return (min(sorted(counts), key=counts.__getitem__),) if counts else ()

    def segment(
        self,
        num_frames: Sequence[int],
        labels: Sequence[str],
        *,
        length: int,
        frame_rate: float | None = 100.0,
    ) -> SegmentTable:
        minority = set(self.resolve_minority(labels))
        policies = [self.minority if label in minority else self.default for label in labels]
        return _table(num_frames, policies, length, frame_rate)


def _table(
    num_frames: Sequence[int],
    policies: Sequence[SegmentPolicy],
    length: int,
    frame_rate: float | None,
) -> SegmentTable:
    utterance, start = [], []
    for index, (frames, policy) in enumerate(zip(num_frames, policies, strict=True)):
        if frames < 1:
            raise ValueError(f"utterance {index} has no frames")
        starts = policy.starts(int(frames), length, frame_rate)
        utterance.extend([index] * len(starts))
        start.extend(starts)
    utterance_arr = np.asarray(utterance, dtype=np.int64)
    start_arr = np.asarray(start, dtype=np.int64)
    valid = np.minimum(np.asarray(num_frames, dtype=np.int64)[utterance_arr] - start_arr, length)
    return SegmentTable(utterance_arr, start_arr, valid)
