"""UAR against training length (ser/lengths.py, ``python sweep.py lengths``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ser.lengths import (
    length_rows,
    length_runs,
    lengths_cli,
    lengths_figure,
    validation_curve,
)


def write_run(folder: Path, name: str, *, model: str, steps: int, fold: int, seed: int = 1,
              val: float, test: float, curve: list[tuple[int, float]] = ()) -> None:  # fmt: skip
    """A run folder as a sweep leaves it: results.json, and csv/metrics.csv when ``curve``
    (``(step, val/uar)``) is given, with a training-loss row between validations."""
    run = folder / name
    run.mkdir(parents=True)
    results = {"model": model, "steps_trained": steps, "fold": fold, "seed": seed,
               "val_uar_best": val, "test_uar": test}  # fmt: skip
    (run / "results.json").write_text(json.dumps(results))
    if curve:
        (run / "csv").mkdir()
        lines = ["epoch,step,train/loss,val/uar"]
        for epoch, (step, uar) in enumerate(curve):
            lines += [f"{epoch},{step - 1},0.9,", f"{epoch},{step},,{uar}"]
        (run / "csv" / "metrics.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture
def study(tmp_path):
    """Two sweep folders: 300 steps on folds 0-2 (fold 0 with two seeds), 1000 steps on
    folds 0-1, for model a; model b only at 300 steps on fold 0; a run not tested."""
    short, long = tmp_path / "steps300", tmp_path / "steps1000"
    write_run(short, "a-fold0-seed1", model="a", steps=300, fold=0, val=0.50, test=0.40)
    write_run(short, "a-fold0-seed2", model="a", steps=300, fold=0, seed=2, val=0.60, test=0.50)
    write_run(short, "a-fold1", model="a", steps=300, fold=1, val=0.70, test=0.60)
    write_run(short, "a-fold2", model="a", steps=300, fold=2, val=0.90, test=0.90)
    write_run(short, "b-fold0", model="b", steps=300, fold=0, val=0.30, test=0.20)
    write_run(long, "a-fold0", model="a", steps=1000, fold=0, val=0.80, test=0.70,
              curve=[(99, 0.5), (199, 0.8)])  # fmt: skip
    write_run(long, "a-fold1", model="a", steps=1000, fold=1, val=0.60, test=0.50,
              curve=[(99, 0.6), (199, 0.55)])  # fmt: skip
    untested = long / "a-fold2"
    untested.mkdir()
    (untested / "results.json").write_text(json.dumps({"model": "a", "fold": 2}))
    return short, long


def test_lengths_are_compared_on_the_folds_every_length_has(study):
    rows = length_rows(length_runs(study))
    a300, a1000, b300 = rows
    assert (a300["model"], a300["steps"], a300["folds"]) == ("a", 300, [0, 1])  # not fold 2
    assert a300["test"] == pytest.approx([45.0, 60.0])  # fold 0: the mean of its two seeds
    assert a300["val"] == pytest.approx([55.0, 70.0])
    assert a300["test_mean"] == pytest.approx(52.5)
    assert a300["test_std"] == pytest.approx(10.606601717798213)  # sample std of 45 and 60
    assert (a1000["steps"], a1000["folds"], a1000["test"]) == (1000, [0, 1], [70.0, 50.0])
    assert (b300["model"], b300["folds"], b300["test_std"]) == ("b", [0], 0.0)


def test_a_model_list_keeps_only_those_models(study):
    assert {r["model"] for r in length_runs(study, models=["b"])} == {"b"}


def test_a_seed_list_keeps_only_those_seeds_at_every_length(study):
    rows = length_rows(length_runs(study, seeds=[1]))
    assert rows[0]["test"] == pytest.approx([40.0, 60.0])  # fold 0: seed 1 alone
    assert [r["steps"] for r in rows if r["model"] == "a"] == [300, 1000]


def test_the_validation_curve_is_read_from_metrics_csv(study):
    _, long = study
    assert validation_curve(long / "a-fold0") == [(99, 50.0), (199, 80.0)]
    assert validation_curve(long / "a-fold2") == []  # no metrics.csv


def test_the_curves_tell_the_folds_apart_and_star_the_selected_checkpoint(study):
    runs = length_runs(study, models=["a"])
    _, right = lengths_figure(length_rows(runs), runs).axes
    curves = {line.get_label(): line for line in right.lines if len(line.get_xdata()) > 1}
    assert curves.keys() == {"a fold 0", "a fold 1"}
    assert curves["a fold 0"].get_linestyle() != curves["a fold 1"].get_linestyle()
    stars = {(line.get_xdata()[0], line.get_ydata()[0]) for line in right.lines
             if line.get_marker() == "*"}  # fmt: skip
    assert stars == {(199, 80.0), (99, 60.0)}  # each run's best validation step


def test_the_command_prints_the_table_and_writes_it_with_its_figure(study, tmp_path, capsys):
    out = tmp_path / "out"
    assert lengths_cli([*map(str, study), "--models", "a", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = (out / "lengths.md").read_text()
    assert table in printed
    assert "| a | 300 | 2 | 62.50 +- 10.61 | 52.50 +- 10.61 | 0: 45.00, 1: 60.00 |" in table
    assert "| a | 1000 | 2 | 70.00 +- 14.14 | 60.00 +- 14.14 | 0: 70.00, 1: 50.00 |" in table
    assert "| b |" not in table
    assert (out / "lengths.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_folder_without_tested_runs_is_one_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert lengths_cli([str(empty)]) == 2
    error = capsys.readouterr().err
    assert error == f"error: no <run>/results.json with test_uar and steps_trained in {empty}\n"


def test_an_unwritable_out_is_refused_before_any_work(study, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert lengths_cli([*map(str, study), "--out", str(blocker)]) == 2
    assert capsys.readouterr().err.startswith("error: --out=")
