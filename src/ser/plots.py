"""Figures: row-normalised confusion matrices and per-fold UAR (matplotlib, no display).

Figures are built with matplotlib's object-oriented API (:class:`~matplotlib.figure.Figure`),
not pyplot: no global figure registry to close, and no backend to switch, so importing this
module leaves the caller's matplotlib set-up alone.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def row_normalise(matrix: np.ndarray) -> np.ndarray:
    """Rows as percentages of their sums (rows without samples stay zero)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    sums = matrix.sum(axis=1, keepdims=True)
    return np.divide(100.0 * matrix, sums, out=np.zeros_like(matrix), where=sums > 0)


def draw_confusion(ax: Axes, matrix: np.ndarray, classes: Sequence[str], title: str) -> None:
    """Row-normalised confusion matrix (%) with class names; rows true, columns predicted."""
    percent = row_normalise(matrix)
    ax.imshow(percent, cmap="Blues", vmin=0, vmax=100)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (i, j), value in np.ndenumerate(percent):
        ax.text(
            j, i, f"{value:.1f}", ha="center", va="center",
            color="white" if value > 50 else "black", fontsize=9,
        )  # fmt: skip


def confusion_figure(
    matrices: Mapping[str, np.ndarray], classes: Sequence[str], *, columns: int = 2
) -> Figure:
    """One confusion-matrix panel per entry of ``matrices`` (``{title: counts}``)."""
    count = len(matrices)
    columns = min(columns, count)
    rows = -(-count // columns)
    fig = Figure(figsize=(4.2 * columns, 3.8 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax, (title, matrix) in zip(axes.flat, matrices.items(), strict=False):
        draw_confusion(ax, np.asarray(matrix), classes, title)
    for ax in axes.flat[count:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def uar_per_fold_figure(uar: Mapping[str, Mapping[int, float]]) -> Figure:
    """Per-fold UAR per model: a box plot with every fold drawn as a point."""
    models = list(uar)
    fig = Figure(figsize=(1.6 * len(models) + 2.5, 4))
    ax = fig.subplots()
    values = [np.array(list(uar[m].values()), dtype=float) * 100 for m in models]
    ax.boxplot(values, showfliers=False)
    ax.set_xticks(range(1, len(models) + 1), models)
    for i, (model, vals) in enumerate(zip(models, values, strict=True), start=1):
        jitter = np.linspace(-0.12, 0.12, len(vals)) if len(vals) > 1 else np.zeros(1)
        ax.scatter(i + jitter, vals, s=18, zorder=3, label=None)
        for x, y, fold in zip(i + jitter, vals, uar[model], strict=True):
            ax.annotate(str(fold), (x, y), fontsize=6, xytext=(3, 0), textcoords="offset points")
    ax.set_ylabel("UAR (%)")
    ax.set_title("test UAR per fold")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def cross_corpus_figure(uar: Mapping[str, Mapping[str, float]], *, train: str) -> Figure:
    """Heatmap of mean test UAR (%): models (rows) x test corpora (columns)."""
    models = list(uar)
    corpora = list(dict.fromkeys(c for row in uar.values() for c in row))
    values = np.array([[uar[m].get(c, np.nan) * 100 for c in corpora] for m in models])
    fig = Figure(figsize=(1.4 * len(corpora) + 2.5, 0.6 * len(models) + 1.8))
    ax = fig.subplots()
    image = ax.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(corpora)), corpora)
    ax.set_yticks(range(len(models)), models)
    for (i, j), value in np.ndenumerate(values):
        if not np.isnan(value):
            color = "black" if value > 60 else "white"
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", color=color, fontsize=9)
    ax.set_xlabel("test corpus")
    ax.set_title(f"test UAR (%), trained on {train}")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def timeline_figure(
    starts_s: Sequence[float], probs: Mapping[str, Sequence[float]], *, title: str
) -> Figure:
    """Class probabilities (lines) over a recording's windows, by window start in seconds."""
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    ax = fig.add_subplot()
    for name, values in probs.items():
        ax.plot(starts_s, values, label=name, linewidth=1.2)
    ax.set_ylim(0, 1)
    ax.set_xlabel("window start (s)")
    ax.set_ylabel("probability")
    ax.set_title(title)
    ax.legend(loc="upper right", ncols=len(probs), fontsize=8)
    return fig


def save_figure(fig: Figure) -> bytes:
    """The figure as PNG bytes, for atomic writing."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()
