"""How many folds x seeds a paired comparison of two models needs, from measured variances.

    python bench/power.py docs/results/ravdess/runs --seeds docs/results/ravdess-seeds/runs \\
        --model adsrnn --baseline acrnn [--delta 3] [--alpha 0.05] [--power 0.8]

Model of a fold's result: test UAR = fold effect + seed noise. With ``s`` seeds per model per
fold averaged, the paired fold difference ``d = baseline - model`` has variance
``tau^2 + 2 sigma^2 / s``:

- ``sigma^2``, the seed-to-seed variance, is pooled over the folds where ``--seeds`` holds
  several seeds of one model (each fold's sample variance, weighted by its degrees of
  freedom), and assumed the same for both models unless both have seeds;
- ``tau^2``, the variance of the true per-fold difference, is what remains of the measured
  variance of ``d`` over the folds of ``FOLDER`` (``s0`` seeds per model there) once the seed
  part ``2 sigma^2 / s0`` is taken out (at least 0).

The folds needed for a two-sided paired t-test at ``alpha`` to detect a difference of
``delta`` UAR points with the given power: the smallest ``n`` whose power, from the
noncentral t distribution (``df = n - 1``, noncentrality ``delta / sqrt(v / n)``), reaches it.
The cost is ``n * s * 2`` runs at the median ``wall_time_s`` of the two models' runs (the
median, because a run that a suspended session or a test suite shared the CPU with is
slower by any amount).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

from ser.stats import pooled_seed_variance


def load_runs(folder: Path) -> list[dict]:
    """Every ``results.json`` under ``folder`` that has a test UAR."""
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("**/results.json"))]
    return [r for r in runs if r.get("test_uar") is not None]


def per_fold(runs: list[dict], model: str) -> dict[int, list[float]]:
    """``{fold: [test UAR in points, one per seed]}`` of ``model``."""
    values: dict[int, list[float]] = defaultdict(list)
    for run in runs:
        if run["model"] == model:
            values[run["fold"]].append(100 * run["test_uar"])
    return dict(values)


def paired_power(n: int, *, delta: float, variance: float, alpha: float) -> float:
    """Power of the two-sided paired t-test over ``n`` folds.

    Example:
        >>> round(paired_power(10, delta=3.0, variance=9.0, alpha=0.05), 3)
        0.803
    """
    if n < 2:
        return 0.0
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)
    nc = delta / math.sqrt(variance / n)
    return float(stats.nct.sf(critical, df, nc) + stats.nct.cdf(-critical, df, nc))


def folds_needed(*, delta: float, variance: float, alpha: float, power: float) -> int:
    """The smallest number of folds whose paired t-test reaches ``power``.

    Example:
        >>> folds_needed(delta=3.0, variance=9.0, alpha=0.05, power=0.8)
        10
    """
    n = 2
    while paired_power(n, delta=delta, variance=variance, alpha=alpha) < power:
        n += 1
    return n


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="runs of both models, the same seeds per fold")
    parser.add_argument("--seeds", type=Path, help="runs with several seeds per fold")
    parser.add_argument("--model", default="adsrnn")
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--delta", type=float, default=3.0, help="difference in UAR points")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--power", type=float, default=0.8)
    args = parser.parse_args(argv)

    runs = load_runs(args.folder)
    model, baseline = per_fold(runs, args.model), per_fold(runs, args.baseline)
    common = sorted(set(model) & set(baseline))
    if len(common) < 3:
        print(f"error: {args.folder}: fewer than 3 folds with both models", file=sys.stderr)
        return 2
    s0 = len(model[common[0]])
    differences = [np.mean(baseline[f]) - np.mean(model[f]) for f in common]
    seed_runs = load_runs(args.seeds) if args.seeds else runs
    seeded = {m: {f: v for f, v in per_fold(seed_runs, m).items() if len(v) > 1}
              for m in (args.model, args.baseline)}  # fmt: skip
    pooled = {m: pooled_seed_variance(v) for m, v in seeded.items() if v}
    if not pooled:
        print("error: no fold holds two seeds of either model", file=sys.stderr)
        return 2
    sigma2 = float(np.mean([v for v, _ in pooled.values()]))
    measured = float(np.var(differences, ddof=1))
    tau2 = max(0.0, measured - 2 * sigma2 / s0)
    wall = [r["wall_time_s"] for r in [*runs, *seed_runs] if r["model"] in (args.model,
            args.baseline)]  # fmt: skip
    minutes = float(np.median(wall)) / 60

    print(f"{args.baseline} - {args.model} over {len(common)} folds of {args.folder} "
          f"({s0} seed(s) each): mean {np.mean(differences):+.2f} points, variance "
          f"{measured:.2f}")  # fmt: skip
    for m, (v, dof) in pooled.items():
        print(f"seed-to-seed variance of {m}: {v:.2f} (sd {math.sqrt(v):.2f}; {dof} degrees "
              "of freedom)")  # fmt: skip
    print(f"fold-to-fold variance of the true difference: tau^2 = {measured:.2f} - 2 x "
          f"{sigma2:.2f} / {s0} = {tau2:.2f}")  # fmt: skip
    print(f"median run time: {minutes:.1f} min\n")
    print(
        f"| seeds per fold | variance of d | folds for {args.delta:g} points | runs | CPU hours |"
    )
    print("|---|---|---|---|---|")
    for s in (1, 2, 3, 5, 10):
        variance = tau2 + 2 * sigma2 / s
        n = folds_needed(delta=args.delta, variance=variance, alpha=args.alpha, power=args.power)
        print(f"| {s} | {variance:.2f} | {n} | {2 * n * s} | {2 * n * s * minutes / 60:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
