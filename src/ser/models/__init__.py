"""The four networks: ADSRNN (proposed) and the ACRNN, ADRNN, ASRNN baselines.

Each is a plain ``nn.Module`` mapping ``(B, 3, frames, n_mels)`` segments to
log-probabilities ``(B, num_classes)``, with ``embed(x)`` (the final classifier's input,
``(B, embedding_dim)``) and ``classify(z)`` such that ``forward(x) == classify(embed(x))``.
"""

from ser.models.acrnn import ACRNN
from ser.models.adrnn import ADRNN
from ser.models.adsrnn import ADSRNN
from ser.models.asrnn import ASRNN

__all__ = ["ACRNN", "ADRNN", "ADSRNN", "ASRNN"]
