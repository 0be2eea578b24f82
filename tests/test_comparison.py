"""Paired comparison of two sweeps (``python sweep.py compare``) on hand-made run folders."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from ser.comparison import compare_cli, compare_sweeps, comparison_markdown


def write_run(folder: Path, model: str, fold: int, *, uar, preds=("a",), seed=1, protocol="p1"):
    run = folder / f"{model}-fold{fold}-seed{seed}"
    run.mkdir(parents=True)
    predictions = [{"id": f"u{i}", "pred": p} for i, p in enumerate(preds)]
    results = {"model": model, "fold": fold, "seed": seed, "test_uar": uar,
               "predictions": predictions, "protocol_hash": protocol}  # fmt: skip
    (run / "results.json").write_text(json.dumps(results))
    return run / "results.json"


def test_rows_pair_the_common_folds_and_count_same_predictions(tmp_path):
    first_uar = [0.70, 0.80, 0.60, 0.75, 0.90]
    second_uar = [0.72, 0.85, 0.58, 0.80]  # fold 4 missing: left out of the pairing
    for fold, uar in enumerate(first_uar):
        write_run(tmp_path / "a", "adsrnn", fold, uar=uar, preds="xxyy")
    for fold, uar in enumerate(second_uar):
        write_run(tmp_path / "b", "adsrnn", fold, uar=uar, preds="xyyy")  # 3 of 4 the same
    write_run(tmp_path / "a", "asrnn", 0, uar=0.5)  # only in the first sweep: no row

    [row] = compare_sweeps(tmp_path / "a", tmp_path / "b")

    a, b = np.array(first_uar[:4]), np.array(second_uar)
    assert row["model"] == "adsrnn" and row["folds"] == 4
    assert row["uar_a_mean"] == pytest.approx(a.mean())
    assert row["uar_b_std"] == pytest.approx(b.std(ddof=1))
    assert row["mean_difference"] == pytest.approx((b - a).mean())
    assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(b, a).pvalue)
    assert row["ttest_p"] == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert row["same_prediction"] == pytest.approx(0.75)


def test_seeds_are_averaged_per_fold_and_paired_by_seed(tmp_path):
    for fold in range(3):
        write_run(tmp_path / "a", "acrnn", fold, uar=0.6, preds="x")
        write_run(tmp_path / "b", "acrnn", fold, uar=0.7, seed=1, preds="x")
    # folds 0 and 1 have a second seed: the mean of fold means, not of all five runs
    for fold in (0, 1):
        write_run(tmp_path / "b", "acrnn", fold, uar=0.9 + fold / 20, seed=2, preds="y")
    [row] = compare_sweeps(tmp_path / "a", tmp_path / "b")
    fold_means = np.array([(0.7 + 0.9) / 2, (0.7 + 0.95) / 2, 0.7])
    assert row["uar_b_mean"] == pytest.approx(fold_means.mean())
    assert row["uar_b_std"] == pytest.approx(fold_means.std(ddof=1))
    assert row["mean_difference"] == pytest.approx(fold_means.mean() - 0.6)
    # only seed 1 runs in both sweeps, and it agrees on every utterance
    assert row["same_prediction"] == 1.0
    assert (row["runs_a"], row["runs_b"], row["paired_runs"]) == (3, 5, 3)
    text = comparison_markdown([row], ("one", "two"))
    assert (
        "acrnn: the sweeps hold other runs (runs on the common folds: 3 in one, 5 in two)" in text
    )
    assert "covers the 3 runs both hold" in text


def test_a_seed_list_compares_those_seeds_only(tmp_path, capsys):
    for fold in range(3):
        write_run(tmp_path / "a", "acrnn", fold, uar=0.6 + fold / 10, preds="x")
        write_run(tmp_path / "b", "acrnn", fold, uar=0.6 + fold / 10, preds="x")
        write_run(tmp_path / "b", "acrnn", fold, uar=0.2, seed=2, preds="y")
    [row] = compare_sweeps(tmp_path / "a", tmp_path / "b", seeds=[1])
    assert row["mean_difference"] == 0.0 and row["runs_b"] == row["paired_runs"] == 3
    assert compare_cli([str(tmp_path / "a"), str(tmp_path / "b"), "--seeds", "7"]) == 2
    assert "no <run>/results.json with a test_uar of seed(s) 7" in capsys.readouterr().err


def test_sweeps_with_the_same_seeds_need_no_seed_note(tmp_path):
    for folder, uars in (("a", (0.6, 0.7, 0.5)), ("b", (0.65, 0.72, 0.58))):
        for fold, uar in enumerate(uars):
            for seed in (1, 2):
                write_run(tmp_path / folder, "acrnn", fold, uar=uar, seed=seed)
    [row] = compare_sweeps(tmp_path / "a", tmp_path / "b")
    assert row["runs_a"] == row["runs_b"] == row["paired_runs"] == 6
    assert "other runs" not in comparison_markdown([row], ("one", "two"))


def test_older_protocols_and_untested_runs_do_not_count(tmp_path):
    old = write_run(tmp_path / "a", "adrnn", 0, uar=0.1, protocol="old")
    os.utime(old, (0, 0))
    write_run(tmp_path / "a", "adrnn", 1, uar=0.6, protocol="new")
    write_run(tmp_path / "a", "adrnn", 2, uar=None, protocol="new")  # a search trial
    for fold in range(3):
        write_run(tmp_path / "b", "adrnn", fold, uar=0.7)
    [row] = compare_sweeps(tmp_path / "a", tmp_path / "b")
    assert row["folds"] == 1 and row["uar_a_mean"] == pytest.approx(0.6)
    assert row["uar_a_std"] is None and np.isnan(row["wilcoxon_p"])


def test_cli_prints_the_named_table_and_writes_json(tmp_path, capsys):
    for fold in range(2):
        write_run(tmp_path / "a", "asrnn", fold, uar=0.5 + fold / 10)
        write_run(tmp_path / "b", "asrnn", fold, uar=0.6 + fold / 5)
    out = tmp_path / "rows.json"
    code = compare_cli([str(tmp_path / "a"), str(tmp_path / "b"), "--names", "plain",
                        "recipe", "--json", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert printed == comparison_markdown(json.loads(out.read_text()), ("plain", "recipe"))
    # one fold: no std, no test; the rows read back from JSON hold null there
    write_run(tmp_path / "a", "acrnn", 0, uar=0.5)
    write_run(tmp_path / "b", "acrnn", 0, uar=0.5)
    assert compare_cli([str(tmp_path / "a"), str(tmp_path / "b"), "--json", str(out)]) == 0
    acrnn = json.loads(out.read_text())[0]
    assert acrnn["model"] == "acrnn" and acrnn["wilcoxon_p"] is None
    table = comparison_markdown([acrnn], ("a", "b"))
    assert "| acrnn | 1 | 50.00 +- - | 50.00 +- - | +0.00 | - | - | 100.0 % |" in table
    assert "| UAR plain | UAR recipe | recipe - plain |" in printed
    assert "| asrnn | 2 | 55.00 +- 7.07 | 70.00 +- 14.14 | +15.00 |" in printed


def test_cli_without_common_models_is_one_error(tmp_path, capsys):
    write_run(tmp_path / "a", "asrnn", 0, uar=0.5)
    write_run(tmp_path / "b", "acrnn", 0, uar=0.5)
    assert compare_cli([str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no model has tested runs in both") and str(tmp_path) in err
    assert compare_cli([str(tmp_path / "a"), str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'empty'}: no <run>/results.json with a test_uar\n"
    )


def test_a_comparison_of_runs_on_other_hardware_says_so(tmp_path):
    for side, precision in (("a", "32-true"), ("b", "bf16-mixed")):
        for fold in range(2):
            path = write_run(tmp_path / side, "adsrnn", fold, uar=0.5 + fold / 10)
            record = json.loads(path.read_text())
            record["environment"] = {"device_kind": "cpu", "precision": precision}
            path.write_text(json.dumps(record))
    [row] = compare_sweeps(tmp_path / "a", tmp_path / "b")
    assert (row["hardware_a"], row["hardware_b"]) == ("cpu 32-true", "cpu bf16-mixed")
    text = comparison_markdown([row], ("fp32", "bf16"))
    assert "| hardware fp32 | hardware bf16 |" in text
    assert text.splitlines()[2].endswith("| cpu 32-true | cpu bf16-mixed |")
    assert "differ in precision or device kind" in text
    same = comparison_markdown([row | {"hardware_b": "cpu 32-true"}], ("x", "y"))
    assert "hardware x" not in same and "Hardware of every run: cpu 32-true" in same


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"corpus": "emovo"}, "test other corpora or classes"),
        ({"classes": ["a", "b"]}, "test other corpora or classes"),
        ({"test_speakers": ["09"]}, "fold 1 tests speakers ['04'] in"),
    ],
)
def test_sweeps_whose_folds_do_not_pair_are_refused(tmp_path, capsys, change, message):
    for side in ("a", "b"):
        for fold in range(3):
            path = write_run(tmp_path / side, "adsrnn", fold, uar=0.5 + fold / 10)
            record = json.loads(path.read_text()) | {
                "corpus": "emodb", "classes": ["a", "b", "c"], "test_speakers": [f"0{fold + 3}"],
            }  # fmt: skip
            if side == "b" and (fold == 1 or "test_speakers" not in change):
                record |= change
            path.write_text(json.dumps(record))
    assert compare_cli([str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ") and message in line


def test_an_unwritable_json_is_refused_before_comparing(tmp_path, capsys):
    for side in ("a", "b"):
        write_run(tmp_path / side, "adsrnn", 0, uar=0.5)
    blocker = tmp_path / "file"
    blocker.write_text("")
    for out, message in ((tmp_path, "is a folder"), (blocker / "rows.json", "cannot create")):
        code = compare_cli([str(tmp_path / "a"), str(tmp_path / "b"), "--json", str(out)])
        assert code == 2
        assert message in capsys.readouterr().err
