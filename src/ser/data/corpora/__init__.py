"""Corpora: metadata parsers yielding one utterance list per corpus, and its folds."""

from ser.data.corpora.base import Corpus, Utterance
from ser.data.corpora.emodb import EmoDB
from ser.data.corpora.emovo import EMOVO
from ser.data.corpora.iemocap import IEMOCAP
from ser.data.corpora.manifest import Manifest
from ser.errors import CorpusError

__all__ = ["EMOVO", "IEMOCAP", "Corpus", "CorpusError", "EmoDB", "Manifest", "Utterance"]
