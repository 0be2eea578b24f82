"""Batches drawn where the fold lives: a split's tensors on the training device.

A fold's normalised frames are small (Emo-DB about 50 MB), so on a GPU they can stay there
for the whole run: :class:`ResidentLoader` moves a :class:`~ser.data.dataset.SegmentDataset`
to the device once and gathers every batch there, with no worker processes, no
host-to-device copy per step and no host synchronisation per step (the batch indices of a
whole epoch go to the device in one copy).

The batches are the ones the ``DataLoader`` it replaces would give: the same index sampler
(shuffle, weighted sampling for ``balance=sampler``, order for evaluation), drawn from the
same random state, so a run keeps its segments, normalisation and, on the CPU, its exact
batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader

from ser.data.dataset import SegmentDataset
from ser.errors import ConfigError


class ResidentLoader:
    """The batches of ``loader`` (over a :class:`SegmentDataset`), gathered on ``device``.

    Args:
        loader: the loader it replaces; its dataset, batch sampler and generator are used.
        device: where the split's tensors live and batches are gathered.
        moved: tensors already on ``device`` (:meth:`SegmentDataset.to`); the data module
            passes one dict for all its splits, so their shared frame store moves once.

    Example:
        >>> import numpy as np
        >>> from ser.data.segments import SegmentTable
        >>> table = SegmentTable(np.arange(4), np.zeros(4, dtype=np.int64), np.full(4, 2))
        >>> from ser.data.store import MemoryFrames
        >>> data = SegmentDataset(frames=MemoryFrames(torch.randn(8, 3, 5)),
        ...                       offsets=torch.arange(0, 8, 2),
        ...                       labels=torch.tensor([0, 1, 0, 1]), table=table, length=2)
        >>> loader = ResidentLoader(DataLoader(data, batch_size=3, collate_fn=lambda b: b),
        ...                         device="cpu")
        >>> [batch["seg"].tolist() for batch in loader]
        [[0, 1, 2], [3]]
    """

    def __init__(
        self,
        loader: DataLoader,
        *,
        device: str | torch.device,
        moved: dict[int, torch.Tensor] | None = None,
    ) -> None:
        if not isinstance(loader.dataset, SegmentDataset):
            raise TypeError(f"expected a loader over a SegmentDataset, got {type(loader.dataset)}")
        self.loader = loader
        self.device = torch.device(device)
        self.dataset = loader.dataset.to(self.device, moved=moved)

    def __len__(self) -> int:
        return len(self.loader.batch_sampler)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        # A DataLoader iterator draws a base seed for its workers from the random state before
        # its sampler draws the order; drawing it too keeps the same shuffles.
        torch.empty((), dtype=torch.int64).random_(generator=self.loader.generator)
        batches = list(self.loader.batch_sampler)
        if not batches:
            return
        sizes = [len(b) for b in batches]
        flat = torch.tensor([i for b in batches for i in b], dtype=torch.long)
        indices = flat.to(self.device, non_blocking=True).split(sizes)
        for batch in indices:
            yield self.dataset.__getitems__(batch)


def resident_device(resident: bool | str, trainer: Any) -> torch.device | None:
    """Where batches are gathered without a DataLoader (``datamodule.resident``), or
    ``None``: ``auto`` on a GPU with one process, ``true`` also on the CPU, never with DDP
    (each process would see every batch; ``true`` with DDP is refused)."""
    if resident is False or trainer is None:
        return None
    device = trainer.strategy.root_device
    if trainer.world_size > 1:
        if resident is True:
            raise ConfigError(
                f"datamodule.resident=true with {trainer.world_size} processes (DDP): each "
                "would see every batch; use datamodule.resident=auto or false"
            )
        return None
    return device if resident is True or device.type == "cuda" else None
