"""Accuracy parity of two sweeps that differ only in precision (e.g. fp32 and bf16 autocast).

For every model both sweeps ran, a paired comparison of test UAR over their common folds
(Wilcoxon signed-rank and paired t-test, as ``sweep.py aggregate`` compares models), plus
how often the two runs of a fold predict the same label for a test utterance.

    python bench/precision_parity.py FP32_DIR BF16_DIR [--names fp32 bf16] [--json rows.json]

Each folder is a sweep folder, or any folder holding ``<run>/results.json`` files (e.g.
``docs/results/emodb/runs``).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ser.io import write_json_atomic
from ser.models import NETWORKS
from ser.results import collect, paired_comparison


def by_model(folder: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """``{model: {fold: results}}`` of the runs under ``folder`` (one seed per fold)."""
    runs: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for results in collect(folder):
        runs[results["model"]][results["fold"]] = results
    return runs


def agreement(a: dict[str, Any], b: dict[str, Any]) -> tuple[int, int]:
    """(same predicted label, utterances) over the test utterances of two runs of a fold."""
    preds = {p["id"]: p["pred"] for p in b["predictions"]}
    same = sum(preds.get(p["id"]) == p["pred"] for p in a["predictions"])
    return same, len(a["predictions"])


def compare(first: Path, second: Path) -> list[dict[str, Any]]:
    """One row per model that both folders hold."""
    runs_a, runs_b = by_model(first), by_model(second)
    rows = []
    shared = {m for m in runs_a if m in runs_b}
    for model in [m for m in NETWORKS if m in shared] + sorted(shared - set(NETWORKS)):
        uar_a = {f: r["test_uar"] for f, r in runs_a[model].items()}
        uar_b = {f: r["test_uar"] for f, r in runs_b[model].items()}
        comparison = paired_comparison(model, uar_b, model, uar_a)
        folds = comparison.folds
        counts = np.array([agreement(runs_a[model][f], runs_b[model][f]) for f in folds])
        a = np.array([uar_a[f] for f in folds])
        b = np.array([uar_b[f] for f in folds])
        rows.append(
            {
                "model": model,
                "folds": len(folds),
                "uar_a_mean": float(a.mean()),
                "uar_a_std": float(a.std(ddof=1)) if len(a) > 1 else None,
                "uar_b_mean": float(b.mean()),
                "uar_b_std": float(b.std(ddof=1)) if len(b) > 1 else None,
                "mean_difference": comparison.mean_difference,
                "wilcoxon_p": comparison.wilcoxon_p,
                "ttest_p": comparison.ttest_p,
                "same_prediction": float(counts[:, 0].sum() / counts[:, 1].sum()),
            }
        )
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def markdown(rows: list[dict[str, Any]], names: tuple[str, str]) -> str:
    """The rows as a Markdown table (UAR in %, difference = second - first)."""
    a, b = names
    lines = [
        f"| model | folds | UAR {a} | UAR {b} | {b} - {a} | Wilcoxon p | t-test p | "
        "same prediction |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['folds']} | {_pct(r['uar_a_mean'])} +- {_pct(r['uar_a_std'])} "
            f"| {_pct(r['uar_b_mean'])} +- {_pct(r['uar_b_std'])} | "
            f"{100 * r['mean_difference']:+.2f} | {r['wilcoxon_p']:.2f} | {r['ttest_p']:.2f} | "
            f"{100 * r['same_prediction']:.1f} % |"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, compare the two folders, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--names", nargs=2, default=("fp32", "bf16"))
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args()
    rows = compare(args.first, args.second)
    if not rows:
        parser.error(f"no model has runs in both {args.first} and {args.second}")
    print(markdown(rows, tuple(args.names)))
    if args.json:
        write_json_atomic(args.json, rows)


if __name__ == "__main__":
    main()
