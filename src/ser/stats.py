"""Paired tests between two models' scores on the same units (folds or test speakers)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass
class Comparison:
    """A model against the reference on the folds both have."""

    model: str
    reference: str
    folds: list[int]
    mean_difference: float  # model - reference, UAR
    wilcoxon_p: float
    ttest_p: float


def paired_comparison(
    model: str, uar: dict[int, float], reference: str, reference_uar: dict[int, float]
) -> Comparison:
    """``model`` vs ``reference`` over their common folds (differences model - reference)."""
    folds = sorted(set(uar) & set(reference_uar))
    a = np.array([uar[f] for f in folds])
    b = np.array([reference_uar[f] for f in folds])
    difference = a - b
    if len(folds) < 2 or not np.any(difference):
        wilcoxon_p = ttest_p = math.nan
    else:
        wilcoxon_p = float(stats.wilcoxon(a, b).pvalue)
        ttest_p = float(stats.ttest_rel(a, b).pvalue)
    mean = float(difference.mean()) if len(folds) else math.nan
    return Comparison(model, reference, folds, mean, wilcoxon_p, ttest_p)


@dataclass
class SeedSpread:
    """How a model's test UAR spreads over seeds within a fold and over folds."""

    runs: int  # seed runs over all folds
    folds: int
    seed_variance: float  # within a fold, pooled over the folds with several seeds
    seed_dof: int  # its degrees of freedom: sum over folds of (seeds - 1)
    fold_variance: float  # sample variance over folds of the per-fold means over seeds
    #: what remains of ``fold_variance`` once the seed noise of a per-fold mean is taken out
    #: (at least 0): the variance due to the folds (speakers) alone
    fold_only_variance: float


def pooled_seed_variance(per_fold: dict[int, list[float]]) -> tuple[float, int]:
    """The within-fold variance over seeds, pooled over folds (each fold's sample variance
    weighted by its degrees of freedom), and those degrees of freedom.

    Example:
        >>> pooled_seed_variance({0: [1.0, 3.0], 1: [3.0, 5.0, 7.0], 2: [0.0, 2.0], 3: [4.0]})
        (3.0, 4)
    """
    squares = sum(float(np.sum((np.array(v) - np.mean(v)) ** 2)) for v in per_fold.values())
    dof = sum(len(v) - 1 for v in per_fold.values())
    if dof == 0:
        raise ValueError("no fold has two seeds: the seed-to-seed variance is unknown")
    return squares / dof, dof


def seed_spread(per_fold: dict[int, list[float]]) -> SeedSpread | None:
    """Seed-to-seed against fold-to-fold variance of ``{fold: [score per seed]}``; ``None``
    when no fold has two seeds or fewer than two folds exist.

    A per-fold mean over ``s`` seeds carries seed noise of variance ``sigma^2 / s``, so the
    variance over folds of those means is the folds' own variance plus ``sigma^2 / s``
    averaged over the folds; the fold-only part is what remains.

    Example:
        >>> s = seed_spread({0: [1.0, 3.0], 1: [5.0, 7.0]})
        >>> s.seed_variance, s.fold_variance, s.fold_only_variance
        (2.0, 8.0, 7.0)
    """
    if len(per_fold) < 2 or all(len(v) < 2 for v in per_fold.values()):
        return None
    sigma2, dof = pooled_seed_variance(per_fold)
    means = np.array([np.mean(v) for v in per_fold.values()])
    fold_variance = float(means.var(ddof=1))
    seed_part = sigma2 * float(np.mean([1 / len(v) for v in per_fold.values()]))
    remainder = fold_variance - seed_part  # NaN stays NaN (a run without a score)
    return SeedSpread(
        runs=sum(len(v) for v in per_fold.values()),
        folds=len(per_fold),
        seed_variance=sigma2,
        seed_dof=dof,
        fold_variance=fold_variance,
        fold_only_variance=remainder if math.isnan(remainder) else max(0.0, remainder),
    )
