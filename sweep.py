"""The whole comparison from one command, resumable.

    python sweep.py [train.py overrides]      # 4 models x 10 folds (a Hydra multirun)
    python sweep.py aggregate DIR             # tables and figures of a sweep folder
    python sweep.py best DIR                  # the best settings of a hyper-parameter search

See README "Reproduce the comparison" and conf/sweep.yaml.
"""

import sys

import hydra
from omegaconf import DictConfig

from ser.config import CONFIG_DIR, check_choices_or_exit
from ser.task import train


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="sweep")
def main(cfg: DictConfig) -> float | None:
    results = train(cfg)
    return results.get(cfg.optimized_metric.replace("/", "_"))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "aggregate":
        from ser.results import aggregate_cli

        sys.exit(aggregate_cli(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "best":
        from ser.results import best_cli

        sys.exit(best_cli(sys.argv[2:]))
    check_choices_or_exit(sys.argv[1:])
    main()
