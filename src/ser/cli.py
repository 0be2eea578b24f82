"""The one Hydra entry point behind ``train.py`` (``conf/config.yaml``) and ``sweep.py``
(``conf/sweep.yaml``).

Hydra would name the job after this file (``cli``); the configs set ``hydra.job.name``
(``train``, ``sweep``), which names each run's log file (``<run>/train.log``) and the
script in results.json's ``command``.
"""

import math
import sys

import hydra
from omegaconf import DictConfig

from ser.config import CONFIG_DIR
from ser.errors import exit_on_user_error
from ser.options import check_task_name_overrides


def run(cfg: DictConfig) -> float | None:
    """Train and test one run; returns its ``optimized_metric``, the objective Hydra's
    sweepers (Optuna) minimise or maximise, or ``None`` when the run did not record it
    (NaN for a search trial: a failed trial)."""
    from ser.task import train  # torch and Lightning: not needed for --help or a bad option

    results = train(cfg)
    value = results.get(cfg.optimized_metric.replace("/", "_"))
    if value is None and cfg.get("search"):
        return math.nan  # a failed trial: ser.search.ResilientOptunaSweeper records it failed
    return value


def main(config_name: str) -> None:
    """Check ``task_name=`` in ``sys.argv`` (one ``error:`` line, exit code 2), then run
    :func:`run` under Hydra with ``conf/<config_name>.yaml``. Hydra itself reports an
    unknown ``group=option``, listing the options."""
    exit_on_user_error(check_task_name_overrides)(sys.argv[1:])
    hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)(run)()
