"""Sweep results: collect ``results.json`` files, aggregate over folds, write tables and figures.

Per model, the per-fold test UAR (mean over seeds when a fold was run with several seeds)
is reported as mean +- sample standard deviation over folds, with WA and per-class recall
alongside. Missing folds are named, never silently averaged away, and so are failed runs
(an ``error.json`` in the run folder), apart from the missing ones. Each model is compared
with the reference model (ADSRNN) on the folds both have: mean difference, Wilcoxon
signed-rank and paired t-test p-values.

Outputs (in the sweep folder): ``summary.md``, ``summary.csv``, ``uar_per_fold.csv``,
``confusion.png`` (row-normalised, summed over folds) and ``uar_per_fold.png``.

Example:
    >>> summary = aggregate(collect("sweeps/train-emodb"))  # doctest: +SKIP
    >>> write_summary(summary, "sweeps/train-emodb")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ser.errors import ConfigError
from ser.hardware import hardware_label, hardware_text
from ser.io import require_writable, write_bytes_atomic, write_text_atomic
from ser.text import csv_text

log = logging.getLogger(__name__)

#: the order tables list models in: the proposed model first, then the baselines (the keys
#: of :data:`ser.models.NETWORKS`, named here so that reading results needs no torch)
MODEL_ORDER = ("adsrnn", "acrnn", "adrnn", "asrnn")


@dataclass
class ModelSummary:
    """One model's results over folds."""

    model: str
    uar: dict[int, float]  # fold -> test UAR (mean over seeds)
    wa: dict[int, float]
    recall: dict[str, float]  # class -> mean recall over folds
    confusion: np.ndarray  # counts summed over folds and seeds
    missing_folds: list[int]  # neither a result nor a failure
    seeds: dict[int, int]  # fold -> number of seeds
    failed_folds: list[int] = field(default_factory=list)  # a run (any seed) failed
    #: device kind and precision (:func:`ser.hardware.hardware_label`) -> number of runs
    hardware: dict[str, int] = field(default_factory=dict)
    #: test speaker -> UAR over that speaker's test utterances (mean over seeds)
    speaker_uar: dict[str, float] = field(default_factory=dict)
    #: git commit the runs were made on (``versions.commit``; ``?`` when unrecorded) ->
    #: number of runs
    commits: dict[str, int] = field(default_factory=dict)

    @property
    def n_folds(self) -> int:
        return len(self.uar)

    def mean_std(self, values: dict[int, float]) -> tuple[float, float]:
        """Mean and sample standard deviation over folds (std NaN for one fold)."""
        array = np.array(list(values.values()), dtype=float)
        std = float(array.std(ddof=1)) if len(array) > 1 else math.nan
        return float(array.mean()), std


@dataclass
class Comparison:
    """A model against the reference on the folds both have."""

    model: str
    reference: str
    folds: list[int]
    mean_difference: float  # model - reference, UAR
    wilcoxon_p: float
    ttest_p: float


@dataclass
class Summary:
    """Everything :func:`write_summary` writes."""

    classes: list[str]
    folds: dict[int, list[str]]  # fold -> test speakers
    n_folds_expected: int
    models: dict[str, ModelSummary]
    comparisons: list[Comparison] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)  # error.json records
    #: ``+cross_eval``: model -> target corpus -> fold -> UAR of the fold's best checkpoint
    #: on every utterance of the target (mean over seeds)
    cross: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    #: the same comparisons over test speakers, where a fold tests several speakers
    speaker_comparisons: list[Comparison] = field(default_factory=list)


def collect(sweep_dir: str | Path, name: str = "results.json") -> list[dict[str, Any]]:
    """Every ``name`` file under ``sweep_dir`` (one per finished run), oldest first.

    ``name="error.json"`` gives the failed runs (see :func:`ser.task.record_failure`).
    """
    runs = []
    for path in sorted(Path(sweep_dir).glob(f"**/{name}")):
        try:
            results = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            log.warning("ignoring unreadable %s: %s", path, err)
            continue
        runs.append(results | {"path": str(path), "mtime": path.stat().st_mtime})
    return sorted(runs, key=lambda r: r["mtime"])


def latest_protocol(
    runs: Sequence[dict[str, Any]], failures: Sequence[dict[str, Any]] = ()
) -> tuple[list[dict], list[dict], list[dict]]:
    """``(kept, failed, left_out)``: the runs sharing the ``protocol_hash`` of the newest
    run or failure, the failures of that protocol, and the other runs.

    A sweep folder may hold runs of an earlier sweep with other settings (another training
    length, width, corpus option); they are left out rather than averaged in, and so are
    their failures. A failure whose config did not resolve (no hash) always counts.
    """
    dated = sorted([*runs, *failures], key=lambda r: r.get("mtime", 0))  # stable
    protocol = dated[-1].get("protocol_hash") if dated else None
    kept = [r for r in runs if r.get("protocol_hash") == protocol]
    failed = [f for f in failures if f.get("protocol_hash") in (protocol, None)]
    return kept, failed, [r for r in runs if r.get("protocol_hash") != protocol]


def ordered_models(names: Any) -> list[str]:
    """``names`` in table order: :data:`MODEL_ORDER`, then any other model alphabetically.

    Example:
        >>> ordered_models({"probe", "asrnn", "adsrnn"})
        ['adsrnn', 'asrnn', 'probe']
    """
    names = set(names)
    return [m for m in MODEL_ORDER if m in names] + sorted(names - set(MODEL_ORDER))


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


def aggregate(
    runs: Sequence[dict[str, Any]],
    *,
    failures: Sequence[dict[str, Any]] = (),
    cross: Sequence[dict[str, Any]] = (),
    reference: str = "adsrnn",
    expected_folds: Sequence[int] | None = None,
    newest_protocol: bool = True,
) -> Summary:
    """Aggregate finished runs per model over folds.

    Args:
        runs: parsed ``results.json`` dicts (:func:`collect`).
        failures: parsed ``error.json`` dicts of failed runs (``collect(dir, "error.json")``).
        cross: parsed cross-corpus evaluations of the runs' checkpoints (``+cross_eval``,
            ``collect(dir, "cross_eval/*.json")``); those of other settings are left out.
        reference: the model the others are compared with (when present).
        expected_folds: folds that should exist (default: every fold of the corpus,
            ``range(n_folds)`` from the results).
        newest_protocol: keep only the runs of the newest run's protocol; ``False`` for runs
            already chosen folder by folder (:func:`joined_runs`).
    """
    if newest_protocol:
        runs, failures, left_out = latest_protocol(runs, failures)
    else:
        left_out = []
    if not runs:
        raise ValueError("no results.json of the newest settings found: nothing to aggregate")
    if left_out:
        log.warning(
            "left out %d run(s) with other settings than the newest run: %s",
            len(left_out), ", ".join(Path(r.get("path", "?")).parent.name for r in left_out),
        )  # fmt: skip
    classes = runs[0]["confusion"]["classes"]
    corpora = {r["corpus"] for r in runs}
    if len(corpora) > 1 or any(r["confusion"]["classes"] != classes for r in runs):
        raise ValueError(
            f"runs mix corpora or class sets ({sorted(corpora)}): aggregate them apart"
        )
    n_folds = max(r.get("n_folds", r["fold"] + 1) for r in runs)
    expected = list(expected_folds) if expected_folds is not None else list(range(n_folds))
    by_model: dict[str, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    folds: dict[int, list[str]] = {}
    failed: dict[str, set[int]] = defaultdict(set)
    for failure in failures:
        failed[failure.get("model")].add(failure.get("fold"))
    for run in runs:
        by_model[run["model"]][run["fold"]].append(run)
        speakers = folds.setdefault(run["fold"], run["test_speakers"])
        if speakers != run["test_speakers"]:
            raise ValueError(
                f"fold {run['fold']} tests speakers {run['test_speakers']} in "
                f"{run.get('path', '?')} but {speakers} in other runs: their folds do not pair"
            )
    order = ordered_models(by_model)
    models = {}
    for model in order:
        per_fold = dict(sorted(by_model[model].items()))
        confusion = sum(np.array(r["confusion"]["matrix"]) for rs in per_fold.values() for r in rs)
        models[model] = ModelSummary(
            model=model,
            uar={f: float(np.mean([r["test_uar"] for r in rs])) for f, rs in per_fold.items()},
            wa={f: float(np.mean([r["test_wa"] for r in rs])) for f, rs in per_fold.items()},
            recall={
                c: _nanmean([r["recall"][c] for rs in per_fold.values() for r in rs])
                for c in classes
            },
            confusion=confusion,
            missing_folds=[f for f in expected if f not in per_fold and f not in failed[model]],
            seeds={f: len(rs) for f, rs in per_fold.items()},
            failed_folds=sorted(failed[model]),
            hardware=dict(Counter(hardware_label(r) for rs in per_fold.values() for r in rs)),
            speaker_uar=speaker_uar([r for rs in per_fold.values() for r in rs]),
            commits=dict(Counter(_commit(r) for rs in per_fold.values() for r in rs)),
        )
    comparisons, speaker_comparisons = [], []
    if reference in models:
        comparisons = [
            paired_comparison(m, s.uar, reference, models[reference].uar)
            for m, s in models.items()
            if m != reference
        ]
        if any(len(speakers) > 1 for speakers in folds.values()):
            speaker_comparisons = [
                paired_comparison(m, s.speaker_uar, reference, models[reference].speaker_uar)
                for m, s in models.items()
                if m != reference
            ]
    settings = {
        "corpus": corpora.pop(),
        "protocol_hash": runs[-1].get("protocol_hash"),
        "protocol_hashes": sorted({str(r.get("protocol_hash")) for r in runs}),
        "left_out": [str(Path(r.get("path", "?")).parent) for r in left_out],
        "command": runs[-1].get("command"),
    }
    return Summary(
        classes,
        dict(sorted(folds.items())),
        len(expected),
        models,
        comparisons,
        settings,
        speaker_comparisons=speaker_comparisons,
        failures=list(failures),
        cross=cross_corpus(
            cross, protocols={r.get("protocol_hash") for r in runs}, order=list(models)
        ),
    )


def _commit(results: dict[str, Any]) -> str:
    """The code version a run was made on, shortened (``?`` for runs before it was recorded)."""
    commit = (results.get("versions") or {}).get("commit")
    if not commit:
        return "?"
    return commit[:10] + ("+dirty" if commit.endswith("+dirty") else "")


def joined_runs(folders: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The runs of several folders in one table: each folder's newest protocol
    (:func:`latest_protocol`), e.g. the reference rows of one sweep beside the networks of
    another on the same folds. :func:`aggregate` (``newest_protocol=False``) then refuses
    folds that test other speakers."""
    runs = []
    for folder in folders:
        kept, _, left_out = latest_protocol(collect(folder))
        if left_out:
            log.warning("%s: left out %d run(s) of older settings", folder, len(left_out))
        runs += kept
    return sorted(runs, key=lambda r: r["mtime"])


def speaker_uar(runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """UAR per test speaker from the runs' predictions: the mean recall over the classes the
    speaker has, averaged over the runs (seeds) that tested the speaker.

    Example:
        >>> run = {"predictions": [{"speaker": "01", "label": "a", "pred": "a"},
        ...                        {"speaker": "01", "label": "b", "pred": "a"},
        ...                        {"speaker": "02", "label": "a", "pred": "a"}]}
        >>> speaker_uar([run])
        {'01': 0.5, '02': 1.0}
    """
    per_speaker: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        hits: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
        for p in run.get("predictions") or []:
            hits[p["speaker"]][p["label"]].append(p["pred"] == p["label"])
        for speaker, by_class in hits.items():
            per_speaker[speaker].append(float(np.mean([np.mean(h) for h in by_class.values()])))
    return {s: float(np.mean(v)) for s, v in sorted(per_speaker.items())}


def cross_corpus(
    records: Sequence[dict[str, Any]], *, protocols: Sequence[str | None], order: Sequence[str]
) -> dict[str, dict[str, dict[int, float]]]:
    """``{model: {target corpus: {fold: UAR}}}`` of the cross-corpus evaluations of the
    tables' protocols (per fold: the mean over seeds)."""
    values: dict[str, dict[str, dict[int, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for record in records:
        if record.get("protocol_hash") in protocols:
            values[record["model"]][record["test_corpus"]][record["fold"]].append(record["uar"])
    return {
        model: {
            corpus: {f: float(np.mean(v)) for f, v in sorted(per_fold.items())}
            for corpus, per_fold in sorted(values[model].items())
        }
        for model in order
        if model in values
    }


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


def _nanmean(values: list[float | None]) -> float:
    """Mean over the values that exist (a class absent from a test speaker is ``None``)."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(present)) if present else math.nan


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
                    "UAR and WA in %, mean +- sample std over folds (per fold: mean over seeds).",
                    hardware,
                    code,
                ],
            )
        ),
        "",
        "| model | folds | UAR | WA | "
        + " | ".join(f"recall {c}" for c in summary.classes)
        + (" | hardware" if mixed else "")
        + (" | code" if versions else "")
        + " |",
        "|---|---|---|---|" + "---|" * (len(summary.classes) + mixed + versions),
    ]
    for row, s in zip(summary_rows(summary), summary.models.values(), strict=True):
        absent = [
            f"{what} {','.join(map(str, which))}"
            for what, which in (("missing", s.missing_folds), ("failed", s.failed_folds))
            if which
        ]
        folds = f"{s.n_folds}/{summary.n_folds_expected}"
        if absent:
            folds += f" ({'; '.join(absent)})"
        recalls = " | ".join(_pct(row[f"recall_{c}"]) for c in summary.classes)
        lines.append(
            f"| {row['model']} | {folds} | {_pct(row['uar_mean'])} +- {_pct(row['uar_std'])} | "
            f"{_pct(row['wa_mean'])} +- {_pct(row['wa_std'])} | {recalls} |"
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


def aggregate_cli(argv: Sequence[str]) -> int:
    """``python sweep.py aggregate DIR``: write and print the summary of a sweep folder."""
    import argparse

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


def search_trials(search_dir: str | Path) -> list[dict[str, Any]]:
    """The finished trials of a hyper-parameter search folder, best (mean validation UAR)
    first; each is its ``results.json`` plus ``dir``."""
    trials = []
    for path in sorted(Path(search_dir).glob("*/results.json")):
        try:
            record = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            log.warning("ignoring unreadable %s: %s", path, err)
            continue
        if record.get("objective") == "val/uar_mean":
            trials.append(record | {"dir": str(path.parent)})
    return sorted(trials, key=lambda t: -t["val_uar_mean"])


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
