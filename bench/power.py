"""How many folds x seeds a paired comparison of two models needs, from measured variances.

    python bench/power.py docs/results/ravdess-0480499/runs --model adsrnn --baseline acrnn \\
        [--seeds FOLDER] [--unit fold|speaker] [--delta 3] [--alpha 0.05] [--power 0.8]

Model of a fold's result: test UAR = fold effect + seed noise. With ``s`` seeds per model per
fold averaged, the paired fold difference ``d = baseline - model`` has variance
``tau^2 + 2 sigma^2 / s``:

- ``sigma^2``, the seed-to-seed variance, is pooled over the folds where ``--seeds`` (by
  default ``FOLDER`` itself) holds several seeds of one model (each fold's sample variance,
  weighted by its degrees of freedom), and assumed the same for both models (the mean of
  the two when both have seeds);
- ``tau^2``, the variance of the true per-fold difference, is what remains of the measured
  variance of ``d`` over the folds of ``FOLDER`` once the seed noise of its per-fold means
  is taken out: ``sigma^2 (1 / s_model + 1 / s_baseline)``, averaged over the folds (at
  least 0).

``--unit speaker`` takes each test speaker as the unit instead (its UAR from the runs'
predictions): the variances of a leave-one-speaker-out design, where each speaker is a fold
of its own. Speakers that shared a fold also shared its trained model, so this is an
estimate for that design, not a test of the measured one.

The units (folds) needed for a two-sided paired t-test at ``alpha`` to detect a difference of
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
from typing import Any

import numpy as np
from scipy import stats

from ser.results import speaker_uar
from ser.stats import pooled_seed_variance


def load_runs(folder: Path) -> list[dict]:
    """Every ``results.json`` under ``folder`` that has a test UAR."""
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("**/results.json"))]
    return [r for r in runs if r.get("test_uar") is not None]


def per_unit(runs: list[dict], model: str, unit: str = "fold") -> dict[Any, list[float]]:
    """``{fold: [test UAR in points, one per seed]}`` of ``model``; with ``unit="speaker"``,
    ``{test speaker: [that speaker's UAR, one per seed]}`` (from the runs' predictions)."""
    values: dict[Any, list[float]] = defaultdict(list)
    for run in runs:
        if run["model"] != model:
            continue
        if unit == "fold":
            values[run["fold"]].append(100 * run["test_uar"])
        else:
            for speaker, uar in speaker_uar([run]).items():
                values[speaker].append(100 * uar)
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
    parser.add_argument("folder", type=Path, help="runs of both models (any seeds per fold)")
    parser.add_argument("--seeds", type=Path, help="runs with several seeds per fold")
    parser.add_argument("--model", default="adsrnn")
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--delta", type=float, default=3.0, help="difference in UAR points")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--power", type=float, default=0.8)
    parser.add_argument(
        "--unit", choices=("fold", "speaker"), default="fold",
        help="what a paired unit is: a fold, or a test speaker (a leave-one-speaker-out "
        "design: each speaker a fold of its own)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    runs = load_runs(args.folder)
    unit = args.unit
    model = per_unit(runs, args.model, unit)
    baseline = per_unit(runs, args.baseline, unit)
    common = sorted(set(model) & set(baseline))
    if len(common) < 3:
        print(f"error: {args.folder}: fewer than 3 {unit}s with both models", file=sys.stderr)
        return 2
    differences = [np.mean(baseline[u]) - np.mean(model[u]) for u in common]
    seed_runs = load_runs(args.seeds) if args.seeds else runs
    seeded = {m: {u: v for u, v in per_unit(seed_runs, m, unit).items() if len(v) > 1}
              for m in (args.model, args.baseline)}  # fmt: skip
    pooled = {m: pooled_seed_variance(v) for m, v in seeded.items() if v}
    if not pooled:
        print(f"error: no {unit} holds two seeds of either model", file=sys.stderr)
        return 2
    sigma2 = float(np.mean([v for v, _ in pooled.values()]))
    measured = float(np.var(differences, ddof=1))
    # the seed noise in a measured difference: sigma^2 / seeds of each model, per unit
    seed_share = float(np.mean([1 / len(model[u]) + 1 / len(baseline[u]) for u in common]))
    tau2 = max(0.0, measured - sigma2 * seed_share)
    wall = [r["wall_time_s"] for r in [*runs, *seed_runs] if r["model"] in (args.model,
            args.baseline)]  # fmt: skip
    minutes = float(np.median(wall)) / 60

    counts = sorted({len(model[u]) for u in common} | {len(baseline[u]) for u in common})
    seeds = f"{counts[0]}-{counts[-1]}" if len(counts) > 1 else str(counts[0])
    print(f"{args.baseline} - {args.model} over {len(common)} {unit}s of {args.folder} "
          f"({seeds} seed(s) each): mean {np.mean(differences):+.2f} points, variance "
          f"{measured:.2f}")  # fmt: skip
    for m, (v, dof) in pooled.items():
        print(f"seed-to-seed variance of {m}: {v:.2f} (sd {math.sqrt(v):.2f}; {dof} degrees "
              "of freedom)")  # fmt: skip
    print(f"{unit}-to-{unit} variance of the true difference: tau^2 = {measured:.2f} - "
          f"{sigma2:.2f} x {seed_share:.3g} = {tau2:.2f}")  # fmt: skip
    print(f"median run time: {minutes:.1f} min\n")
    print(
        f"| seeds per {unit} | variance of d | {unit}s for {args.delta:g} points | runs "
        "| CPU hours |"
    )
    print("|---|---|---|---|---|")
    for s in (1, 2, 3, 5, 10):
        variance = tau2 + 2 * sigma2 / s
        n = folds_needed(delta=args.delta, variance=variance, alpha=args.alpha, power=args.power)
        print(f"| {s} | {variance:.2f} | {n} | {2 * n * s} | {2 * n * s * minutes / 60:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
