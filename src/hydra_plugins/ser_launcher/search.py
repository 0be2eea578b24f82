"""``hparams_search=optuna``'s sweeper: hydra-optuna-sweeper's, surviving failed trials and
resuming a study cleanly (:mod:`ser.search`).

Hydra imports every module of ``hydra_plugins`` for every app: optuna is imported only
when a search runs.
"""

from __future__ import annotations

import logging
import sys
from contextlib import ExitStack

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

log = logging.getLogger(__name__)


class ResilientOptunaSweeper(OptunaSweeper):
    """``OptunaSweeper`` that records a failed trial as failed and goes on, and fails the
    trials an interrupted search left running."""

    def sweep(self, arguments: list[str]) -> None:
        from ser.errors import RunFolderBusyError
        from ser.runlock import run_folder_lock
        from ser.search import fail_stale_trials, failed_trials_are_told_failed

        storage, study_name = self.sweeper.storage, self.sweeper.study_name
        with ExitStack() as stack:
            # one search per folder at a time: trials left running are then a killed search's
            try:
                stack.enter_context(run_folder_lock(str(self.sweeper.config.hydra.sweep.dir)))
            except RunFolderBusyError as err:
                print(f"error: another search runs in this folder: {err}", file=sys.stderr)
                sys.exit(2)
            fail_stale_trials(storage, study_name)
            with failed_trials_are_told_failed() as told:
                try:
                    return super().sweep(arguments)
                except ValueError:
                    # the base sweeper reports the study's best trial; when every trial of
                    # this run failed there is none, and the failures are reported after
                    if not told.all_failed:
                        raise
                    log.error("search: no trial of %s finished; see their error.json", study_name)
                    return None
