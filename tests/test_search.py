"""Hyper-parameter search (hparams_search=optuna): trials over folds that never read the
test speakers, a resumable study, refused objectives and ranges, the best settings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from hydra_compose import compose_tool

from ser.errors import exit_on_user_error
from ser.sweep import plan_sweep

REPO = Path(__file__).resolve().parents[1]
FAST = ["model=asrnn", "debug=fast", "print_config=false", "hydra.sweeper.n_trials=1"]


def run(
    script: str, *args: str, root: Path, emodb: Path, cache: Path
) -> subprocess.CompletedProcess:
    env = os.environ | {
        "SER_ROOT": str(root),
        "SER_EMODB_ROOT": str(emodb),
        "SER_CACHE_DIR": str(cache),
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


def cache_folder(emodb: Path, cache_dir: Path) -> Path:
    """The folder of the default features of the Emo-DB copy at ``emodb`` in ``cache_dir``."""
    from ser.data import SERDataModule
    from ser.data.corpora import EmoDB

    corpus = EmoDB(root=emodb, download=False)
    return SERDataModule(corpus=corpus, fold=0, cache_dir=cache_dir, progress=False).cache.directory


@pytest.fixture
def poisoned_cache(poisoned_emodb, emodb_root, emodb_cache_dir, tmp_path) -> Path:
    """A feature cache for ``poisoned_emodb`` holding the session cache's entries: an entry
    is named after its file's resolved path, size and mtime, so every speaker but 03
    (symlinks to the shared copy) is cached, and any use of speaker 03 reads its audio."""
    cache_dir = tmp_path / "poisoned-cache"
    target = cache_folder(poisoned_emodb, cache_dir)
    target.mkdir(parents=True)
    for entry in cache_folder(emodb_root, emodb_cache_dir).glob("*.npy"):
        shutil.copy(entry, target / entry.name)
    return cache_dir


def test_a_trial_trains_and_validates_every_fold_without_reading_the_test_speaker(
    poisoned_emodb, poisoned_cache, tmp_path
):
    root = tmp_path / "root"
    root.mkdir()
    result = run(
        "train.py", "-m", "hparams_search=optuna", *FAST, "search.folds=[0]",
        root=root, emodb=poisoned_emodb, cache=poisoned_cache,
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
    tested = run(
        "train.py", "model=asrnn", "debug=fast",
        root=root, emodb=poisoned_emodb, cache=poisoned_cache,
    )  # fmt: skip
    assert tested.returncode == 2 and "03a01Fa.wav" in tested.stderr


def test_the_study_is_resumed_and_the_best_settings_test_every_fold(
    emodb_root, emodb_cache_dir, tmp_path
):
    args = ["-m", "hparams_search=optuna", *FAST, "search.folds=[0,1]"]
    for _ in range(2):
        result = run("train.py", *args, root=tmp_path, emodb=emodb_root, cache=emodb_cache_dir)
        assert result.returncode == 0, result.stderr[-3000:]
    (search_dir,) = (tmp_path / "searches").iterdir()
    study = optuna.load_study(
        study_name=search_dir.name, storage=f"sqlite:///{search_dir / 'optuna.db'}"
    )
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 2  # the rerun added its trial to the same study
    records = [json.loads(p.read_text()) for p in search_dir.glob("trial-*/results.json")]
    # the rerun's sampler continued its random stream: new settings, not the first ones again
    assert len(records) == 2 and records[0]["params"] != records[1]["params"]
    top = max(r["val_uar_mean"] for r in records)
    assert top == pytest.approx(study.best_value)
    assert "search_summary.md" in {p.name for p in search_dir.iterdir()}

    best_cli = run(
        "sweep.py", "best", str(search_dir),
        root=tmp_path, emodb=emodb_root, cache=emodb_cache_dir,
    )  # fmt: skip
    overrides = best_cli.stdout.split()
    assert overrides in [r["params"] for r in records if r["val_uar_mean"] == top]  # ties
    assert "augment=[specaugment,mixup]" in overrides
    assert not [o for o in overrides if o.startswith(("hparams_search", "search.", "hydra"))]
    given = {o.split("=")[0]: o.split("=")[1] for o in overrides}
    assert any(
        all(float(given[name]) == pytest.approx(value) for name, value in trial.params.items())
        for trial in trials
        if trial.value == pytest.approx(study.best_value)
    )


def test_a_search_selecting_on_a_test_metric_is_refused_before_its_first_trial(
    emodb_root, tmp_path
):
    result = run(
        "train.py", "-m", "hparams_search=optuna", *FAST, "optimized_metric=test/uar",
        root=tmp_path, emodb=emodb_root, cache=tmp_path / "cache",
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


def test_a_failing_trial_is_recorded_failed_and_the_search_goes_on(
    emodb_root, emodb_cache_dir, tmp_path
):
    """AdamW refuses a negative weight decay: every trial of this range fails at its start."""
    presets = tmp_path / "conf" / "hparams_search"
    presets.mkdir(parents=True)
    (presets / "negative.yaml").write_text(
        "# @package _global_\ndefaults:\n  - optuna\n"
        "hydra:\n  sweeper:\n    params:\n"
        "      model.optimizer.weight_decay: interval(-1.0, -0.5)\n"
    )
    result = run(
        "train.py", "-m", "hparams_search=negative", *FAST, "search.folds=[0]",
        "hydra.sweeper.n_trials=2", f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        root=tmp_path, emodb=emodb_root, cache=emodb_cache_dir,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr.split("search: 2 trial(s) failed")[-1]
    (search_dir,) = (tmp_path / "searches").iterdir()
    study = optuna.load_study(
        study_name=search_dir.name, storage=f"sqlite:///{search_dir / 'optuna.db'}"
    )
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2
    assert len(list(search_dir.glob("trial-*/error.json"))) == 2
    assert (search_dir / "search_summary.md").is_file()


def test_a_resumed_study_fails_trials_left_running_and_reseeds(tmp_path):
    from ser.search import fail_stale_trials, study_seed

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert study_seed(7, storage, "s") == 7  # no database yet
    study = optuna.create_study(study_name="s", storage=storage)
    study.tell(study.ask(), 0.5)
    study.ask()  # a trial whose search was killed
    assert study_seed(7, storage, "s") == 9
    assert fail_stale_trials(storage, "s") == 1
    states = [t.state for t in optuna.load_study(study_name="s", storage=storage).trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]


def test_a_damaged_study_database_is_one_error_before_any_trial(tmp_path, capsys):
    search_dir = tmp_path / "search"
    search_dir.mkdir()
    (search_dir / "optuna.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    cfg = compose_tool(
        "config",
        ["hparams_search=optuna", *FAST, f"hydra.sweep.dir={search_dir}"],
        return_hydra_config=True,
    )
    with pytest.raises(SystemExit) as exit_:
        exit_on_user_error(plan_sweep)(cfg, "config")
    assert exit_.value.code == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert f"the study database {search_dir / 'optuna.db'} is damaged" in line


def test_an_objective_a_trial_does_not_record_is_refused(capsys):
    cfg = compose_tool(
        "config", ["hparams_search=optuna", *FAST, "optimized_metric=val/uar"],
        return_hydra_config=True,
    )  # fmt: skip
    with pytest.raises(SystemExit):
        exit_on_user_error(plan_sweep)(cfg, "config")
    assert (
        "optimized_metric=val/uar: a search trial records val/uar_mean" in capsys.readouterr().err
    )
