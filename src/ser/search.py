"""What makes the Optuna sweeper of ``hparams_search=optuna`` safe to fail and to rerun
(``hydra_plugins.ser_launcher.search.ResilientOptunaSweeper``).

On top of hydra-optuna-sweeper (``hydra/sweeper=optuna``):

- A trial whose run failed (its folds recorded an ``error.json``, :func:`ser.task.train`
  returned no objective) is told to the study as failed, and the search goes on with the
  next trial. The plain sweeper raises on it and ends the whole search.
- Trials left RUNNING by a search that was killed are marked failed when the study is
  resumed, instead of staying RUNNING for good.
- The sampler's seed is the run's ``seed`` plus the trials the study already has
  (:func:`study_seed`), so a rerun draws new parameter sets instead of the ones it drew
  the first time.
- A damaged study database is one error before any trial (:func:`check_study_storage`).

optuna is imported only here, when a search runs.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from ser.errors import ConfigError

log = logging.getLogger(__name__)


def sqlite_path(storage: str | None) -> Path | None:
    """The file of a ``sqlite:///PATH`` storage URL, ``None`` for other storages.

    Example:
        >>> sqlite_path("sqlite:////runs/search/optuna.db"), sqlite_path(None)
        (PosixPath('/runs/search/optuna.db'), None)
    """
    if not storage or not str(storage).startswith("sqlite:///"):
        return None
    return Path(str(storage).removeprefix("sqlite:///"))


def check_study_storage(storage: str | None) -> None:
    """Refuse a study database that SQLite reports as damaged, naming it and what to do."""
    path = sqlite_path(storage)
    if path is None or not path.is_file():
        return
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            (result,) = db.execute("PRAGMA quick_check").fetchone()
    except sqlite3.DatabaseError as err:
        result = str(err)
    if result != "ok":
        raise ConfigError(
            f"hydra.sweeper.storage: the study database {path} is damaged ({result}): move it "
            "away to start a new study (finished trial folders stay where they are), or "
            "restore it from a copy"
        )


def study_seed(seed: int, storage: str | None, study_name: str) -> int:
    """``seed`` plus the number of trials study ``study_name`` already holds (0 for a new
    study): each rerun of a search continues its sampler's random stream elsewhere."""
    if storage is None:
        return int(seed)
    path = sqlite_path(storage)
    if path is not None and not path.is_file():
        return int(seed)
    check_study_storage(storage)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # no such study yet
        return int(seed)
    return int(seed) + len(study.trials)


def fail_stale_trials(storage: str | None, study_name: str) -> int:
    """Mark the trials a killed search left RUNNING as failed; returns how many.

    Only for a search that holds its folder's lock (:mod:`ser.runlock`): then no other
    search of this folder is running, and a RUNNING trial is one whose search was killed.
    """
    if storage is None or (sqlite_path(storage) and not sqlite_path(storage).is_file()):
        return 0
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return 0
    stale = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    for trial in stale:
        study._storage.set_trial_state(trial._trial_id, optuna.trial.TrialState.FAIL)
    if stale:
        log.warning(
            "search: %d trial(s) of %s left running by an earlier, interrupted search "
            "marked failed: %s", len(stale), study_name, ", ".join(str(t.number) for t in stale),
        )  # fmt: skip
    return len(stale)


@dataclass
class Told:
    """The trials told to the study while :func:`failed_trials_are_told_failed` was active."""

    total: int = 0
    failed: int = 0

    @property
    def all_failed(self) -> bool:
        return self.total > 0 and self.failed == self.total


@contextmanager
def failed_trials_are_told_failed() -> Iterator[Told]:
    """While inside, a trial told with a NaN objective (a run that failed) is recorded as
    FAIL instead of making ``Study.tell`` raise, which would end the search; yields the
    count of trials told, and of those failed."""
    tell = optuna.study.Study.tell
    told = Told()

    def tolerant_tell(study: optuna.study.Study, trial: Any, values: Any = None, **kw: Any):
        told.total += 1
        values_list = values if isinstance(values, list | tuple) else [values]
        if values is not None and any(isinstance(v, float) and math.isnan(v) for v in values_list):
            told.failed += 1
            number = trial if isinstance(trial, int) else trial.number
            log.warning("search: trial %s failed (see its error.json); the search goes on", number)
            kw.pop("state", None)
            return tell(study, trial, state=optuna.trial.TrialState.FAIL, **kw)
        return tell(study, trial, values=values, **kw)

    optuna.study.Study.tell = tolerant_tell
    try:
        yield told
    finally:
        optuna.study.Study.tell = tell
