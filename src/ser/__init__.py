"""ser: a speech emotion recognition experiment framework.

ADSRNN and its three baselines (ACRNN, ADRNN, ASRNN) trained on 3D log-mel segments with
speaker-independent folds and utterance-level UAR, composed with Hydra and trained with
PyTorch Lightning.
"""

__version__ = "0.1.0"
