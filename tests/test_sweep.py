"""sweep.py end to end on the shared Emo-DB copy: summary, resumption, kill, launchers,
folds that follow the corpus, failing runs."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from wandb_records import wait_for_run_record

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def sweep(tmp_path, emodb_root, emodb_cache_dir, emovo_root):
    """Run ``sweep.py`` (debug preset) in ``tmp_path``; returns (process, sweep folder).

    ``returncode`` is the exit code the run must have; ``data`` names the sweep folder
    (``sweeps/debug-<data>``) and a corpus other than Emo-DB gets a cache of its own.
    """
    env = os.environ | {
        "SER_EMODB_ROOT": str(emodb_root),
        "SER_EMOVO_ROOT": str(emovo_root),
        "SER_CACHE_DIR": str(emodb_cache_dir),
    }

    def _run(*args: str, wait: bool = True, returncode: int = 0, data: str = "emodb"):
        sweep_dir = tmp_path / "sweeps" / f"debug-{data}"
        if data != "emodb":
            env["SER_CACHE_DIR"] = str(tmp_path / "cache")
        command = [
            sys.executable,
            str(REPO / "sweep.py"),
            "debug=fast",
            "print_config=false",
            *args,
        ]
        if not wait:
            return subprocess.Popen(
                command, cwd=tmp_path, env=env, start_new_session=True,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ), sweep_dir  # fmt: skip
        result = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == returncode, result.stderr[-3000:]
        return result, sweep_dir

    return _run


def results_of(sweep_dir: Path) -> dict[tuple[str, int], dict]:
    runs = {}
    for path in sweep_dir.glob("*/results.json"):
        results = json.loads(path.read_text())
        runs[results["model"], results["fold"]] = results
    return runs


def check_summary(sweep_dir: Path, models: list[str], folds: list[int]) -> None:
    runs = results_of(sweep_dir)
    assert set(runs) == {(m, f) for m in models for f in folds}
    rows = list(csv.DictReader((sweep_dir / "summary.csv").open()))
    assert [r["model"] for r in rows] == models
    for row in rows:
        assert int(row["n_folds"]) == len(folds)
        uars = [runs[row["model"], f]["test_uar"] for f in folds]
        assert float(row["uar_mean"]) == pytest.approx(sum(uars) / len(uars))
    per_fold = list(csv.DictReader((sweep_dir / "uar_per_fold.csv").open()))
    assert [int(r["fold"]) for r in per_fold] == folds
    for row in per_fold:
        for model in models:
            assert float(row[model]) == pytest.approx(runs[model, int(row["fold"])]["test_uar"])
    for figure in ("confusion.png", "uar_per_fold.png"):
        assert (sweep_dir / figure).stat().st_size > 1000


def test_a_killed_sweep_resumes_and_scores_every_checkpoint_on_another_corpus(sweep, emovo_root):
    models, folds = ["adsrnn", "asrnn"], [0, 1]
    process, sweep_dir = sweep("model=adsrnn,asrnn", "fold=0,1", wait=False)
    deadline = time.monotonic() + 300
    while not (sweep_dir / "asrnn-fold1").is_dir():  # run 4 of 4 has started
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (sweep_dir / "summary.csv").exists()
    assert set(results_of(sweep_dir)) == {("adsrnn", 0), ("adsrnn", 1), ("asrnn", 0)}
    stamps = {p: p.stat().st_mtime_ns for p in sweep_dir.glob("*/results.json")}

    # the same command trains only the killed run, and also scores every run's checkpoint on
    # another corpus (EMOVO) without retraining the finished runs
    cross = "+cross_eval=[emovo]"
    result, _ = sweep("model=adsrnn,asrnn", "fold=0,1", cross)
    log = result.stdout + result.stderr
    assert log.count("results.json with the same config exists") == 3
    assert "sweep: run 4 of 4" in log
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    check_summary(sweep_dir, models, folds)
    check_cross_corpus(sweep_dir, models, folds, emovo_root)
    assert (sweep_dir / "asrnn-fold1" / "sweep.log").stat().st_size > 0
    assert results_of(sweep_dir)["asrnn", 1]["command"].startswith("python sweep.py ")
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == [
        "adsrnn-fold0", "adsrnn-fold1", "asrnn-fold0", "asrnn-fold1",
    ]  # fmt: skip
    cross_stamps = {p: p.stat().st_mtime_ns for p in sweep_dir.glob("*/cross_eval/*.json")}
    sweep("model=adsrnn,asrnn", "fold=0,1", cross)
    assert {p: p.stat().st_mtime_ns for p in cross_stamps} == cross_stamps


def check_cross_corpus(
    sweep_dir: Path, models: list[str], folds: list[int], emovo_root: Path
) -> None:
    runs = results_of(sweep_dir)
    # EMOVO's four classes, named rab, tri, gio, neu in its files
    n_files = sum(len(list(emovo_root.glob(f"*/{c}-*.wav"))) for c in ("rab", "tri", "gio", "neu"))
    records = {}
    for (model, fold), run in runs.items():
        record = json.loads((sweep_dir / f"{model}-fold{fold}" / "cross_eval" /
                             "emovo.json").read_text())  # fmt: skip
        assert record["checkpoint"] == run["best_checkpoint"]
        assert record["dropped"] == 0 and record["n_utterances"] == n_files
        records[model, fold] = record
    rows = {(r["model"], r["test_corpus"]): r for r in csv.DictReader(
        (sweep_dir / "cross_corpus.csv").open())}  # fmt: skip
    for model in models:
        own = rows[model, "emodb"]
        assert float(own["uar_mean"]) == pytest.approx(
            sum(runs[model, f]["test_uar"] for f in folds) / len(folds)
        )
        other = rows[model, "emovo"]
        assert int(other["n_folds"]) == len(folds)
        assert float(other["uar_mean"]) == pytest.approx(
            sum(records[model, f]["uar"] for f in folds) / len(folds)
        )
    assert (
        "## Cross-corpus test UAR (%): trained on emodb" in (sweep_dir / "summary.md").read_text()
    )
    assert (sweep_dir / "cross_corpus.png").stat().st_size > 1000


def test_train_multirun_gives_the_same_artifacts_and_a_wandb_summary(
    tmp_path, emodb_root, emodb_cache_dir
):
    env = os.environ | {
        "SER_EMODB_ROOT": str(emodb_root),
        "SER_CACHE_DIR": str(emodb_cache_dir),
        "WANDB_MODE": "offline",
    }
    env.pop("WANDB_API_KEY", None)
    sweep_dir = tmp_path / "multi"
    command = [sys.executable, str(REPO / "train.py"), "-m", "debug=fast", "model=asrnn",
               "fold=range(2)", "logger=wandb", "task_name=wbsweep",
               f"hydra.sweep.dir={sweep_dir}"]  # fmt: skip
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sweep: 2 runs (1 model x 2 folds x 1 seed)" in result.stdout + result.stderr
    check_summary(sweep_dir, ["asrnn"], [0, 1])
    assert (sweep_dir / "asrnn-fold0" / "train.log").stat().st_size > 0
    assert results_of(sweep_dir)["asrnn", 0]["command"].startswith("python train.py ")
    (summary_run,) = (sweep_dir / "wandb").glob("offline-run-*")
    record = wait_for_run_record(next(summary_run.glob("*.wandb")))
    assert (record["run_group"], record["job_type"]) == ("wbsweep", "summary")
    assert len(list(sweep_dir.glob("asrnn-fold*/wandb/offline-run-*"))) == 2


def test_repeated_seeds_and_standalone_aggregation(sweep):
    _, sweep_dir = sweep("model=asrnn", "fold=0", "+seeds=2")
    folders = sorted(
        p.name for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    assert folders == ["asrnn-fold0-seed12345", "asrnn-fold0-seed12346"]
    seeds = sorted(json.loads(p.read_text())["seed"] for p in sweep_dir.glob("*/results.json"))
    assert seeds == [12345, 12346]
    (sweep_dir / "summary.csv").unlink()
    result = subprocess.run(
        [sys.executable, str(REPO / "sweep.py"), "aggregate", str(sweep_dir)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = csv.DictReader((sweep_dir / "summary.csv").open())
    uars = [json.loads(p.read_text())["test_uar"] for p in sweep_dir.glob("*/results.json")]
    assert row["n_folds"] == "1" and float(row["uar_mean"]) == pytest.approx(sum(uars) / 2)


def test_submitit_local_launcher_runs_a_one_by_two_sweep(sweep):
    _, sweep_dir = sweep("model=asrnn", "fold=0,1", "hydra/launcher=submitit_local")
    check_summary(sweep_dir, ["asrnn"], [0, 1])
    assert list((sweep_dir / ".submitit").iterdir())


def test_parallel_launcher_refuses_more_gpus_per_job_than_visible(tmp_path, emodb_root):
    command = [
        sys.executable, str(REPO / "sweep.py"), "debug=fast", "model=asrnn", "fold=0,1",
        "hydra/launcher=ser_local", "hydra.launcher.gpus_per_job=2",
        f"hydra.sweep.dir={tmp_path}/s",
    ]  # fmt: skip
    env = os.environ | {"SER_EMODB_ROOT": str(emodb_root), "CUDA_VISIBLE_DEVICES": "3"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: hydra.launcher.gpus_per_job=2 but only 1 GPU(s) are visible (3): "
        "lower gpus_per_job or set CUDA_VISIBLE_DEVICES"
    ]
    assert not list(tmp_path.rglob("results.json"))


def test_the_fold_list_follows_the_corpus(sweep, emodb_root, tmp_path, manifest_builder):
    speakers = ("03", "08", "09", "10")
    manifest = manifest_builder(emodb_root, tmp_path / "corpus4", speakers=speakers, per_class=1)
    result, sweep_dir = sweep(
        "data=manifest", f"data.manifest={manifest}", "model=asrnn", data="manifest"
    )
    folds = list(range(len(speakers)))
    plan = f"sweep: {len(folds)} runs (1 model x {len(folds)} folds x 1 seed)"
    assert plan in result.stdout + result.stderr
    check_summary(sweep_dir, ["asrnn"], folds)
    tested = {f: r["test_speakers"] for (_, f), r in results_of(sweep_dir).items()}
    assert sorted(s for ss in tested.values() for s in ss) == list(speakers)


@pytest.mark.parametrize("data", ["emovo", "manifest"])
def test_the_plan_counts_every_model_and_fold_of_the_corpus(
    data, emodb_root, emovo_root, tmp_path, monkeypatch, manifest_builder
):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ser.config import CONFIG_DIR
    from ser.sweep import plan_sweep

    monkeypatch.setenv("SER_EMOVO_ROOT", str(emovo_root))
    if data == "emovo":
        overrides, n_folds = ["data=emovo"], len([p for p in emovo_root.iterdir() if p.is_dir()])
    else:
        speakers = ("03", "08", "09", "10", "11")
        manifest = manifest_builder(emodb_root, tmp_path / "c", speakers=speakers)
        overrides, n_folds = ["data=manifest", f"data.manifest={manifest}"], len(speakers)
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("sweep", overrides=overrides, return_hydra_config=True)
        line = plan_sweep(cfg, "sweep").line()
    GlobalHydra.instance().clear()
    assert line == f"sweep: {4 * n_folds} runs (4 models x {n_folds} folds x 1 seed)"


@pytest.mark.parametrize("data", ["emodb", "manifest"])
def test_an_invalid_fold_is_refused_before_anything_runs(
    tmp_path, emodb_root, manifest_builder, data
):
    from ser.data.corpora import EmoDB

    if data == "emodb":
        args, speakers = [], EmoDB(root=emodb_root, download=False).speakers
    else:
        speakers = ["03", "08", "09", "10", "11", "12"]
        manifest = manifest_builder(emodb_root, tmp_path / "corpus", speakers=speakers)
        args = ["data=manifest", f"data.manifest={manifest}"]
    workdir = tmp_path / "work"
    workdir.mkdir()
    bad = len(speakers)
    command = [sys.executable, str(REPO / "sweep.py"), "debug=fast", "model=asrnn",
               f"fold={bad},1", *args]  # fmt: skip
    env = os.environ | {"SER_EMODB_ROOT": str(emodb_root)}
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr[-3000:]
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith(f"error: fold={bad} is out of range for {data}: valid folds are ")
    assert f"0..{len(speakers) - 1} " in error
    assert all(f"test {s}" in error for s in speakers)
    assert "sweep: run" not in result.stderr
    assert not list(workdir.iterdir())  # nothing written: no sweep folder, no run folder


@pytest.mark.parametrize("launcher", ["basic", "ser_local"])
def test_a_failing_run_does_not_stop_the_sweep_and_a_rerun_retries_it(sweep, tmp_path, launcher):
    """With ser_local: two jobs in parallel share the cores. The retry is checked with the
    basic launcher only: skipping finished runs is ser.task.train's, whatever the launcher."""
    args = ["model=asrnn", "fold=0,1", f"hydra/launcher={launcher}"]
    if launcher == "ser_local":
        args.append("hydra.launcher.n_jobs=2")
    failing = tmp_path / "sweeps" / "debug-emodb" / "asrnn-fold0"  # the first run fails
    failing.mkdir(parents=True)
    (failing / "checkpoints").write_text("a file where the checkpoint folder goes")
    result, sweep_dir = sweep(*args, returncode=1)
    log = result.stdout + result.stderr
    assert set(results_of(sweep_dir)) == {("asrnn", 1)}
    record = json.loads(
        (failing / "error.json").read_text(), parse_constant=lambda c: pytest.fail(c)
    )
    assert (record["model"], record["fold"], record["error"]) == ("asrnn", 0, "FileExistsError")
    assert str(failing / "checkpoints") in record["message"]
    assert record["message"] in Path(record["log"]).read_text()  # the log has the traceback
    (row,) = csv.DictReader((sweep_dir / "summary.csv").open())
    assert (row["n_folds"], row["failed_folds"]) == ("1", "0")
    assert "0" not in row["missing_folds"].split()
    summary = (sweep_dir / "summary.md").read_text()
    assert "## Failed runs (1)" in summary and "| asrnn-fold0 | FileExistsError: " in summary
    assert "1 run(s) failed" in log and "asrnn-fold0: FileExistsError" in log
    if launcher == "ser_local":  # the two jobs ran side by side, sharing the cores
        assert f"failed, see {failing / 'error.json'}" in log
        assert "ser_local: 2 of 2 jobs done" in log
        assert "sweep: run" not in log  # workers' copies of the progress callback stay silent
        threads = results_of(sweep_dir)["asrnn", 1]["environment"]["torch_threads"]
        assert threads == max(1, (os.cpu_count() or 1) // 2)
        return

    done = (sweep_dir / "asrnn-fold1" / "results.json").stat().st_mtime_ns
    (failing / "checkpoints").unlink()  # the cause is fixed: the same command retries
    result, _ = sweep(*args)
    log = result.stdout + result.stderr
    assert log.count("results.json with the same config exists") == 1
    assert (sweep_dir / "asrnn-fold1" / "results.json").stat().st_mtime_ns == done
    assert not (failing / "error.json").exists()
    check_summary(sweep_dir, ["asrnn"], [0, 1])
    (row,) = csv.DictReader((sweep_dir / "summary.csv").open())
    assert row["failed_folds"] == ""


def test_a_sweep_over_front_ends_gives_one_row_each(sweep, small_emodb):
    """Reference rows beside each other: one model on two front-ends is two rows of one
    table (the front-end is not part of the protocol), in two run folders."""
    _, sweep_dir = sweep(
        "data=manifest", f"data.manifest={small_emodb}", "model=linear",
        "features=egemaps,compare", "fold=0,1", data="manifest",
    )  # fmt: skip
    check_summary(sweep_dir, ["linear-compare", "linear-egemaps"], [0, 1])
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == [
        "linear-compare-fold0", "linear-compare-fold1", "linear-egemaps-fold0",
        "linear-egemaps-fold1",
    ]  # fmt: skip
    assert "eGeMAPSv02" in (sweep_dir / "linear-egemaps-fold0" / "config.yaml").read_text()
