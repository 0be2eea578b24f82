"""Training-data augmentation (the ``augment=`` config group); training segments only.

Two kinds, both off by default (``augment=none``, SEED.md's protocol) and combinable
(``augment=[specaugment,mixup,speed]``):

- **Batch-level**, on the training device inside ``SERModule.training_step``
  (``model.augment``, an :class:`Augmentations`): :class:`SpecAugment` (time and mel masks)
  and :class:`Mixup`. They draw from torch's global random state on the batch's device (set
  by ``seed`` through ``L.seed_everything``, saved in checkpoints by
  ``ResumableRandomness``), never read a tensor value on the host (no GPU sync), and are the
  identity in eval mode. Validation and test never call them.
- **Waveform-level**, before the features (``datamodule.waveform_augment``, a
  :class:`WaveformAugmentations`): :class:`SpeedPerturbation` and :class:`NoisePerturbation`.
  Each gives a fixed set of versions (:class:`WaveformVariant`) of every waveform; the data
  module caches the features of each version of the training utterances next to the
  unperturbed ones (a cache folder per version; the unperturbed version is the existing
  cache), and every training batch reads each segment from one version drawn at random.
  Validation and test read the unperturbed features only, and the normalisation statistics
  come from the unperturbed training features, so they equal those of a run without
  augmentation.

Why noise is a set of cached noisy versions: additive noise at a signal-to-noise ratio is
defined on the waveform. In the log-mel domain it is not additive (the log of a sum of
energies), so Gaussian noise added to the normalised features would be another
augmentation under a misleading name. Fresh noise every epoch would mean reading the audio
and rebuilding the fold's frame store every epoch (most of a run's time at ~40 steps an
epoch), so noise uses the mechanism of speed perturbation: ``copies`` noisy versions per
utterance, each seeded by ``(seed, utterance id, copy)`` with its SNR drawn uniformly from
``snr_db``. The model sees a few fixed noisy versions of each utterance, not new noise every
epoch.
"""

from __future__ import annotations

import hashlib
import itertools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torchaudio
from torch import Tensor, nn

from ser.errors import ConfigError

# ----------------------------------------------------------------------------- batch level


class BatchAugmentation(nn.Module, ABC):
    """One batch-level augmentation: ``(x, target) -> (x, target)`` in training mode.

    ``x`` holds segments ``(B, 3, frames, n_mels)``; ``target`` class indices ``(B,)`` or,
    where an augmentation mixes segments (``mixes``), class distributions ``(B, C)``. In eval
    mode the pair passes through unchanged.
    """

    #: whether the augmentation mixes segments, and so needs distributions as targets
    mixes: bool = False

    def forward(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        if not self.training:
            return x, target
        return self.augment(x, target)

    @abstractmethod
    def augment(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """The augmented pair (training mode)."""


class SpecAugment(BatchAugmentation):
    """Time and mel-band masking (Park et al. 2019) with torchaudio's masking transforms.

    Each segment gets ``freq_masks`` masks of up to ``freq_width`` mel bands and
    ``time_masks`` masks of up to ``time_width`` frames, at random widths and positions
    (``torchaudio.transforms.FrequencyMasking`` / ``TimeMasking``, independent per segment).
    The same bands and frames are masked in all three channels (static, delta, delta-delta)
    of a segment. Masked values become 0, the training mean after the z-score.

    torchaudio masks the last two dimensions as ``(freq, time)``, whereas segments are
    ``(channels, frames, n_mels)``: the masks are drawn in torchaudio's layout on one
    channel and transposed onto the segments.

    Args:
        freq_masks: mel-band masks per segment.
        freq_width: widest mel-band mask (bands).
        time_masks: time masks per segment.
        time_width: widest time mask (frames; 40 = 0.4 s).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> masked, _ = SpecAugment(time_width=100)(torch.ones(2, 3, 300, 40), torch.tensor([0, 1]))
        >>> bool((masked == 0).any()), bool(torch.equal(masked[:, 0], masked[:, 2]))
        (True, True)
    """

    def __init__(
        self, *, freq_masks: int = 2, freq_width: int = 8, time_masks: int = 2, time_width: int = 40
    ) -> None:
        super().__init__()
        options = {
            "freq_masks": freq_masks,
            "freq_width": freq_width,
            "time_masks": time_masks,
            "time_width": time_width,
        }
        for name, value in options.items():
            if value < 0:
                raise ConfigError(f"model.augment.specaugment.{name}={value}: give 0 or more")
        self.freq_masks = freq_masks
        self.time_masks = time_masks
        self.freq = torchaudio.transforms.FrequencyMasking(freq_width, iid_masks=True)
        self.time = torchaudio.transforms.TimeMasking(time_width, iid_masks=True)

    def check_fits(self, *, frames: int, n_mels: int) -> None:
        """Refuse masks that can blank a whole segment (``frames`` x ``n_mels``): a width in
        the wrong unit (400 frames meant as 400 ms) would silently train on zeros."""
        for name, masks, width, size, unit in (
            ("time", self.time_masks, self.time.mask_param, frames, "frames: 40 frames = 0.4 s"),
            ("freq", self.freq_masks, self.freq.mask_param, n_mels, "mel bands"),
        ):
            if masks * width >= size:
                raise ConfigError(
                    f"model.augment.specaugment.{name}_width={width} with {name}_masks={masks} "
                    f"can mask all {size} {unit.split(':')[0]} of a segment: give {name}_masks "
                    f"x {name}_width below {size} (widths are in {unit})"
                )

    def augment(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        batch, _, frames, n_mels = x.shape
        keep = x.new_ones(batch, 1, n_mels, frames)  # torchaudio's (..., freq, time)
        for _ in range(self.freq_masks):
            keep = self.freq(keep)
        for _ in range(self.time_masks):
            keep = self.time(keep)
        return x * keep.transpose(-1, -2), target


class Mixup(BatchAugmentation):
    """Mixup (Zhang et al. 2018): each segment mixed with another of the batch.

    Segment ``i`` becomes ``lam_i * x_i + (1 - lam_i) * x_j`` and its target
    ``lam_i * t_i + (1 - lam_i) * t_j``, with ``j`` a random permutation of the batch and
    ``lam_i ~ Beta(alpha, alpha)`` drawn per segment. Targets must be class distributions
    ``(B, C)``; ``SERModule`` passes one-hot rows and trains on the mixed ones with a soft-
    target cross-entropy (:func:`ser.losses.soft_nll_loss`).

    Args:
        alpha: the Beta distribution's parameter (small: mostly mild mixes).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> x, target = torch.randn(4, 3, 300, 40), torch.eye(4)
        >>> mixed, soft = Mixup(alpha=0.4)(x, target)
        >>> mixed.shape, soft.sum(dim=1).tolist()
        (torch.Size([4, 3, 300, 40]), [1.0, 1.0, 1.0, 1.0])
    """

    mixes = True

    def __init__(self, *, alpha: float = 0.2) -> None:
        super().__init__()
        if not alpha > 0:
            raise ConfigError(f"model.augment.mixup.alpha={alpha}: give a positive number")
        self.alpha = float(alpha)

    def augment(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        if target.ndim != 2:
            raise ValueError(f"Mixup needs class distributions (B, C), got {tuple(target.shape)}")
        concentration = torch.full((len(x),), self.alpha, device=x.device)
        # validate_args=False: checking the parameters would read them on the host
        lam = torch.distributions.Beta(concentration, concentration, validate_args=False).sample()
        partner = torch.randperm(len(x), device=x.device)
        mixed = torch.lerp(x[partner], x, lam.view(-1, *[1] * (x.ndim - 1)).to(x.dtype))
        return mixed, torch.lerp(target[partner], target, lam[:, None].to(target.dtype))


class Augmentations(nn.Module):
    """The batch-level augmentations of a run, applied in the order given (``model.augment``).

    Args:
        transforms: named augmentations (``specaugment=SpecAugment(...)``), in order.

    Example:
        >>> augment = Augmentations(specaugment=SpecAugment(), mixup=Mixup())
        >>> list(augment.transforms), augment.mixes
        (['specaugment', 'mixup'], True)
    """

    def __init__(self, **transforms: BatchAugmentation) -> None:
        super().__init__()
        self.transforms = nn.ModuleDict(transforms)

    @property
    def mixes(self) -> bool:
        """Whether any augmentation mixes segments (targets must then be distributions)."""
        return any(transform.mixes for transform in self.transforms.values())

    def check_fits(self, *, frames: int, n_mels: int) -> None:
        """Refuse augmentations whose settings cannot fit a ``frames`` x ``n_mels`` segment
        (:meth:`SpecAugment.check_fits`), before any training."""
        for transform in self.transforms.values():
            if isinstance(transform, SpecAugment):
                transform.check_fits(frames=frames, n_mels=n_mels)

    def forward(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        for transform in self.transforms.values():
            x, target = transform(x, target)
        return x, target


# ----------------------------------------------------------------------------- waveform level


@dataclass(frozen=True)
class Speed:
    """Speed perturbation by ``factor`` (Ko et al. 2015): tempo and pitch change together.

    The waveform is resampled from ``sample_rate * factor`` to ``sample_rate``
    (``torchaudio.functional.resample``), so it lasts ``1 / factor`` as long.
    """

    factor: float

    def key(self) -> dict[str, Any]:
        return {"speed": self.factor}

    def __call__(self, wave: Tensor, *, sample_rate: int, utterance_id: str) -> Tensor:
        return torchaudio.functional.resample(
            wave, orig_freq=round(sample_rate * self.factor), new_freq=sample_rate
        )

    def __str__(self) -> str:
        return f"speed {self.factor:g}"


@dataclass(frozen=True)
class Noise:
    """White Gaussian noise at an SNR drawn uniformly from ``snr_db`` (dB).

    The noise and the SNR come from a generator seeded by ``(seed, utterance id, copy)``, so
    every copy of an utterance is the same in every run, fold and process.
    """

    snr_db: tuple[float, float]
    copy: int
    seed: int

    def key(self) -> dict[str, Any]:
        return {"noise": {"snr_db": list(self.snr_db), "copy": self.copy, "seed": self.seed}}

    def __call__(self, wave: Tensor, *, sample_rate: int, utterance_id: str) -> Tensor:
        digest = hashlib.sha256(f"{self.seed}|{utterance_id}|{self.copy}".encode()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
        low, high = self.snr_db
        snr = low + (high - low) * torch.rand((), generator=generator, dtype=torch.float64)
        noise = torch.randn(wave.shape, generator=generator, dtype=wave.dtype)
        return torchaudio.functional.add_noise(wave, noise, snr.to(wave.dtype))

    def __str__(self) -> str:
        return f"noise {self.copy}"


@dataclass(frozen=True)
class WaveformVariant:
    """One version of every training waveform: ``steps`` (:class:`Speed`, :class:`Noise`)
    applied in order; no steps is the waveform as read.

    Example:
        >>> variant = WaveformVariant((Speed(0.9),))
        >>> variant.key(), str(variant), WaveformVariant().key()
        ({'steps': [{'speed': 0.9}]}, 'speed 0.9', {})
        >>> variant(torch.zeros(16000), sample_rate=16000, utterance_id="a").shape
        torch.Size([17778])
    """

    steps: tuple[Speed | Noise, ...] = ()

    def key(self) -> dict[str, Any]:
        """What identifies the version in the feature cache: its steps in order (``{}``: the
        waveform as read)."""
        return {"steps": [step.key() for step in self.steps]} if self.steps else {}

    def __call__(self, wave: Tensor, *, sample_rate: int, utterance_id: str) -> Tensor:
        for step in self.steps:
            wave = step(wave, sample_rate=sample_rate, utterance_id=utterance_id)
        return wave

    def __str__(self) -> str:
        return " + ".join(map(str, self.steps)) or "unperturbed"


class SpeedPerturbation:
    """One version of every training waveform per speed factor (1.0: the waveform as read).

    Args:
        factors: speed factors (Ko et al. 2015: 0.9, 1.0, 1.1).
    """

    def __init__(self, *, factors: Sequence[float] = (0.9, 1.0, 1.1)) -> None:
        factors = tuple(float(f) for f in factors)
        if not factors or min(factors) <= 0 or len(set(factors)) != len(factors):
            raise ConfigError(
                f"datamodule.waveform_augment.speed.factors={list(factors)}: give distinct "
                "positive factors, e.g. [0.9, 1.0, 1.1]"
            )
        self.factors = factors

    def variants(self) -> list[tuple[Speed, ...]]:
        """The steps of each version."""
        return [() if f == 1.0 else (Speed(f),) for f in self.factors]


class NoisePerturbation:
    """The clean waveform and ``copies`` noisy versions of it (:class:`Noise`).

    Training draws among the ``copies + 1`` versions, so a segment is clean with probability
    ``1 / (copies + 1)``.

    Args:
        snr_db: lowest and highest SNR in dB; each copy of an utterance draws one.
        copies: noisy versions per utterance.
        seed: seed of the noise (not the run's: every run shares the cached copies).
    """

    def __init__(
        self, *, snr_db: Sequence[float] = (10.0, 30.0), copies: int = 2, seed: int = 0
    ) -> None:
        snr = tuple(float(s) for s in snr_db)
        if len(snr) != 2 or snr[0] > snr[1]:
            raise ConfigError(
                f"datamodule.waveform_augment.noise.snr_db={list(snr)}: give [lowest, highest] "
                "in dB, e.g. [10, 30]"
            )
        if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
            raise ConfigError(
                f"datamodule.waveform_augment.noise.copies={copies}: give a whole number, 1 or more"
            )
        self.snr_db = snr
        self.copies = copies
        self.seed = seed

    def variants(self) -> list[tuple[Noise, ...]]:
        """The steps of each version."""
        return [()] + [(Noise(self.snr_db, k, self.seed),) for k in range(self.copies)]


class WaveformAugmentations:
    """The waveform-level augmentations of a run (``datamodule.waveform_augment``).

    Their versions combine, applied in the order given: speed factors ``[0.9, 1.0, 1.1]`` then
    noise of 2 copies (``augment=[speed,noise]``) give ``3 x 3 = 9`` versions of every
    training utterance, noise added after the speed change, each cached and held in memory
    by the data module.

    Args:
        perturbations: named perturbations (``speed=SpeedPerturbation(...)``), applied in order.

    Example:
        >>> augment = WaveformAugmentations(speed=SpeedPerturbation(factors=[0.9, 1.0]),
        ...                                 noise=NoisePerturbation(copies=1))
        >>> [str(v) for v in augment.variants()]
        ['speed 0.9', 'speed 0.9 + noise 0', 'unperturbed', 'noise 0']
    """

    def __init__(self, **perturbations: SpeedPerturbation | NoisePerturbation) -> None:
        self.perturbations = perturbations

    def variants(self) -> list[WaveformVariant]:
        """Every combination of one version per perturbation."""
        options = [p.variants() for p in self.perturbations.values()]
        return [WaveformVariant(sum(combo, ())) for combo in itertools.product(*options)]
