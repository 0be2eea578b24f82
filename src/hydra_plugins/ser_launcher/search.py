"""``hparams_search=optuna``'s sweeper: hydra-optuna-sweeper's, surviving failed trials and
resuming a study cleanly (:mod:`ser.search`).

Hydra imports every module of ``hydra_plugins`` for every app: optuna is imported only
when a search runs.
"""

from __future__ import annotations

import logging

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

log = logging.getLogger(__name__)


class ResilientOptunaSweeper(OptunaSweeper):
    """``OptunaSweeper`` that records a failed trial as failed and goes on, and fails the
    trials an interrupted search left running."""

    def sweep(self, arguments: list[str]) -> None:
        from ser.search import completed_trials, fail_stale_trials, failed_trials_are_told_failed

        storage, study_name = self.sweeper.storage, self.sweeper.study_name
        fail_stale_trials(storage, study_name)
        with failed_trials_are_told_failed():
            try:
                return super().sweep(arguments)
            except ValueError:
                # the base sweeper reports the study's best trial; with every trial failed
                # there is none, and the failures are reported after the sweep
                if completed_trials(storage, study_name):
                    raise
                log.error("search: no trial of %s finished; see their error.json", study_name)
                return None
