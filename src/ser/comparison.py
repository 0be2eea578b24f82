"""Two sweeps that differ in one setting (precision, recipe, ...), compared model by model.

For every model both sweeps ran: test UAR over their common folds (per fold the mean over
seeds), the paired difference with a Wilcoxon signed-rank and a paired t-test (as
``sweep.py aggregate`` compares models), and how often the two runs of a fold and seed
predict the same label for a test utterance.

    python sweep.py compare FIRST SECOND [--names plain recipe] [--json rows.json]

Each folder is a sweep folder or any folder holding ``<run>/results.json`` files (e.g.
``docs/results/emodb/runs``); as in ``sweep.py aggregate``, only the runs of the folder's
newest protocol count.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ser.hardware import hardware_label, hardware_text
from ser.io import require_writable, write_json_atomic
from ser.results import collect, latest_protocol, ordered_models
from ser.stats import paired_comparison

Runs = dict[str, dict[tuple[int, int], dict[str, Any]]]


def runs_by_model(folder: str | Path, *, seeds: Sequence[int] | None = None) -> Runs:
    """``{model: {(fold, seed): results}}`` of the tested runs under ``folder`` (of
    ``seeds`` only, when given)."""
    kept, _, _ = latest_protocol(collect(folder))
    runs: Runs = defaultdict(dict)
    for results in kept:
        if results.get("test_uar") is not None and (seeds is None or results["seed"] in seeds):
            runs[results["model"]][(results["fold"], results["seed"])] = results
    return runs


def check_paired(first: Runs, second: Runs, *, names: tuple[str, str]) -> None:
    """Refuse (``ValueError``) two sweeps whose folds are not the same test: another corpus
    or class set, or a fold with other test speakers. Their p-values would pair unrelated
    folds."""

    def design(runs: Runs) -> tuple[set, dict[int, tuple[str, ...]]]:
        corpora = {(r.get("corpus"), tuple(r.get("classes") or ())) for rs in runs.values()
                   for r in rs.values()}  # fmt: skip
        speakers = {fold: tuple(r.get("test_speakers") or ()) for rs in runs.values()
                    for (fold, _), r in rs.items()}  # fmt: skip
        return corpora, speakers

    (corpora_a, speakers_a), (corpora_b, speakers_b) = design(first), design(second)
    if corpora_a != corpora_b:
        raise ValueError(
            f"{names[0]} and {names[1]} test other corpora or classes "
            f"({sorted(corpora_a)} against {sorted(corpora_b)}): their folds do not pair"
        )
    for fold in sorted(set(speakers_a) & set(speakers_b)):
        if speakers_a[fold] != speakers_b[fold]:
            raise ValueError(
                f"fold {fold} tests speakers {list(speakers_a[fold])} in {names[0]} but "
                f"{list(speakers_b[fold])} in {names[1]}: their folds do not pair"
            )


def fold_uar(
    runs: dict[tuple[int, int], dict[str, Any]], metric: str = "test_uar"
) -> dict[int, float]:
    """``metric`` (test UAR) per fold of ``{(fold, seed): results}``, the mean over the
    fold's seeds."""
    per_fold: dict[int, list[float]] = defaultdict(list)
    for (fold, _), results in runs.items():
        per_fold[fold].append(results[metric])
    return {fold: float(np.mean(values)) for fold, values in per_fold.items()}


def agreement(first: dict[str, Any], second: dict[str, Any]) -> tuple[int, int]:
    """``(same predicted label, utterances)`` over the test utterances of two runs."""
    predictions = {p["id"]: p["pred"] for p in second["predictions"]}
    same = sum(predictions.get(p["id"]) == p["pred"] for p in first["predictions"])
    return same, len(first["predictions"])


def compare_sweeps(
    first: str | Path, second: str | Path, *, seeds: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """One row per model that both folders hold (their runs of ``seeds`` only, when given);
    differences are second - first.

    Example:
        >>> rows = compare_sweeps("docs/results/emodb/runs", "docs/results/emodb-bf16/runs")
        >>> [row["model"] for row in rows]
        ['adsrnn', 'acrnn', 'adrnn', 'asrnn']
    """
    runs_a, runs_b = runs_by_model(first, seeds=seeds), runs_by_model(second, seeds=seeds)
    check_paired(runs_a, runs_b, names=(str(first), str(second)))
    shared = set(runs_a) & set(runs_b)
    rows = []
    for model in ordered_models(shared):
        uar_a, uar_b = fold_uar(runs_a[model]), fold_uar(runs_b[model])
        comparison = paired_comparison(model, uar_b, model, uar_a)
        a = np.array([uar_a[f] for f in comparison.folds])
        b = np.array([uar_b[f] for f in comparison.folds])
        pairs = [k for k in runs_a[model] if k in runs_b[model] and k[0] in comparison.folds]
        counts = np.array([agreement(runs_a[model][k], runs_b[model][k]) for k in pairs])
        rows.append(
            {
                "model": model,
                "folds": len(comparison.folds),
                "uar_a_mean": float(a.mean()) if len(a) else None,
                "uar_a_std": float(a.std(ddof=1)) if len(a) > 1 else None,
                "uar_b_mean": float(b.mean()) if len(b) else None,
                "uar_b_std": float(b.std(ddof=1)) if len(b) > 1 else None,
                "mean_difference": comparison.mean_difference,
                "wilcoxon_p": comparison.wilcoxon_p,
                "ttest_p": comparison.ttest_p,
                "same_prediction": (
                    float(counts[:, 0].sum() / counts[:, 1].sum()) if len(pairs) else None
                ),
                "runs_a": sum(k[0] in comparison.folds for k in runs_a[model]),
                "runs_b": sum(k[0] in comparison.folds for k in runs_b[model]),
                "paired_runs": len(pairs),
                "hardware_a": hardware_text(Counter(map(hardware_label, runs_a[model].values()))),
                "hardware_b": hardware_text(Counter(map(hardware_label, runs_b[model].values()))),
            }
        )
    return rows


def _missing(value: float | None) -> bool:
    """No value: ``None`` (as read back from JSON) or NaN (fewer than two folds)."""
    return value is None or bool(np.isnan(value))


def _pct(value: float | None, sign: str = "") -> str:
    return "-" if _missing(value) else f"{100 * value:{sign}.2f}"


def _p(value: float | None) -> str:
    return "-" if _missing(value) else f"{value:.2f}"


def comparison_markdown(rows: Sequence[dict[str, Any]], names: tuple[str, str]) -> str:
    """The rows as a Markdown table: UAR in %, mean +- sample std; difference second - first."""
    a, b = names
    labels = {r.get(key) for r in rows for key in ("hardware_a", "hardware_b")}
    mixed = len(labels) > 1
    lines = [
        f"| model | folds | UAR {a} | UAR {b} | {b} - {a} | Wilcoxon p | t-test p | "
        "same prediction |" + (f" hardware {a} | hardware {b} |" if mixed else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|---|" if mixed else ""),
    ]
    for r in rows:
        same = "-" if r["same_prediction"] is None else f"{100 * r['same_prediction']:.1f} %"
        lines.append(
            f"| {r['model']} | {r['folds']} | {_pct(r['uar_a_mean'])} +- {_pct(r['uar_a_std'])} "
            f"| {_pct(r['uar_b_mean'])} +- {_pct(r['uar_b_std'])} | "
            f"{_pct(r['mean_difference'], '+')} | {_p(r['wilcoxon_p'])} | {_p(r['ttest_p'])} | "
            f"{same} |" + (f" {r.get('hardware_a')} | {r.get('hardware_b')} |" if mixed else "")
        )
    note = (
        "\nThe runs differ in precision or device kind (device kind, precision per side).\n"
        if mixed
        else f"\nHardware of every run: {labels.pop()} (device kind, precision).\n"
    )
    return "\n".join(lines) + "\n" + note + "".join(_seed_notes(rows, names))


def _seed_notes(rows: Sequence[dict[str, Any]], names: tuple[str, str]) -> list[str]:
    """A line per model whose two sweeps do not hold the same folds and seeds (other seeds,
    or a seed run missing on one side): its UARs are then means over other seeds, and its
    same-prediction share covers fewer runs."""
    a, b = names
    return [
        f"{r['model']}: the sweeps hold other runs (runs on the common folds: {r['runs_a']} "
        f"in {a}, {r['runs_b']} in {b}); each UAR is the mean over its own sweep's seeds, and "
        f"same prediction covers the {r['paired_runs']} runs both hold (same fold and seed).\n"
        for r in rows
        if "paired_runs" in r and not r["runs_a"] == r["runs_b"] == r["paired_runs"]
    ]


def compare_cli(argv: Sequence[str]) -> int:
    """``python sweep.py compare FIRST SECOND``: print (and with ``--json`` write) the
    paired comparison of two sweep folders."""
    parser = argparse.ArgumentParser(prog="sweep.py compare", description=compare_cli.__doc__)
    parser.add_argument("first", type=Path, help="folder of the reference sweep's runs")
    parser.add_argument("second", type=Path, help="folder of the changed sweep's runs")
    parser.add_argument(
        "--names", nargs=2, default=("first", "second"), metavar=("FIRST", "SECOND"),
        help="column names of the two sweeps, e.g. --names fp32 bf16",
    )  # fmt: skip
    parser.add_argument(
        "--seeds", nargs="+", type=int,
        help="only the runs of these seeds, e.g. to check one seed's reruns (default: all)",
    )  # fmt: skip
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    for folder in (args.first, args.second):
        if not runs_by_model(folder, seeds=args.seeds):
            which = f" of seed(s) {' '.join(map(str, args.seeds))}" if args.seeds else ""
            print(f"error: {folder}: no <run>/results.json with a test_uar{which}",
                  file=sys.stderr)  # fmt: skip
            return 2
    try:
        if args.json:
            require_writable(args.json, option="--json")
        rows = compare_sweeps(args.first, args.second, seeds=args.seeds)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not rows:
        print(f"error: no model has tested runs in both {args.first} and {args.second}",
              file=sys.stderr)  # fmt: skip
        return 2
    print(comparison_markdown(rows, tuple(args.names)), end="")
    if args.json:
        write_json_atomic(args.json, rows)
    return 0
