"""The contract every network keeps, and the pipeline the three baselines share.

:class:`Network` is what the rest of the project relies on: ``embed`` (the center loss's
feature), ``classify`` (embedding -> log-probabilities) and ``forward`` as their
composition, on input of the configured shape. :class:`Baseline` adds the pipeline ACRNN,
ADRNN and ASRNN have in common, so each of them builds its layers and says only how it
summarises the frame sequence.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ser.models.blocks import channels_last, check_input, frames_to_sequence


class Network(nn.Module):
    """A network mapping ``(B, in_channels, frames, n_mels)`` to ``(B, num_classes)``.

    Subclasses implement ``embed`` and ``classify`` and set ``embedding_dim`` (the width of
    ``embed``'s output); ``forward(x)`` is ``classify(embed(x))``, so the module can add a
    loss on the embedding without running the network twice.
    """

    embedding_dim: int

    def __init__(self, *, in_channels: int, frames: int, n_mels: int) -> None:
        super().__init__()
        self.in_channels, self.frames, self.n_mels = in_channels, frames, n_mels

    def check_input(self, x: Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is ``(B, in_channels, frames, n_mels)``."""
        check_input(x, self.in_channels, self.frames, self.n_mels)

    def embed(self, x: Tensor) -> Tensor:
        """``(B, C, T, F) -> (B, embedding_dim)``: the input of the final classifier."""
        raise NotImplementedError

    def classify(self, z: Tensor) -> Tensor:
        """``(B, embedding_dim) -> (B, num_classes)`` log-probabilities."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, T, F) -> (B, num_classes)`` log-probabilities."""
        return self.classify(self.embed(x))


class Baseline(Network):
    """``cnn`` -> frame sequence -> per-frame ``linear`` -> ``summarise`` -> ``head`` ->
    ``classifier``.

    Subclasses build those four modules and implement :meth:`summarise`, the recurrent part
    that turns the frame sequence into one vector. ``head``'s output is the embedding.
    """

    cnn: nn.Module
    linear: nn.Module
    head: nn.Module
    classifier: nn.Linear

    def summarise(self, h: Tensor) -> Tensor:
        """``(B, T, linear_dim) -> (B, D)``: the frame sequence as the input of ``head``."""
        raise NotImplementedError

    def embed(self, x: Tensor) -> Tensor:
        """``(B, C, T, F) -> (B, embedding_dim)``: the input of the final classifier."""
        self.check_input(x)
        sequence = frames_to_sequence(self.cnn(channels_last(x)))
        return self.head(self.summarise(self.linear(sequence)))

    def classify(self, z: Tensor) -> Tensor:
        """``(B, embedding_dim) -> (B, num_classes)`` log-probabilities."""
        return torch.log_softmax(self.classifier(z), dim=-1)
