"""The results commands of ``sweep.py``: ``aggregate`` (a sweep folder's tables) and
``best`` (a search's best settings)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ser.errors import ConfigError
from ser.io import require_writable
from ser.results import aggregate, collect, joined_runs, search_trials
from ser.tables import summary_markdown, write_summary


def aggregate_cli(argv: Sequence[str]) -> int:
    """``python sweep.py aggregate DIR``: write and print the summary of a sweep folder."""
    parser = argparse.ArgumentParser(prog="sweep.py aggregate", description=aggregate_cli.__doc__)
    parser.add_argument("sweep_dir", type=Path, help="folder holding the runs' results.json")
    parser.add_argument("--reference", default="adsrnn", help="model the others are compared with")
    parser.add_argument(
        "--with", dest="others", type=Path, action="append", default=[], metavar="DIR",
        help="another folder of runs on the same folds to put in the same tables (its newest "
        "settings), e.g. reference rows beside the networks; repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the summary (default: SWEEP_DIR)"
    )
    args = parser.parse_args(argv)
    folders = [args.sweep_dir, *args.others]
    for folder in folders:
        if not collect(folder):
            print(f"error: no results.json under {folder}", file=sys.stderr)
            return 2
    try:
        summary = aggregate(
            joined_runs(folders) if args.others else collect(args.sweep_dir),
            failures=[f for folder in folders for f in collect(folder, "error.json")],
            cross=[c for folder in folders for c in collect(folder, "cross_eval/*.json")],
            reference=args.reference,
            newest_protocol=not args.others,
        )
    except (ValueError, KeyError) as err:
        print(f"error: {args.sweep_dir}: cannot aggregate ({err!r})", file=sys.stderr)
        return 2
    out = args.out or args.sweep_dir
    if args.out:
        try:
            require_writable(out / "summary.md", option="--out")
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    paths = write_summary(summary, out)
    print(summary_markdown(summary))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 1 if summary.failures else 0


def best_cli(argv: Sequence[str]) -> int:
    """``python sweep.py best DIR``: print the best trial's overrides (one line), for
    ``python sweep.py $(python sweep.py best DIR)``."""
    if len(argv) != 1:
        print("usage: python sweep.py best SEARCH_DIR", file=sys.stderr)
        return 2
    trials = search_trials(argv[0])
    if not trials:
        print(f"error: no finished search trial (results.json) under {argv[0]}", file=sys.stderr)
        return 2
    print(" ".join(trials[0]["params"]))
    return 0
