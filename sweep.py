"""The whole comparison from one command, resumable.

    python sweep.py [train.py overrides]      # 4 models x 10 folds (a Hydra multirun)
    python sweep.py aggregate DIR             # tables and figures of a sweep folder
    python sweep.py best DIR                  # the best settings of a hyper-parameter search
    python sweep.py compare DIR_A DIR_B       # two sweeps paired model by model, fold by fold
    python sweep.py lengths DIR...            # UAR against training length (one sweep per length)

See README "Reproduce the comparison" and conf/sweep.yaml.
"""

import sys

from ser.cli import main

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "aggregate":
        from ser.results_cli import aggregate_cli

        sys.exit(aggregate_cli(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "best":
        from ser.results_cli import best_cli

        sys.exit(best_cli(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "compare":
        from ser.comparison import compare_cli

        sys.exit(compare_cli(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "lengths":
        from ser.lengths import lengths_cli

        sys.exit(lengths_cli(sys.argv[2:]))
    main("sweep")
