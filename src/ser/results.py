"""Sweep results: collect ``results.json`` files and aggregate them over folds.

Per model, the per-fold test UAR (mean over seeds when a fold was run with several seeds)
is reported as mean +- sample standard deviation over folds, with WA, macro-F1 and
per-class recall alongside (a run recorded before ``results.json`` had ``test_f1`` gets its
macro-F1 from its confusion matrix, :func:`confusion_macro_f1`). Missing folds are named,
never silently averaged away, and so are failed runs (an ``error.json`` in the run folder),
apart from the missing ones. Each model is compared with the reference model (ADSRNN) on
the folds both have: mean difference, Wilcoxon signed-rank and paired t-test p-values.

:mod:`ser.tables` renders the :class:`Summary`; :mod:`ser.stats` holds the paired tests.

Example:
    >>> summary = aggregate(collect("sweeps/train-emodb"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ser.hardware import hardware_label
from ser.stats import Comparison, SeedSpread, paired_comparison, seed_spread

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
    f1: dict[int, float]  # fold -> test macro-F1 (mean over seeds)
    recall: dict[str, float]  # class -> mean recall over folds
    confusion: np.ndarray  # counts summed over folds and seeds
    missing_folds: list[int]  # neither a result nor a failure
    #: fold -> (seed, test UAR) of each run, by seed (``None``: the run did not record it)
    seed_uar: dict[int, list[tuple[int | None, float]]] = field(default_factory=dict)
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

    @property
    def seeds(self) -> dict[int, int]:
        """Fold -> number of runs (seeds) in it."""
        return {fold: len(runs) for fold, runs in self.seed_uar.items()}

    @property
    def seed_spread(self) -> SeedSpread | None:
        """The test UAR's seed-to-seed against fold-to-fold variance, when some fold has
        several seeds (:func:`ser.stats.seed_spread`)."""
        return seed_spread({f: [uar for _, uar in runs] for f, runs in self.seed_uar.items()})

    def mean_std(self, values: dict[int, float]) -> tuple[float, float]:
        """Mean and sample standard deviation over folds (std NaN for one fold)."""
        array = np.array(list(values.values()), dtype=float)
        std = float(array.std(ddof=1)) if len(array) > 1 else math.nan
        return float(array.mean()), std


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

    ``name="error.json"`` gives the failed runs (see :func:`ser.record.record_failure`).
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
    runs = newest_per_seed(runs)
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
            f1={f: float(np.mean([run_macro_f1(r) for r in rs])) for f, rs in per_fold.items()},
            recall={
                c: _nanmean([r["recall"][c] for rs in per_fold.values() for r in rs])
                for c in classes
            },
            confusion=confusion,
            missing_folds=[f for f in expected if f not in per_fold and f not in failed[model]],
            seed_uar={
                f: [(r.get("seed"), r["test_uar"]) for r in sorted(rs, key=_seed_order)]
                for f, rs in per_fold.items()
            },
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


def newest_per_seed(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest run of each model, fold and seed, with a warning naming any other.

    A folder can hold one seed twice under two names: ``+seeds=3`` run into a folder that
    holds a one-seed sweep trains ``adsrnn-fold0-seed12345`` beside ``adsrnn-fold0``. Both
    are one seed of the fold, and counting both would weigh it twice and shrink the
    seed-to-seed variance. Runs that recorded no seed are all kept.
    """
    newest: dict[tuple, dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: r.get("mtime", 0)):
        key = (run["model"], run["fold"], run.get("seed"))
        if run.get("seed") is None:
            key += (id(run),)
        elif key in newest:
            log.warning(
                "%s and %s are both %s fold %s seed %s: counting the newer one only",
                newest[key].get("path", "?"), run.get("path", "?"), *key,
            )  # fmt: skip
        newest[key] = run
    return list(newest.values())


def confusion_macro_f1(matrix: Any) -> float:
    """Macro-F1 of a confusion matrix (rows true, columns predicted), without torch: the
    mean of ``2 TP / (2 TP + FP + FN)`` over the classes present in the ground truth or the
    predictions, as :func:`ser.metrics.macro_f1` computes it (a class absent from both is
    left out; NaN for an empty matrix).

    Example:
        >>> round(confusion_macro_f1([[2, 1, 0], [0, 1, 0], [0, 0, 0]]), 4)
        0.7333
    """
    counts = np.asarray(matrix, dtype=float)
    denominator = counts.sum(axis=1) + counts.sum(axis=0)  # 2 TP + FP + FN
    present = denominator > 0
    if not present.any():
        return math.nan
    return float(np.mean(2 * np.diag(counts)[present] / denominator[present]))


def run_macro_f1(results: dict[str, Any]) -> float:
    """A run's test macro-F1: ``test_f1``, or for a run recorded before that field, the
    macro-F1 of its test confusion matrix (:func:`confusion_macro_f1`)."""
    value = results.get("test_f1")
    if value is None:
        value = confusion_macro_f1(results["confusion"]["matrix"])
    return float(value)


def _seed_order(results: dict[str, Any]) -> tuple[bool, Any]:
    """Runs by seed (a run without one last)."""
    return results.get("seed") is None, results.get("seed")


def _commit(results: dict[str, Any]) -> str:
    """The code version a run was made on, shortened (``?`` for runs that did not record it)."""
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


def _nanmean(values: list[float | None]) -> float:
    """Mean over the values that exist (a class absent from a test speaker is ``None``)."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(present)) if present else math.nan


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
