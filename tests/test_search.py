"""Hyper-parameter search (hparams_search=optuna): trials over folds that never read the
test speakers, a resumable study, refused objectives and ranges, the best settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from hydra_compose import compose_tool

from ser.config import exit_on_user_error
from ser.sweep import plan_sweep

REPO = Path(__file__).resolve().parents[1]
FAST = ["model=asrnn", "debug=fast", "print_config=false", "hydra.sweeper.n_trials=1"]


def run(script: str, *args: str, root: Path, emodb: Path) -> subprocess.CompletedProcess:
    env = os.environ | {
        "SER_ROOT": str(root),
        "SER_EMODB_ROOT": str(emodb),
        "SER_CACHE_DIR": str(root / "cache"),
    }
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.fixture
def poisoned_emodb(emodb_root: Path, tmp_path: Path) -> Path:
    """Emo-DB with fold 0's test speaker (03) replaced by files that cannot be read: any
    read of that speaker's audio fails the run, naming the file."""
    wav = tmp_path / "emodb" / "wav"
    wav.mkdir(parents=True)
    for source in (emodb_root / "wav").glob("*.wav"):
        if source.name.startswith("03"):
            (wav / source.name).write_bytes(b"RIFF\x00\x00not audio")
        else:
            (wav / source.name).symlink_to(source)
    return tmp_path / "emodb"


def test_a_trial_trains_and_validates_every_fold_without_reading_the_test_speaker(
    poisoned_emodb, tmp_path
):
    root = tmp_path / "root"
    root.mkdir()
    result = run(
        "train.py", "-m", "hparams_search=optuna", *FAST, "search.folds=[0]",
        root=root, emodb=poisoned_emodb,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (trial,) = (root / "searches").glob("*/trial-*")
    fold = json.loads((trial / "fold0" / "results.json").read_text())
    assert fold["test_speakers"] == ["03"]
    assert fold["test_uar"] is None and "predictions" not in fold
    record = json.loads((trial / "results.json").read_text())
    assert record["test_uar"] is None
    assert record["val_uar_mean"] == pytest.approx(fold["val_uar_best"])
    assert record["val_uar_per_fold"] == {"0": fold["val_uar_best"]}

    # the control: a run that tests fold 0 reads speaker 03 and stops, naming the file
    tested = run("train.py", "model=asrnn", "debug=fast", root=root, emodb=poisoned_emodb)
    assert tested.returncode == 2 and "03a01Fa.wav" in tested.stderr


def test_the_study_is_resumed_and_the_best_settings_test_every_fold(emodb_root, tmp_path):
    args = ["-m", "hparams_search=optuna", *FAST, "search.folds=[0,1]"]
    for _ in range(2):
        result = run("train.py", *args, root=tmp_path, emodb=emodb_root)
        assert result.returncode == 0, result.stderr[-3000:]
    (search_dir,) = (tmp_path / "searches").iterdir()
    study = optuna.load_study(
        study_name=search_dir.name, storage=f"sqlite:///{search_dir / 'optuna.db'}"
    )
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 2  # the rerun added its trial to the same study
    records = [json.loads(p.read_text()) for p in search_dir.glob("trial-*/results.json")]
    best = max(records, key=lambda r: r["val_uar_mean"])
    assert best["val_uar_mean"] == pytest.approx(study.best_value)
    assert "search_summary.md" in {p.name for p in search_dir.iterdir()}

    best_cli = run("sweep.py", "best", str(search_dir), root=tmp_path, emodb=emodb_root)
    overrides = best_cli.stdout.split()
    assert overrides == best["params"]
    assert "augment=[specaugment,mixup]" in overrides
    assert not [o for o in overrides if o.startswith(("hparams_search", "search.", "hydra"))]
    for name, value in study.best_params.items():
        (given,) = [o for o in overrides if o.startswith(f"{name}=")]
        assert float(given.split("=")[1]) == pytest.approx(value)


def test_a_search_selecting_on_a_test_metric_is_refused_before_its_first_trial(
    emodb_root, tmp_path
):
    result = run(
        "train.py", "-m", "hparams_search=optuna", *FAST, "optimized_metric=test/uar",
        root=tmp_path, emodb=emodb_root,
    )  # fmt: skip
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "a search must select on validation only" in lines[0]
    assert not (tmp_path / "searches").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("test=true", "would score every trial on the test speakers"),
        ("hparams_search=inverted", "model.optimizer.lr=interval(0.01, 0.001): the range is"),
    ],
)
def test_a_search_that_would_see_the_test_speakers_or_has_no_range_is_refused(
    override, message, tmp_path, capsys
):
    """The check the sweep runs before its first trial (ser.sweep.SweepProgress)."""
    # a user's search preset with an inverted range (keys with dots: set in a file)
    presets = tmp_path / "conf" / "hparams_search"
    presets.mkdir(parents=True)
    (presets / "inverted.yaml").write_text(
        "# @package _global_\ndefaults:\n  - optuna\n"
        "hydra:\n  sweeper:\n    params:\n      model.optimizer.lr: interval(0.01, 0.001)\n"
    )
    overrides = ["hparams_search=optuna", *FAST, override]
    cfg = compose_tool(
        "config",
        [*overrides, f"hydra.searchpath=[file://{tmp_path / 'conf'}]"],
        return_hydra_config=True,
    )
    with pytest.raises(SystemExit) as exit_:
        exit_on_user_error(plan_sweep)(cfg, "config")
    assert exit_.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0]
