"""openSMILE features through audEERING's ``opensmile`` package (it ships SMILExtract, so
nothing is fetched at run time).

- ``features=egemaps``: eGeMAPS v02 functionals, 88 per utterance (Eyben et al. 2016);
- ``features=compare``: ComParE 2016 functionals, 6,373 per utterance (the INTERSPEECH
  challenge baseline);
- ``features=egemaps_lld``: eGeMAPS v02 low-level descriptors, 25 per 10 ms frame, for the
  networks and ``model=probe``.

Functionals are one vector per recording (``frame_rate`` ``None``): each utterance is one
segment, and ``model=linear`` on them is the field's reference classifier.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ser.data.frontend import FrontEnd
from ser.errors import AudioError, ConfigError

#: ``feature_level`` option -> openSMILE's name
LEVELS = {"functionals": "Functionals", "lld": "LowLevelDescriptors"}
#: openSMILE's low-level descriptors come every 10 ms
LLD_FRAME_RATE = 100.0


class OpenSmile(FrontEnd):
    """An openSMILE feature set: ``(1, frames, features)`` per recording.

    Args:
        feature_set: an ``opensmile.FeatureSet`` name (``eGeMAPSv02``, ``ComParE_2016``,
            ``GeMAPSv01b``, ...).
        feature_level: ``functionals`` (one vector per recording) or ``lld`` (a vector every
            10 ms).
        sample_rate: the rate audio is resampled to before openSMILE reads it.

    Example:
        >>> smile = OpenSmile(feature_set="eGeMAPSv02", feature_level="functionals")
        >>> smile(torch.randn(16000)).shape
        torch.Size([1, 1, 88])
    """

    kind = "opensmile"
    channels = 1

    def __init__(
        self,
        *,
        feature_set: str = "eGeMAPSv02",
        feature_level: str = "functionals",
        sample_rate: int = 16000,
    ) -> None:
        super().__init__()
        import opensmile

        known = [s.name for s in opensmile.FeatureSet]
        if feature_set not in known:
            raise ConfigError(f"features.feature_set={feature_set!r}: choose one of {known}")
        if feature_level not in LEVELS:
            raise ConfigError(
                f"features.feature_level={feature_level!r}: choose one of {sorted(LEVELS)}"
            )
        self.feature_set = feature_set
        self.feature_level = feature_level
        self.sample_rate = sample_rate
        self.smile = opensmile.Smile(
            feature_set=opensmile.FeatureSet[feature_set],
            feature_level=opensmile.FeatureLevel[LEVELS[feature_level]],
        )
        self.dims = len(self.smile.feature_names)
        self.frame_rate = None if feature_level == "functionals" else LLD_FRAME_RATE
        # the longest analysis window of the eGeMAPS and ComParE descriptors (pitch): 60 ms
        self.min_samples = round(0.06 * sample_rate)

    def config(self) -> dict[str, Any]:
        return {
            "feature_set": self.feature_set,
            "feature_level": self.feature_level,
            "sample_rate": self.sample_rate,
        }

    def describe(self) -> str:
        return f"openSMILE {self.feature_set} {self.feature_level} ({self.dims} features)"

    @torch.no_grad()
    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        values = self.smile.process_signal(waveform.float().numpy(), self.sample_rate).to_numpy(
            dtype=np.float32
        )
        if values.shape[0] == 0:
            raise AudioError(
                f"openSMILE {self.feature_set} gave no frames for {waveform.numel()} samples"
            )
        if not np.isfinite(values).all():
            raise AudioError(f"openSMILE {self.feature_set} gave values that are not finite")
        return torch.from_numpy(values.copy())[None]
