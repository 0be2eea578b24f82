"""bench/power.py: the folds x seeds a paired comparison needs, from measured variances."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

BENCH = Path(__file__).resolve().parents[2] / "bench"
spec = importlib.util.spec_from_file_location("power", BENCH / "power.py")
power = sys.modules["power"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(power)


@pytest.mark.parametrize(("n", "sd"), [(10, 3.0), (6, 4.0), (25, 8.0)])
def test_the_power_is_the_rejection_rate_of_simulated_paired_t_tests(n, sd):
    rng = np.random.default_rng(0)
    differences = rng.normal(3.0, sd, size=(20000, n))
    rejected = stats.ttest_1samp(differences, 0.0, axis=1).pvalue < 0.05
    expected = power.paired_power(n, delta=3.0, variance=sd**2, alpha=0.05)
    assert rejected.mean() == pytest.approx(expected, abs=0.015)


def test_folds_needed_is_the_first_count_that_reaches_the_power():
    n = power.folds_needed(delta=3.0, variance=30.0, alpha=0.05, power=0.8)
    assert power.paired_power(n, delta=3.0, variance=30.0, alpha=0.05) >= 0.8
    assert power.paired_power(n - 1, delta=3.0, variance=30.0, alpha=0.05) < 0.8


def write_run(folder: Path, model: str, fold: int, seed: int, uar: float,
              predictions: list[dict] = ()) -> None:  # fmt: skip
    run = folder / f"{model}-fold{fold}-seed{seed}"
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({
        "model": model, "fold": fold, "seed": seed, "test_uar": uar, "wall_time_s": 120.0,
        "predictions": list(predictions),
    }))  # fmt: skip


def test_the_seed_noise_taken_out_follows_each_models_seeds(tmp_path, capsys):
    """ADSRNN with 3 seeds per fold and ACRNN with 1 in one folder: a fold difference
    carries sigma^2 (1/3 + 1) of seed noise."""
    model = [0.50, 0.56, 0.47, 0.61, 0.52, 0.58]
    baseline = [0.66, 0.69, 0.58, 0.80, 0.64, 0.71]
    shifts = (-0.04, 0.0, 0.05)
    for fold, (a, b) in enumerate(zip(model, baseline, strict=True)):
        write_run(tmp_path, "acrnn", fold, 1, b)
        for seed, shift in enumerate(shifts):
            write_run(tmp_path, "adsrnn", fold, seed, a + shift)
    assert power.main([str(tmp_path), "--baseline", "acrnn"]) == 0
    out = capsys.readouterr().out
    sigma2 = np.var([-4.0, 0.0, 5.0], ddof=1)
    measured = np.var(100 * (np.array(baseline) - np.array(model) - np.mean(shifts)), ddof=1)
    tau2 = max(0.0, measured - sigma2 * (1 / 3 + 1))
    assert f"tau^2 = {measured:.2f} - {sigma2:.2f} x 1.33 = {tau2:.2f}" in out
    assert "(1-3 seed(s) each)" in out


def test_speakers_are_the_units_with_unit_speaker(tmp_path, capsys):
    """Two folds of two speakers each; each speaker's UAR comes from the predictions."""

    def predictions(hits: dict[str, int]) -> list[dict]:
        # 4 utterances per speaker, 2 per class; ``hits`` of them right
        rows = []
        for speaker, right in hits.items():
            for i in range(4):
                label = "ab"[i % 2]
                rows.append({"speaker": speaker, "label": label,
                             "pred": label if i < right else "c"})  # fmt: skip
        return rows

    write_run(tmp_path, "adsrnn", 0, 1, 0.5, predictions({"s1": 2, "s2": 1}))
    write_run(tmp_path, "adsrnn", 0, 2, 0.5, predictions({"s1": 3, "s2": 2}))
    write_run(tmp_path, "adsrnn", 1, 1, 0.5, predictions({"s3": 1, "s4": 4}))
    write_run(tmp_path, "acrnn", 0, 1, 0.7, predictions({"s1": 4, "s2": 3}))
    write_run(tmp_path, "acrnn", 1, 1, 0.7, predictions({"s3": 2, "s4": 4}))
    assert power.main([str(tmp_path), "--baseline", "acrnn", "--unit", "speaker"]) == 0
    out = capsys.readouterr().out
    assert "over 4 speakers" in out
    # UAR per speaker: right answers 0-4 of 2 per class in order a, b, a, b
    uar = {0: 0.0, 1: 25.0, 2: 50.0, 3: 75.0, 4: 100.0}
    model = {"s1": [uar[2], uar[3]], "s2": [uar[1], uar[2]], "s3": [uar[1]], "s4": [uar[4]]}
    base = {"s1": uar[4], "s2": uar[3], "s3": uar[2], "s4": uar[4]}
    d = [base[s] - np.mean(model[s]) for s in ("s1", "s2", "s3", "s4")]
    sigma2 = np.var([uar[2], uar[3]], ddof=1)  # pooled: two speakers, equal variances
    assert f"seed-to-seed variance of adsrnn: {sigma2:.2f}" in out
    assert f"variance {np.var(d, ddof=1):.2f}" in out


def test_the_table_separates_seed_from_fold_variance(tmp_path, capsys):
    one, seeds = tmp_path / "one", tmp_path / "seeds"
    model = [0.50, 0.56, 0.47, 0.61, 0.52, 0.58]
    baseline = [0.66, 0.69, 0.58, 0.80, 0.64, 0.71]
    for fold, (a, b) in enumerate(zip(model, baseline, strict=True)):
        write_run(one, "adsrnn", fold, 1, a)
        write_run(one, "acrnn", fold, 1, b)
        for seed, shift in enumerate((-0.04, 0.0, 0.05)):
            write_run(seeds, "adsrnn", fold, seed, a + shift)
    code = power.main([str(one), "--seeds", str(seeds), "--baseline", "acrnn"])
    assert code == 0
    out = capsys.readouterr().out
    sigma2 = np.var([-4.0, 0.0, 5.0], ddof=1)  # the same shifts in every fold, in points
    measured = np.var(100 * (np.array(baseline) - np.array(model)), ddof=1)
    tau2 = max(0.0, measured - 2 * sigma2)
    assert f"seed-to-seed variance of adsrnn: {sigma2:.2f}" in out
    assert f"tau^2 = {measured:.2f} - {sigma2:.2f} x 2 = {tau2:.2f}" in out
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| 3 |")]
    assert float(rows[0][1]) == pytest.approx(tau2 + 2 * sigma2 / 3, abs=0.01)
    n = power.folds_needed(delta=3.0, variance=tau2 + 2 * sigma2 / 3, alpha=0.05, power=0.8)
    assert int(rows[0][2]) == n and rows[0][4] == f"{2 * n * 3 * 2 / 60:.1f} |"
