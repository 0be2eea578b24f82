"""Validation and test UAR against training length: is a ranking an artefact of the schedule?

The same models and folds trained for several step budgets (one sweep folder per budget, e.g.
``trainer.max_steps=300,1000,3000`` with ``task_name=steps<N>``), compared per model: the
best validation UAR and the test UAR of the checkpoint selected on it, per fold and as mean
+- sample std over folds, and each run's validation curve over its steps.

    python sweep.py lengths sweeps/results-ravdess sweeps/steps1000-ravdess \\
        sweeps/steps3000-ravdess --models adsrnn acrnn --seeds 12345 --out study/
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ser.comparison import fold_uar
from ser.errors import ConfigError
from ser.io import require_writable, write_bytes_atomic, write_text_atomic
from ser.plots import save_figure
from ser.results import collect, ordered_models


def length_runs(
    folders: Sequence[str | Path],
    *,
    models: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """The tested runs of ``folders`` (their ``results.json``, with ``path``), of ``models``
    and ``seeds`` only when given (one seed at every length, when one folder holds more
    seeds than the others, so that every length has the same seeds' noise)."""
    return [
        results
        for folder in folders
        for results in collect(folder)
        if results.get("test_uar") is not None
        and results.get("steps_trained") is not None
        and (models is None or results["model"] in models)
        and (seeds is None or results.get("seed") in seeds)
    ]


def length_rows(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and training length, over the folds the model has at every one of its
    lengths (a mean over other folds would compare other speakers): the best validation UAR
    and the test UAR per fold (the mean over its seeds) and their mean and sample std, in %.

    Example:
        >>> runs = [{"model": "m", "steps_trained": n, "fold": f, "seed": 1, "val_uar_best": v,
        ...          "test_uar": t} for n, f, v, t in [(300, 0, 0.5, 0.4), (300, 1, 0.7, 0.6),
        ...          (300, 2, 0.9, 0.9), (900, 0, 0.6, 0.5), (900, 1, 0.8, 0.7)]]
        >>> [(r["steps"], r["folds"], r["test_mean"]) for r in length_rows(runs)]
        [(300, [0, 1], 50.0), (900, [0, 1], 60.0)]
    """
    by_length: dict[tuple[str, int], dict[tuple[int, int], dict[str, Any]]] = defaultdict(dict)
    for run in runs:
        by_length[run["model"], int(run["steps_trained"])][int(run["fold"]), run["seed"]] = run
    rows = []
    for model in ordered_models({model for model, _ in by_length}):
        lengths = sorted(s for m, s in by_length if m == model)
        common = sorted(set.intersection(*({f for f, _ in by_length[model, s]} for s in lengths)))
        for steps in lengths if common else []:
            val_per_fold = fold_uar(by_length[model, steps], "val_uar_best")
            test_per_fold = fold_uar(by_length[model, steps])
            val = [100 * val_per_fold[f] for f in common]
            test = [100 * test_per_fold[f] for f in common]
            rows.append(
                {
                    "model": model,
                    "steps": steps,
                    "folds": common,
                    "val": val,
                    "test": test,
                    "val_mean": statistics.fmean(val),
                    "val_std": statistics.stdev(val) if len(val) > 1 else 0.0,
                    "test_mean": statistics.fmean(test),
                    "test_std": statistics.stdev(test) if len(test) > 1 else 0.0,
                }
            )
    return rows


def lengths_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a Markdown table, per fold and over folds."""
    lines = [
        "| model | steps | folds | best val UAR | test UAR | test UAR per fold |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        per_fold = ", ".join(
            f"{f}: {t:.2f}" for f, t in zip(row["folds"], row["test"], strict=True)
        )
        lines.append(
            f"| {row['model']} | {row['steps']} | {len(row['folds'])} "
            f"| {row['val_mean']:.2f} +- {row['val_std']:.2f} "
            f"| {row['test_mean']:.2f} +- {row['test_std']:.2f} | {per_fold} |"
        )
    return "\n".join(lines) + "\n"


def validation_curve(run_dir: Path) -> list[tuple[int, float]]:
    """``(step, val/uar in %)`` of every validation in the run's ``csv/metrics.csv`` (empty
    without one)."""
    path = run_dir / "csv" / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [
            (int(row["step"]), 100 * float(row["val/uar"]))
            for row in csv.DictReader(f)
            if row.get("val/uar")
        ]


#: line styles that tell the folds apart in the validation curves
FOLD_STYLES = ("-", "--", ":", "-.")


def lengths_figure(rows: Sequence[dict[str, Any]], runs: Sequence[dict[str, Any]]) -> Figure:
    """Left: best validation and test UAR against training length per model (mean over
    folds, lines; each fold, points). Right: the validation curve of each model's longest
    runs, a line style per fold, with a star at the step whose checkpoint was selected."""
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    colours = {}
    for model in dict.fromkeys(row["model"] for row in rows):
        mine = [row for row in rows if row["model"] == model]
        steps = [row["steps"] for row in mine]
        (line,) = left.plot(
            steps, [r["test_mean"] for r in mine], marker="o", label=f"{model} test"
        )
        colours[model] = line.get_color()
        left.plot(steps, [r["val_mean"] for r in mine], marker="s", linestyle="--",
                  color=line.get_color(), label=f"{model} best val")  # fmt: skip
        for row in mine:
            left.scatter([row["steps"]] * len(row["test"]), row["test"], s=10, alpha=0.4,
                         color=line.get_color())  # fmt: skip
    left.set_xscale("log")
    left.set_xlabel("training steps")
    left.set_ylabel("UAR (%)")
    left.set_title("test UAR (selected on validation) and best validation UAR")
    left.legend(fontsize=8)
    longest = {row["model"]: row["steps"] for row in rows}
    folds = sorted({int(run["fold"]) for run in runs})
    for run in runs:
        if int(run["steps_trained"]) != longest.get(run["model"]):
            continue
        curve = validation_curve(Path(run["path"]).parent)
        if not curve:
            continue
        colour = colours[run["model"]]
        style = FOLD_STYLES[folds.index(int(run["fold"])) % len(FOLD_STYLES)]
        right.plot(*zip(*curve, strict=True), color=colour, linestyle=style, linewidth=0.9,
                   alpha=0.7, label=f"{run['model']} fold {run['fold']}")  # fmt: skip
        # the checkpoint selection keeps the first of equal validation scores
        best_step, best_uar = max(curve, key=lambda point: point[1])
        right.plot([best_step], [best_uar], marker="*", markersize=9, color=colour)
    right.set_xlabel("step")
    right.set_ylabel("validation UAR (%)")
    right.set_title("validation UAR of the longest runs (star: selected checkpoint)")
    right.legend(fontsize=7, ncols=2)
    return fig


def lengths_cli(argv: Sequence[str]) -> int:
    """``python sweep.py lengths FOLDER...``: print the training-length table of the runs in
    the folders (with ``--out``, also write ``lengths.md`` and ``lengths.png`` there)."""
    parser = argparse.ArgumentParser(prog="sweep.py lengths", description=lengths_cli.__doc__)
    parser.add_argument("folders", nargs="+", type=Path, help="sweep folders, one per length")
    parser.add_argument("--models", nargs="+", help="only these models (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, help="only these seeds (default: all)")
    parser.add_argument("--out", type=Path, help="folder for lengths.md and lengths.png")
    args = parser.parse_args(argv)
    runs = length_runs(args.folders, models=args.models, seeds=args.seeds)
    if not runs:
        folders = " ".join(str(f) for f in args.folders)
        print(f"error: no <run>/results.json with test_uar and steps_trained in {folders}",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.out is not None:
        try:
            require_writable(args.out / "lengths.md", option="--out")
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    rows = length_rows(runs)
    if not rows:
        print("error: no model has a fold at every one of its training lengths", file=sys.stderr)
        return 2
    text = lengths_markdown(rows)
    print(text, end="")
    if args.out is not None:
        write_text_atomic(args.out / "lengths.md", text)
        write_bytes_atomic(args.out / "lengths.png", save_figure(lengths_figure(rows, runs)))
        print(f"wrote {args.out / 'lengths.md'}, {args.out / 'lengths.png'}")
    return 0
