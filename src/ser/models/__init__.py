"""The four networks: ADSRNN (proposed) and the ACRNN, ADRNN, ASRNN baselines, and the
downstream head of the reference rows (:class:`Probe`: ``model=probe`` and ``model=linear``).

Each is a :class:`~ser.models.base.Network` mapping ``(B, 3, frames, n_mels)`` segments to
log-probabilities ``(B, num_classes)``, with ``embed(x)`` (the final classifier's input,
``(B, embedding_dim)``) and ``classify(z)`` such that ``forward(x) == classify(embed(x))``.
"""

from ser.models.acrnn import ACRNN
from ser.models.adrnn import ADRNN
from ser.models.adsrnn import ADSRNN
from ser.models.asrnn import ASRNN
from ser.models.base import Baseline, Network
from ser.models.probe import Probe

#: Model name (``model=<name>``, ``conf/model/<name>.yaml``) -> network class, in the order
#: results list the models: the proposed model first, then the baselines.
NETWORKS: dict[str, type[Network]] = {
    "adsrnn": ADSRNN,
    "acrnn": ACRNN,
    "adrnn": ADRNN,
    "asrnn": ASRNN,
}

__all__ = ["ACRNN", "ADRNN", "ADSRNN", "ASRNN", "NETWORKS", "Baseline", "Network", "Probe"]
