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
