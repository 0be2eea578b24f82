"""Train and test one model on one fold: ``python train.py model=adsrnn fold=3``.

Configs live in conf/ (``python train.py --help`` lists the groups); results go to the
run folder printed at the start: results.json, config.yaml, checkpoints/.
"""

from ser.cli import main

if __name__ == "__main__":
    main("config")
