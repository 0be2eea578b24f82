"""Corpora: metadata parsers yielding one utterance list per corpus, and its folds."""

from ser.data.corpora.base import Corpus, Utterance
from ser.data.corpora.crema_d import CREMAD
from ser.data.corpora.emodb import EmoDB
from ser.data.corpora.emovo import EMOVO
from ser.data.corpora.iemocap import IEMOCAP
from ser.data.corpora.manifest import Manifest
from ser.data.corpora.msp_podcast import MSPPodcast
from ser.data.corpora.ravdess import RAVDESS
from ser.data.corpora.savee import SAVEE
from ser.errors import CorpusError

__all__ = [
    "CREMAD",
    "EMOVO",
    "IEMOCAP",
    "RAVDESS",
    "SAVEE",
    "Corpus",
    "CorpusError",
    "EmoDB",
    "MSPPodcast",
    "Manifest",
    "Utterance",
]
