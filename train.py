"""Train and test one model on one fold: ``python train.py model=adsrnn fold=3``.

Configs live in conf/ (``python train.py --help`` lists the groups); results go to the
run folder printed at the start: results.json, config.yaml, checkpoints/.
"""

import sys

import hydra
from omegaconf import DictConfig

from ser.config import CONFIG_DIR, check_choices_or_exit
from ser.task import train


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    results = train(cfg)
    return results.get(cfg.optimized_metric.replace("/", "_"))


if __name__ == "__main__":
    check_choices_or_exit(sys.argv[1:])
    main()
