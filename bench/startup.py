"""Start-up time of the entry points: how long ``python train.py --help`` and
``python sweep.py --help`` take, and whether starting them imported torch or Lightning.

Every job of a sweep and every CLI call pays the start-up, so the entry points and the
launcher plugins (Hydra imports every launcher plugin for every Hydra app in the
environment) import torch and Lightning only when a run trains. Each command runs
``--repeats`` times in a fresh interpreter; the table gives the median and the fastest
wall time. A second process competing for the cores (a sweep in the background) slows
every row, so note the machine's load beside the figures.

    python bench/startup.py [--repeats 5] [--json rows.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

COMMANDS = {
    "train.py --help": [sys.executable, str(REPO / "train.py"), "--help"],
    "sweep.py --help": [sys.executable, str(REPO / "sweep.py"), "--help"],
}

#: what a command's start-up must not import (checked on the entry points' own imports)
HEAVY = ("torch", "lightning")
IMPORTS = (
    "import sys, ser.cli, ser.config, ser.results, hydra_plugins.ser_launcher.launcher, "
    "hydra_plugins.ser_launcher.slurm; print(' '.join(m for m in {heavy} if m in sys.modules))"
)


def wall_times(command: list[str], repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` runs of ``command`` (output discarded)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, cwd=REPO, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    heavy = subprocess.run(
        [sys.executable, "-c", IMPORTS.format(heavy=HEAVY)],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    rows = []
    print(f"{'command':<20} {'median s':>9} {'fastest s':>10}")
    for name, command in COMMANDS.items():
        times = wall_times(command, args.repeats)
        rows.append({"command": name, "median_s": statistics.median(times), "min_s": min(times)})
        print(f"{name:<20} {statistics.median(times):>9.2f} {min(times):>10.2f}")
    print(f"heavy imports at start-up: {heavy or 'none'}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "heavy_imports": heavy.split()}, indent=1))
    return 1 if heavy else 0


if __name__ == "__main__":
    sys.exit(main())
