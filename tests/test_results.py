"""Sweep aggregation (ser.results): fold statistics, missing folds, paired tests, outputs."""

import csv
import json
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import confusion_matrix, f1_score

from ser.results import aggregate, collect, confusion_macro_f1, latest_protocol
from ser.stats import paired_comparison
from ser.tables import write_summary

CLASSES = ["ang", "sad", "hap", "neu"]


def fake_run(model: str, fold: int, uar: float, *, seed: int = 0, wa: float | None = None) -> dict:
    confusion = np.diag([3, 2, 1, 4]) + fold  # any counts, distinct per fold
    return {
        "model": model,
        "fold": fold,
        "seed": seed,
        "corpus": "emodb",
        "n_folds": 10,
        "test_speakers": [f"s{fold}"],
        "test_uar": uar,
        "test_wa": uar + 0.05 if wa is None else wa,
        "recall": {c: uar for c in CLASSES},
        "confusion": {"classes": CLASSES, "matrix": confusion.tolist()},
        "config_hash": f"h-{model}",
    }


ADSRNN = [0.62, 0.55, 0.71, 0.48, 0.66, 0.59, 0.64, 0.52, 0.70, 0.61]
ACRNN = [0.50, 0.57, 0.60, 0.41, 0.55, 0.49, 0.63, 0.47, 0.58, 0.52]


def test_mean_and_sample_std_over_folds():
    runs = [fake_run("adsrnn", f, u) for f, u in enumerate(ADSRNN)]
    summary = aggregate(runs)
    model = summary.models["adsrnn"]
    mean, std = model.mean_std(model.uar)
    assert mean == pytest.approx(np.mean(ADSRNN))
    assert std == pytest.approx(np.std(ADSRNN, ddof=1))
    assert model.missing_folds == [] and model.n_folds == 10
    assert model.confusion.tolist() == (sum(np.diag([3, 2, 1, 4]) + f for f in range(10))).tolist()


def test_seeds_are_averaged_within_a_fold_before_the_fold_statistics():
    runs = [fake_run("adsrnn", 0, 0.4, seed=1), fake_run("adsrnn", 0, 0.6, seed=2)]
    runs += [fake_run("adsrnn", 1, 0.7)]
    model = aggregate(runs).models["adsrnn"]
    assert model.uar == {0: pytest.approx(0.5), 1: 0.7}
    assert model.seeds == {0: 2, 1: 1}


def test_seed_spread_separates_seed_noise_from_the_folds(tmp_path):
    rng = np.random.default_rng(0)
    fold_effect = rng.normal(0.6, 0.08, size=6)
    scores = {f: list(fold_effect[f] + rng.normal(0, 0.03, size=3)) for f in range(6)}
    scores[5] = scores[5][:2]  # one fold with a seed fewer
    runs = [
        fake_run("adsrnn", f, u, seed=s) | {"n_folds": 6}
        for f, seeds in scores.items()
        for s, u in enumerate(seeds)
    ]
    runs += [fake_run("acrnn", f, 0.5) | {"n_folds": 6} for f in range(6)]
    summary = aggregate(runs)
    spread = summary.models["adsrnn"].seed_spread
    within = [np.var(v, ddof=1) for v in scores.values()]
    dof = [len(v) - 1 for v in scores.values()]
    assert spread.seed_variance == pytest.approx(np.dot(within, dof) / sum(dof))
    assert spread.seed_dof == 11 and spread.runs == 17 and spread.folds == 6
    means = [np.mean(v) for v in scores.values()]
    assert spread.fold_variance == pytest.approx(np.var(means, ddof=1))
    seed_part = spread.seed_variance * np.mean([1 / 3] * 5 + [1 / 2])
    assert spread.fold_only_variance == pytest.approx(spread.fold_variance - seed_part)
    assert summary.models["acrnn"].seed_spread is None

    write_summary(summary, tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "| adsrnn | 6/6 (2-3 seeds) |" in text and "| acrnn | 6/6 |" in text
    row = next(line for line in text.splitlines() if line.startswith("| adsrnn | 17 over 6"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == f"{100 * np.sqrt(spread.seed_variance):.2f} (11 df)"
    assert cells[3] == f"{100 * np.std(means, ddof=1):.2f}"
    assert not any(line.startswith("| acrnn | 6 over") for line in text.splitlines())
    fold5 = next(line for line in text.split("per fold and seed")[1].splitlines()
                 if line.startswith("| 5 |"))  # fmt: skip
    assert fold5 == f"| 5 | {100 * scores[5][0]:.2f} (0), {100 * scores[5][1]:.2f} (1) |"


def test_one_seed_run_twice_in_a_folder_counts_once(caplog):
    """``+seeds=3`` into a folder with a one-seed sweep: ``adsrnn-fold0-seed12345`` beside
    ``adsrnn-fold0``, the same seed; the newer one counts."""
    older = fake_run("adsrnn", 0, 0.40, seed=12345) | {"mtime": 1, "path": "a/adsrnn-fold0"}
    newer = fake_run("adsrnn", 0, 0.50, seed=12345) | {"mtime": 2, "path": "a/seed12345"}
    other = fake_run("adsrnn", 0, 0.70, seed=12346) | {"mtime": 3, "path": "a/seed12346"}
    model = aggregate([older, newer, other, fake_run("adsrnn", 1, 0.6)]).models["adsrnn"]
    assert model.seeds[0] == 2 and model.uar[0] == pytest.approx(0.60)
    assert model.seed_uar[0] == [(12345, 0.50), (12346, 0.70)]
    assert model.seed_spread.seed_dof == 1
    assert "a/adsrnn-fold0 and a/seed12345 are both adsrnn fold 0 seed 12345" in caplog.text


def test_runs_without_a_recorded_seed_each_count_in_the_seed_spread():
    runs = [fake_run("adsrnn", 0, u) for u in (0.40, 0.60)] + [fake_run("adsrnn", 1, 0.7)]
    for run in runs:
        del run["seed"]
    model = aggregate(runs).models["adsrnn"]
    assert model.seeds == {0: 2, 1: 1}
    assert sorted(uar for _, uar in model.seed_uar[0]) == [0.40, 0.60]
    assert model.seed_spread.seed_variance == pytest.approx(np.var([0.40, 0.60], ddof=1))


def test_the_seed_section_is_left_out_with_one_seed_per_fold(tmp_path):
    write_summary(aggregate([fake_run("adsrnn", f, u) for f, u in enumerate(ADSRNN)]), tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "Seed-to-seed" not in text and "seeds) |" not in text


def test_missing_folds_are_named_not_averaged_away(tmp_path):
    runs = [fake_run("adsrnn", f, ADSRNN[f]) for f in range(10) if f not in (3, 7)]
    runs += [fake_run("acrnn", f, ACRNN[f]) for f in range(10)]
    summary = aggregate(runs)
    assert summary.models["adsrnn"].missing_folds == [3, 7]
    assert summary.models["acrnn"].missing_folds == []
    write_summary(summary, tmp_path)
    rows = {r["model"]: r for r in csv.DictReader((tmp_path / "summary.csv").open())}
    assert rows["adsrnn"]["n_folds"] == "8" and rows["adsrnn"]["missing_folds"] == "3 7"
    expected = np.mean([u for f, u in enumerate(ADSRNN) if f not in (3, 7)])
    assert float(rows["adsrnn"]["uar_mean"]) == pytest.approx(expected)
    assert "8/10 (missing 3,7)" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize("seed", range(4))
def test_macro_f1_of_a_confusion_matrix_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 4, size=40)
    y_pred = rng.integers(0, 5, size=40)  # class 4: predicted, never true
    if seed % 2:  # class 3 absent from truth and predictions: left out, as sklearn does
        y_true[y_true == 3] = 0
        y_pred[y_pred == 3] = 1
    matrix = confusion_matrix(y_true, y_pred, labels=range(6))  # class 5: never seen
    expected = f1_score(y_true, y_pred, average="macro")
    assert confusion_macro_f1(matrix.tolist()) == pytest.approx(expected)


def test_macro_f1_per_fold_is_the_recorded_one_or_that_of_the_confusion_matrix(tmp_path):
    # fold 1 was recorded before results.json had test_f1: its macro-F1 comes from its
    # confusion matrix, diag(3, 2, 1, 4) + 1 (symmetric, so F1 = TP / row sum per class)
    old = fake_run("adsrnn", 1, 0.5)
    assert "test_f1" not in old
    recorded = [
        fake_run("adsrnn", 0, 0.5, seed=s) | {"test_f1": f} for s, f in ((1, 0.4), (2, 0.6))
    ]
    model = aggregate([old, *recorded]).models["adsrnn"]
    from_matrix = (4 / 7 + 3 / 6 + 2 / 5 + 5 / 8) / 4
    assert model.f1 == {0: pytest.approx(0.5), 1: pytest.approx(from_matrix)}
    text = write_and_read(aggregate([old, *recorded]), tmp_path / "f1")
    mean, std = np.mean([0.5, from_matrix]), np.std([0.5, from_matrix], ddof=1)
    assert "| model | folds | UAR | WA | macro-F1 | recall ang |" in text
    assert f"| 55.00 +- 0.00 | {100 * mean:.2f} +- {100 * std:.2f} | 50.00 |" in text
    (row,) = csv.DictReader((tmp_path / "f1" / "summary.csv").open())
    assert float(row["f1_mean"]) == pytest.approx(mean)
    assert float(row["f1_std"]) == pytest.approx(std)


def test_paired_test_matches_scipy_on_common_folds():
    model = {f: u for f, u in enumerate(ACRNN) if f != 5}
    reference = dict(enumerate(ADSRNN))
    comparison = paired_comparison("acrnn", model, "adsrnn", reference)
    folds = [f for f in range(10) if f != 5]
    a, b = np.array([ACRNN[f] for f in folds]), np.array([ADSRNN[f] for f in folds])
    assert comparison.folds == folds
    assert comparison.mean_difference == pytest.approx(np.mean(a - b))
    assert comparison.mean_difference < 0
    assert comparison.wilcoxon_p == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert comparison.ttest_p == pytest.approx(stats.ttest_rel(a, b).pvalue)


def test_paired_test_is_undefined_for_identical_results():
    comparison = paired_comparison("a", {0: 0.5, 1: 0.6}, "b", {0: 0.5, 1: 0.6})
    assert comparison.mean_difference == 0
    assert math.isnan(comparison.wilcoxon_p) and math.isnan(comparison.ttest_p)


def test_mixed_corpora_are_refused():
    other = fake_run("acrnn", 0, 0.5) | {"corpus": "iemocap"}
    with pytest.raises(ValueError, match="mix corpora"):
        aggregate([fake_run("adsrnn", 0, 0.5), other])


def test_written_outputs_and_collect(tmp_path):
    for f in range(3):
        for model, values in (("adsrnn", ADSRNN), ("acrnn", ACRNN)):
            run_dir = tmp_path / f"{model}-fold{f}"
            run_dir.mkdir()
            (run_dir / "results.json").write_text(json.dumps(fake_run(model, f, values[f])))
    runs = collect(tmp_path)
    assert len(runs) == 6
    summary = aggregate(runs)
    assert list(summary.models) == ["adsrnn", "acrnn"]  # the reference model first
    paths = write_summary(summary, tmp_path)
    assert {p.name for p in paths} == {
        "summary.md", "summary.csv", "uar_per_fold.csv", "confusion.png", "uar_per_fold.png",
    }  # fmt: skip
    for png in ("confusion.png", "uar_per_fold.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    per_fold = list(csv.DictReader((tmp_path / "uar_per_fold.csv").open()))
    assert [float(r["acrnn"]) for r in per_fold] == ACRNN[:3]
    assert not list(tmp_path.glob(".*.tmp"))


def test_runs_of_other_settings_in_the_folder_are_left_out(tmp_path):
    old = [fake_run("acrnn", f, 0.3) | {"protocol_hash": "old"} for f in range(3)]
    new = [
        fake_run(m, f, 0.6) | {"protocol_hash": "new"}
        for m in ("adsrnn", "acrnn")
        for f in range(3)
    ]
    for run in old + new:  # written in this order: the newest run decides the protocol
        run_dir = tmp_path / f"{run['model']}-fold{run['fold']}-{run['protocol_hash']}"
        run_dir.mkdir()
        (run_dir / "results.json").write_text(json.dumps(run))
    summary = aggregate(collect(tmp_path))
    assert summary.models["acrnn"].uar == {0: 0.6, 1: 0.6, 2: 0.6}
    assert len(summary.settings["left_out"]) == 3
    assert all(p.endswith("-old") for p in summary.settings["left_out"])


def fake_failure(model: str, fold: int, *, protocol: str | None = None) -> dict:
    return {
        "model": model,
        "fold": fold,
        "error": "NonFiniteLossError",
        "message": f"training loss is nan at step {fold}\nsecond line",
        "log": f"/runs/{model}-fold{fold}/sweep.log",
        "protocol_hash": protocol,
        "path": f"/runs/{model}-fold{fold}/error.json",
    }


def test_failed_runs_are_named_apart_from_missing_ones(tmp_path):
    runs = [fake_run("adsrnn", f, ADSRNN[f]) for f in range(10) if f not in (3, 7)]
    summary = aggregate(runs, failures=[fake_failure("adsrnn", 7), fake_failure("acrnn", 0)])
    model = summary.models["adsrnn"]
    assert (model.missing_folds, model.failed_folds, model.n_folds) == ([3], [7], 8)
    write_summary(summary, tmp_path)
    (row,) = csv.DictReader((tmp_path / "summary.csv").open())
    assert (row["missing_folds"], row["failed_folds"]) == ("3", "7")
    text = (tmp_path / "summary.md").read_text()
    assert "8/10 (missing 3; failed 7)" in text
    assert "## Failed runs (2)" in text
    assert "| acrnn-fold0 | NonFiniteLossError: training loss is nan at step 0 |" in text
    assert "second line" not in text and "/runs/adsrnn-fold7/sweep.log" in text


def test_failures_of_other_settings_are_left_out_with_their_runs():
    runs = [fake_run("adsrnn", f, 0.5) | {"protocol_hash": "new"} for f in range(2)]
    old, new = fake_failure("adsrnn", 2, protocol="old"), fake_failure("adsrnn", 3, protocol="new")
    kept, failed, left_out = latest_protocol(runs, [old, new])
    assert (kept, failed, left_out) == (runs, [new], [])
    # a sweep whose every run failed is the newest, even next to older finished runs
    newest = fake_failure("adsrnn", 0, protocol="newer") | {"mtime": 2.0}
    dated = [r | {"mtime": 1.0} for r in runs]
    assert latest_protocol(dated, [newest]) == ([], [newest], dated)


def on(run: dict, kind: str, precision: str) -> dict:
    return run | {"environment": {"device_kind": kind, "precision": precision}}


def test_a_summary_says_when_its_runs_differ_in_precision_or_device(tmp_path):
    same = [on(fake_run(m, f, 0.6), "cpu", "32-true") for m in ("adsrnn", "acrnn") for f in (0, 1)]
    text = write_and_read(aggregate(same), tmp_path / "same")
    assert "Hardware of every run: cpu 32-true" in text and "| hardware |" not in text

    mixed = [*same[:3], on(fake_run("acrnn", 1, 0.6), "cuda", "bf16-mixed")]
    summary = aggregate(mixed)
    assert summary.models["acrnn"].hardware == {"cpu 32-true": 1, "cuda bf16-mixed": 1}
    text = write_and_read(summary, tmp_path / "mixed")
    assert "Runs differ in precision or device kind" in text
    rows = [
        line for line in text.splitlines() if line.startswith("| ac") or line.startswith("| ads")
    ]
    assert rows[0].endswith("| cpu 32-true |")
    assert rows[1].endswith("| cpu 32-true (1), cuda bf16-mixed (1) |")
    with open(tmp_path / "mixed" / "summary.csv", newline="") as f:
        hardware = {row["model"]: row["hardware"] for row in csv.DictReader(f)}
    assert hardware == {"adsrnn": "cpu 32-true", "acrnn": "cpu 32-true (1), cuda bf16-mixed (1)"}


def write_and_read(summary, folder) -> str:
    folder.mkdir()
    write_summary(summary, folder)
    return (folder / "summary.md").read_text()


def test_a_results_json_that_is_not_utf8_is_left_out_with_a_warning(tmp_path, caplog):
    good = tmp_path / "adsrnn-fold0" / "results.json"
    good.parent.mkdir()
    good.write_text(json.dumps(fake_run("adsrnn", 0, 0.6)))
    bad = tmp_path / "adsrnn-fold1" / "results.json"
    bad.parent.mkdir()
    bad.write_bytes(b'{"model": "adsrnn", "fold": 1, "x": "\xff\xfe"}')
    runs = collect(tmp_path)
    assert [r["fold"] for r in runs] == [0]
    assert f"ignoring unreadable {bad}" in caplog.text


def with_speakers(run: dict, correct: dict[str, int]) -> dict:
    """``run`` testing the speakers of ``correct``: 4 utterances each, 2 per class, of which
    ``correct[speaker]`` are predicted right (the first ones of class "ang", then "sad")."""
    predictions = []
    for speaker, right in correct.items():
        for i, label in enumerate(["ang", "ang", "sad", "sad"]):
            wrong = "sad" if label == "ang" else "ang"
            predictions.append({"speaker": speaker, "label": label,
                                "pred": label if i < right else wrong})  # fmt: skip
    return run | {"test_speakers": sorted(correct), "predictions": predictions}


def test_folds_of_several_speakers_are_also_compared_over_speakers(tmp_path):
    # per speaker UAR = right / 4 here: 2 per class, errors fill "ang" first
    ads = {0: {"01": 4, "02": 2}, 1: {"03": 3, "04": 1}, 2: {"05": 2, "06": 2}}
    acr = {0: {"01": 3, "02": 1}, 1: {"03": 4, "04": 2}, 2: {"05": 1, "06": 4}}
    runs = [with_speakers(fake_run("adsrnn", f, 0.5), c) for f, c in ads.items()]
    runs += [with_speakers(fake_run("acrnn", f, 0.5), c) for f, c in acr.items()]
    summary = aggregate(runs)
    uar = {s: n / 4 for c in ads.values() for s, n in c.items()}
    assert summary.models["adsrnn"].speaker_uar == uar
    (comparison,) = summary.speaker_comparisons
    a = np.array([n / 4 for c in acr.values() for n in c.values()])
    b = np.array(list(uar.values()))
    assert comparison.folds == ["01", "02", "03", "04", "05", "06"]
    assert comparison.mean_difference == pytest.approx((a - b).mean())
    assert comparison.wilcoxon_p == pytest.approx(stats.wilcoxon(a, b).pvalue)
    text = write_and_read(summary, tmp_path / "s")
    assert "## Paired comparison with adsrnn over test speakers" in text
    assert "| acrnn - adsrnn | 6 |" in text
    one_speaker = aggregate([fake_run("adsrnn", 0, 0.5), fake_run("acrnn", 0, 0.6)])
    assert one_speaker.speaker_comparisons == []


def write_runs(folder, runs: list[dict]) -> None:
    for run in runs:
        run_dir = folder / f"{run['model']}-fold{run['fold']}"
        run_dir.mkdir(parents=True)
        (run_dir / "results.json").write_text(json.dumps(run))


def on_commit(run: dict, commit: str, protocol: str) -> dict:
    return run | {"versions": {"commit": commit}, "protocol_hash": protocol}


def test_two_folders_of_runs_on_the_same_folds_make_one_table(tmp_path, capsys):
    """sweep.py aggregate DIR --with OTHER: reference rows of one sweep beside the networks
    of another, each folder's newest settings, with paired tests and the code versions."""
    from ser.results_cli import aggregate_cli

    networks, reference = tmp_path / "networks", tmp_path / "reference"
    write_runs(networks, [on_commit(fake_run("adsrnn", f, u), "a" * 40, "old") for f, u in
                          enumerate(ADSRNN)])  # fmt: skip
    write_runs(reference, [on_commit(fake_run("linear-egemaps", f, u), "b" * 40, "new") for
                           f, u in enumerate(ACRNN)])  # fmt: skip
    out = tmp_path / "joined"
    assert aggregate_cli([str(networks), "--with", str(reference), "--out", str(out)]) == 0
    rows = {r["model"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert float(rows["linear-egemaps"]["uar_mean"]) == pytest.approx(np.mean(ACRNN))
    text = (out / "summary.md").read_text()
    expected_p = stats.wilcoxon(ACRNN, ADSRNN).pvalue
    assert (
        f"| linear-egemaps - adsrnn | 10 | {100 * np.mean(np.subtract(ACRNN, ADSRNN)):.2f}" in text
    )
    assert f"{expected_p:.3g}" in text
    assert "Runs come from several code versions: see the code column." in text
    assert "| aaaaaaaaaa |" in text and "| bbbbbbbbbb |" in text
    assert "protocol hashes: new, old" in text
    assert not (networks / "summary.md").exists()
    # folds that test other speakers do not pair
    shifted = tmp_path / "shifted"
    write_runs(shifted, [fake_run("linear-compare", 0, 0.5) | {"test_speakers": ["other"]}])
    assert aggregate_cli([str(networks), "--with", str(shifted)]) == 2
    assert "their folds do not pair" in capsys.readouterr().err
