"""Rendering a sweep's :class:`~ser.results.Summary`: ``summary.md``, the CSV tables and
the figures, and the table of a hyper-parameter search.

Outputs (in the sweep folder): ``summary.md``, ``summary.csv``, ``uar_per_fold.csv``,
``confusion.png`` (row-normalised, summed over folds) and ``uar_per_fold.png``; with
``+cross_eval`` also ``cross_corpus.csv`` and ``cross_corpus.png``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ser.hardware import hardware_text
from ser.io import write_bytes_atomic, write_text_atomic
from ser.results import Summary
from ser.text import csv_text


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.2f}"


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3g}"


def summary_rows(summary: Summary) -> list[dict[str, Any]]:
    """One CSV row per model (fractions in [0, 1])."""
    rows = []
    for model, s in summary.models.items():
        uar_mean, uar_std = s.mean_std(s.uar)
        wa_mean, wa_std = s.mean_std(s.wa)
        f1_mean, f1_std = s.mean_std(s.f1)
        rows.append(
            {
                "model": model,
                "n_folds": s.n_folds,
                "missing_folds": " ".join(map(str, s.missing_folds)),
                "failed_folds": " ".join(map(str, s.failed_folds)),
                "uar_mean": uar_mean,
                "uar_std": uar_std,
                "wa_mean": wa_mean,
                "wa_std": wa_std,
                "f1_mean": f1_mean,
                "f1_std": f1_std,
                "hardware": hardware_text(s.hardware),
            }
            | {f"recall_{c}": s.recall[c] for c in summary.classes}
        )
    return rows


def _column_or_sentence(values: set[str], *, differ: str, same: str) -> tuple[bool, str]:
    """Whether the runs' ``values`` (hardware, code version) differ, so that the table needs a
    column, and the sentence that says so or names the one value (``same`` formatted).

    Example:
        >>> _column_or_sentence({"cpu"}, differ="see the column", same="all on {}")
        (False, 'all on cpu')
    """
    if len(values) > 1:
        return True, differ
    return False, same.format(", ".join(values))


def summary_markdown(summary: Summary) -> str:
    """The tables of ``summary.md``."""
    labels = {label for s in summary.models.values() for label in s.hardware}
    mixed, hardware = _column_or_sentence(
        labels,
        differ="Runs differ in precision or device kind: see the hardware column.",
        same="Hardware of every run: {} (device kind, precision).",
    )
    commits = {c for s in summary.models.values() for c in s.commits}
    versions, code = _column_or_sentence(
        commits,
        differ="Runs come from several code versions: see the code column.",
        same="" if commits == {"?"} else "Code version of every run: {}.",
    )
    lines = [
        f"# Sweep summary ({summary.settings.get('corpus')}, "
        f"{summary.n_folds_expected} folds expected)",
        "",
        " ".join(
            filter(
                None,
                [
                    "UAR, WA and macro-F1 in %, mean +- sample std over folds (per fold: mean "
                    "over seeds).",
                    hardware,
                    code,
                ],
            )
        ),
        "",
        "| model | folds | UAR | WA | macro-F1 | "
        + " | ".join(f"recall {c}" for c in summary.classes)
        + (" | hardware" if mixed else "")
        + (" | code" if versions else "")
        + " |",
        "|---|---|---|---|---|" + "---|" * (len(summary.classes) + mixed + versions),
    ]
    for row, s in zip(summary_rows(summary), summary.models.values(), strict=True):
        notes = [
            f"{what} {','.join(map(str, which))}"
            for what, which in (("missing", s.missing_folds), ("failed", s.failed_folds))
            if which
        ]
        seeds = sorted(set(s.seeds.values()))
        if seeds != [1]:
            notes.append(f"{seeds[0]}-{seeds[-1]} seeds" if len(seeds) > 1 else f"{seeds[0]} seeds")
        folds = f"{s.n_folds}/{summary.n_folds_expected}"
        if notes:
            folds += f" ({'; '.join(notes)})"
        recalls = " | ".join(_pct(row[f"recall_{c}"]) for c in summary.classes)
        lines.append(
            f"| {row['model']} | {folds} | {_pct(row['uar_mean'])} +- {_pct(row['uar_std'])} | "
            f"{_pct(row['wa_mean'])} +- {_pct(row['wa_std'])} | "
            f"{_pct(row['f1_mean'])} +- {_pct(row['f1_std'])} | {recalls} |"
            + (f" {row['hardware']} |" if mixed else "")
            + (f" {', '.join(sorted(s.commits))} |" if versions else "")
        )
    models = list(summary.models)
    lines += ["", "## Test UAR per fold (%)", ""]
    lines += ["| fold | test speaker | " + " | ".join(models) + " |"]
    lines += ["|---|---|" + "---|" * len(models)]
    for fold, speakers in summary.folds.items():
        cells = [
            _pct(summary.models[m].uar[fold]) if fold in summary.models[m].uar else "-"
            for m in models
        ]
        lines.append(f"| {fold} | {','.join(speakers)} | " + " | ".join(cells) + " |")
    if summary.comparisons:
        reference = summary.comparisons[0].reference
        lines += ["", f"## Paired comparison with {reference} (test UAR, common folds)", ""]
        lines += ["| model | folds | mean difference (pp) | Wilcoxon p | paired t p |"]
        lines += ["|---|---|---|---|---|"]
        for c in summary.comparisons:
            lines.append(
                f"| {c.model} - {c.reference} | {len(c.folds)} | {_pct(c.mean_difference)} | "
                f"{_p(c.wilcoxon_p)} | {_p(c.ttest_p)} |"
            )
    if summary.speaker_comparisons:
        reference = summary.speaker_comparisons[0].reference
        lines += [
            "",
            f"## Paired comparison with {reference} over test speakers (UAR per speaker)",
            "",
            "The folds hold several test speakers each. This test pairs the speakers; those "
            "of one fold were scored by the same trained model, so they are not independent "
            "and the test above, over folds, is the one that counts; this one shows how "
            "consistent a difference is across speakers.",
            "",
            "| model | speakers | mean difference (pp) | Wilcoxon p | paired t p |",
            "|---|---|---|---|---|",
        ]
        for c in summary.speaker_comparisons:
            lines.append(
                f"| {c.model} - {c.reference} | {len(c.folds)} | {_pct(c.mean_difference)} | "
                f"{_p(c.wilcoxon_p)} | {_p(c.ttest_p)} |"
            )
    lines += seed_spread_markdown(summary)
    lines += cross_corpus_markdown(summary)
    lines += failures_markdown(summary.failures)
    hashes = summary.settings.get("protocol_hashes") or [summary.settings.get("protocol_hash")]
    lines += ["", f"protocol hash{'es' if len(hashes) > 1 else ''}: {', '.join(hashes)}"]
    lines += [f"command of the newest run: `{summary.settings.get('command')}`"]
    if summary.settings.get("left_out"):
        lines += [
            f"left out (other settings than the newest run): "
            f"{', '.join(summary.settings['left_out'])}"
        ]
    lines.append("")
    return "\n".join(lines)


def seed_spread_markdown(summary: Summary) -> list[str]:
    """The seeds section, for the models with several seeds in some fold: the test UAR's
    standard deviation over seeds within a fold against that over folds."""
    spreads = {m: spread for m, s in summary.models.items() if (spread := s.seed_spread)}
    if not spreads:
        return []
    lines = [
        "",
        "## Seed-to-seed against fold-to-fold spread (test UAR)",
        "",
        "Standard deviations in points. Over seeds: within a fold, pooled over the folds "
        "(degrees of freedom: runs - folds). Over folds: of the per-fold means over seeds, "
        "and of the folds alone, once the seed noise those means carry is taken out. With "
        "one seed per fold, the variance over folds is about the square of the sd over "
        "seeds plus the square of the sd over folds alone: the larger one dominates.",
        "",
        "| model | runs over folds | sd over seeds | sd over folds (means) | sd over folds alone |",
        "|---|---|---|---|---|",
    ]
    for model, spread in spreads.items():
        lines.append(
            f"| {model} | {spread.runs} over {spread.folds} folds | "
            f"{_pct(math.sqrt(spread.seed_variance))} ({spread.seed_dof} df) | "
            f"{_pct(math.sqrt(spread.fold_variance))} | "
            f"{_pct(math.sqrt(spread.fold_only_variance))} |"
        )
    lines += ["", "### Test UAR per fold and seed (%)", ""]
    lines += ["| fold | " + " | ".join(spreads) + " |", "|---|" + "---|" * len(spreads)]
    for fold in summary.folds:
        cells = [
            ", ".join(
                f"{_pct(uar)} ({seed})"
                for seed, uar in summary.models[model].seed_uar.get(fold, [])
            )
            or "-"
            for model in spreads
        ]
        lines.append(f"| {fold} | " + " | ".join(cells) + " |")
    return lines


def cross_corpus_rows(summary: Summary) -> list[dict[str, Any]]:
    """One row per model and test corpus, the sweep's own (its test UAR) first."""
    rows = []
    train = summary.settings.get("corpus")
    for model, targets in summary.cross.items():
        own = summary.models[model]
        for corpus, uar in [(train, own.uar), *targets.items()]:
            mean, std = own.mean_std(uar)
            rows.append(
                {"model": model, "train_corpus": train, "test_corpus": corpus,
                 "n_folds": len(uar), "uar_mean": mean, "uar_std": std}
            )  # fmt: skip
    return rows


def cross_corpus_markdown(summary: Summary) -> list[str]:
    """The cross-corpus section: models x test corpora, UAR mean +- std over folds."""
    if not summary.cross:
        return []
    train = summary.settings.get("corpus")
    rows = cross_corpus_rows(summary)
    corpora = list(dict.fromkeys(r["test_corpus"] for r in rows))
    lines = [
        "",
        f"## Cross-corpus test UAR (%): trained on {train}",
        "",
        f"Each fold's best checkpoint on every utterance of the other corpora ({train}: its "
        "own test speakers); mean +- std over folds (n).",
        "",
        "| model | " + " | ".join(corpora) + " |",
        "|---|" + "---|" * len(corpora),
    ]
    for model in summary.cross:
        cells = {r["test_corpus"]: r for r in rows if r["model"] == model}
        lines.append(
            f"| {model} | "
            + " | ".join(
                f"{_pct(cells[c]['uar_mean'])} +- {_pct(cells[c]['uar_std'])} "
                f"({cells[c]['n_folds']})"
                if c in cells
                else "-"
                for c in corpora
            )
            + " |"
        )
    return lines


def failure_line(failure: dict[str, Any]) -> str:
    """``asrnn-fold1: NonFiniteLossError: <first line of the message>``."""
    message = (failure.get("message") or "").splitlines() or [""]
    return f"{Path(failure['path']).parent.name}: {failure.get('error')}: {message[0]}"


def failures_markdown(failures: Sequence[dict[str, Any]]) -> list[str]:
    """The 'Failed runs' section: run folder, error, and the log holding the traceback."""
    if not failures:
        return []
    lines = ["", f"## Failed runs ({len(failures)})", "", "| run | error | log |", "|---|---|---|"]
    for failure in failures:
        run, error = failure_line(failure).replace("|", "\\|").split(": ", 1)
        lines.append(f"| {run} | {error} | {failure.get('log') or failure['path']} |")
    return lines


def failures_summary(failures: Sequence[dict[str, Any]]) -> str:
    """``summary.md`` of a sweep none of whose runs finished: the failed runs, each with its
    error and log."""
    lines = ["# Sweep summary: no finished runs", *failures_markdown(failures), ""]
    return "\n".join(lines)


def write_summary(summary: Summary, sweep_dir: str | Path) -> list[Path]:
    """Write the tables and figures into ``sweep_dir``; returns the written paths."""
    from ser.plots import (
        confusion_figure,
        cross_corpus_figure,
        save_figure,
        uar_per_fold_figure,
    )

    sweep_dir = Path(sweep_dir)
    per_fold = [
        {"fold": fold, "test_speakers": " ".join(speakers)}
        | {model: s.uar.get(fold, "") for model, s in summary.models.items()}
        for fold, speakers in summary.folds.items()
    ]
    paths = {
        "summary.md": summary_markdown(summary),
        "summary.csv": csv_text(summary_rows(summary)),
        "uar_per_fold.csv": csv_text(per_fold, ["fold", "test_speakers", *summary.models]),
    }
    for name, text in paths.items():
        write_text_atomic(sweep_dir / name, text)
    confusions = {}
    for model, s in summary.models.items():
        mean, std = s.mean_std(s.uar)
        confusions[f"{model}: UAR {_pct(mean)} +- {_pct(std)} ({s.n_folds} folds)"] = s.confusion
    write_bytes_atomic(
        sweep_dir / "confusion.png", save_figure(confusion_figure(confusions, summary.classes))
    )
    uar = {m: s.uar for m, s in summary.models.items()}
    write_bytes_atomic(sweep_dir / "uar_per_fold.png", save_figure(uar_per_fold_figure(uar)))
    written = [sweep_dir / name for name in [*paths, "confusion.png", "uar_per_fold.png"]]
    if summary.cross:
        rows = cross_corpus_rows(summary)
        write_text_atomic(sweep_dir / "cross_corpus.csv", csv_text(rows))
        table = {m: {} for m in summary.cross}
        for row in rows:
            table[row["model"]][row["test_corpus"]] = row["uar_mean"]
        figure = cross_corpus_figure(table, train=summary.settings.get("corpus"))
        write_bytes_atomic(sweep_dir / "cross_corpus.png", save_figure(figure))
        written += [sweep_dir / "cross_corpus.csv", sweep_dir / "cross_corpus.png"]
    return written


def search_markdown(trials: Sequence[dict[str, Any]], *, top: int = 10) -> str:
    """The best trials of a search: mean +- std validation UAR over the folds, settings."""
    lines = [
        f"# Hyper-parameter search ({len(trials)} finished trials; objective: mean best "
        "validation UAR over the folds, test speakers never read)",
        "",
        "| rank | val UAR % | folds | settings |",
        "|---|---|---|---|",
    ]
    for rank, trial in enumerate(trials[:top], start=1):
        settings = " ".join(o for o in trial["params"] if "=" in o)
        lines.append(
            f"| {rank} | {_pct(trial['val_uar_mean'])} +- {_pct(trial['val_uar_std'])} | "
            f"{len(trial['val_uar_per_fold'])} | `{settings}` |"
        )
    if trials:
        lines += [
            "",
            "Test the best settings on every fold (the nested protocol's outer loop):",
            "",
            f"    python sweep.py task_name=best {' '.join(trials[0]['params'])}",
        ]
    return "\n".join(lines) + "\n"
