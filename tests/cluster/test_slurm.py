"""The cluster path against a real SLURM (slurm.sh): sweeps through submitit, a job
cancelled mid-training and the sweep rerun, multi-node DDP started by srun, a run
requeued at its time limit that resumes from its last checkpoint, a GPU sweep submitted
from a machine without a GPU, and a finished sweep resubmitted from another host.

Run with ``make test-cluster`` (root: it installs and starts the daemons).
"""

from __future__ import annotations

import csv
import json
import subprocess
import time
from pathlib import Path

from slurm_helpers import LAUNCHER, as_other_cpu, python, slurm

from ser.data.corpora import EmoDB
from ser.evaluate import evaluate
from ser.inference import Predictor

REPO = Path(__file__).resolve().parents[2]


def wait_for(condition, *, timeout: float, what: str, process=None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"the sweep ended before {what}:\n{output[-3000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def start_sweep(*overrides: str, env: dict[str, str], host=None) -> subprocess.Popen:
    """``python sweep.py`` with the test cluster's launcher settings; ``host`` wraps the
    command to submit it as from another machine (:func:`slurm_helpers.as_other_cpu`)."""
    command = python("sweep.py", *LAUNCHER, *overrides)
    return subprocess.Popen(
        host(command) if host else command,
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def finish(process: subprocess.Popen, *, timeout: float) -> str:
    output, _ = process.communicate(timeout=timeout)
    return output


def summary_rows(sweep_dir: Path) -> dict[str, dict[str, str]]:
    with open(sweep_dir / "summary.csv", newline="") as f:
        return {row["model"]: row for row in csv.DictReader(f)}


def test_sweep_cancelled_job_is_recorded_and_a_rerun_resubmits_only_it(run_env, tmp_path):
    overrides = ["model=adsrnn,asrnn", "fold=0,1", "debug=fast", "trainer.max_epochs=8"]
    sweep_dir = tmp_path / "sweeps" / "cluster-emodb"
    victim = sweep_dir / "adsrnn-fold0"
    process = start_sweep(*overrides, "task_name=cluster", env=run_env)
    # the first job of the array is adsrnn fold 0: cancel it once it has saved a checkpoint
    wait_for(
        lambda: (victim / "checkpoints" / "last.ckpt").is_file()
        and (victim / "checkpoints.json").is_file(),
        timeout=300, what="adsrnn fold 0's first last.ckpt", process=process,
    )  # fmt: skip
    array = slurm("squeue", "-h", "-o", "%F", env=run_env).split()[0]
    slurm("scancel", f"{array}_0", env=run_env)
    output = finish(process, timeout=600)

    assert process.returncode == 1, output[-3000:]
    error = json.loads((victim / "error.json").read_text())
    assert "CANCELLED" in error["message"] and error["model"] == "adsrnn" and error["fold"] == 0
    assert all(Path(log).is_file() for log in error["log"].split(" / "))
    done = {p.parent.name: p.stat().st_mtime for p in sweep_dir.glob("*/results.json")}
    assert set(done) == {"adsrnn-fold1", "asrnn-fold0", "asrnn-fold1"}
    assert summary_rows(sweep_dir)["adsrnn"]["n_folds"] == "1"
    assert summary_rows(sweep_dir)["adsrnn"]["failed_folds"] == "0"

    rerun = start_sweep(*overrides, "task_name=cluster", env=run_env)
    output = finish(rerun, timeout=600)
    assert rerun.returncode == 0, output[-3000:]
    assert "3 of 4 runs already have results; submitting 1" in output
    results = json.loads((victim / "results.json").read_text())
    assert results["resumed_from"] == str(victim / "checkpoints" / "last.ckpt")
    assert results["epochs_trained"] == 8
    assert results["environment"]["slurm"]["job_id"]
    assert not (victim / "error.json").exists()
    # the finished runs were not run again, and nothing is left half-written
    assert {n: (sweep_dir / n / "results.json").stat().st_mtime for n in done} == done
    assert not [p for p in sweep_dir.rglob("*") if ".tmp" in p.name]
    rows = summary_rows(sweep_dir)
    assert rows["adsrnn"]["n_folds"] == rows["asrnn"]["n_folds"] == "2"
    assert rows["adsrnn"]["failed_folds"] == ""


def test_multinode_ddp_through_srun_tests_every_utterance_once(run_env, tmp_path, emodb_root):
    fold = 1
    result = subprocess.run(
        ["srun", "--ntasks=2", "--cpus-per-task=1", *python(
            "train.py", "hardware=multinode", "trainer.accelerator=cpu", "debug=fast",
            "model=asrnn", f"fold={fold}", "print_config=false",
        )],
        cwd=REPO, env=run_env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = (tmp_path / "outputs").rglob("results.json")
    assert path.parent.name.startswith("slurm-")
    results = json.loads(path.read_text())
    assert results["environment"]["world_size"] == 2

    corpus = EmoDB(root=emodb_root, download=False)
    test_speakers = set(corpus.fold(fold).test)
    expected = sorted(u.id for u in corpus.utterances if u.speaker in test_speakers)
    assert sorted(p["id"] for p in results["predictions"]) == expected
    assert results["n_test_utterances"] == len(expected)

    # the same checkpoint tested in one process
    predictor = Predictor.from_checkpoint(results["best_checkpoint"], device="cpu")
    single = evaluate(predictor, corpus, fold=fold, progress=False)
    assert single["uar"] == results["test_uar"] or abs(single["uar"] - results["test_uar"]) < 1e-6
    assert abs(single["wa"] - results["test_wa"]) < 1e-6
    preds = {p["id"]: p["pred"] for p in single["predictions"]}
    assert preds == {p["id"]: p["pred"] for p in results["predictions"]}


def test_a_run_reaching_its_time_limit_is_requeued_and_resumes(run_env, tmp_path):
    run_dir = tmp_path / "sweeps" / "limit-emodb" / "asrnn-fold2"
    process = start_sweep(
        # 150 epochs of at least 1 s each: longer than the 2-minute limit on any machine. SLURM
        # may signal up to 60 s early; with 1 minute the signal could come during start-up.
        "model=asrnn", "fold=2", "debug=fast", "trainer.max_epochs=150", "task_name=limit",
        "+callbacks.slow._target_=slurm_helpers.SlowEpochs", "+callbacks.slow.seconds=1",
        "hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=30",
        "hydra.launcher.max_num_timeout=5", env=run_env,
    )  # fmt: skip
    released, held_since = set(), {}
    while process.poll() is None:
        # SLURM holds a requeued job for two minutes before it may start again: release it
        # (what is tested is the requeue and the resumption, not SLURM's waiting time), but
        # not within the second of the requeue: slurmd compares whole-second times, and a
        # restart's credential from that second counts as revoked ("Killing non-startable
        # batch JobId=7: Job credential revoked", the job FAILED)
        for line in slurm("squeue", "-h", "-o", "%i %T %r", env=run_env).splitlines():
            job, state, reason = line.split()
            if state == "PENDING" and reason == "BeginTime":
                since = held_since.setdefault(job, time.monotonic())
                if time.monotonic() - since >= 3:
                    slurm("scontrol", "update", f"JobId={job}", "StartTime=now", env=run_env)
                    released.add(job)
                    del held_since[job]
        time.sleep(1)
    output = finish(process, timeout=60)
    assert process.returncode == 0, output[-3000:]
    assert released, "the job was never requeued"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["resumed_from"] == str(run_dir / "checkpoints" / "last.ckpt")
    assert int(results["environment"]["slurm"]["restart_count"]) >= 1
    assert results["epochs_trained"] == 150
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        validated = {int(r["epoch"]) for r in csv.DictReader(f) if r.get("val/uar")}
    assert validated == set(range(150))


def test_a_sweep_without_sbatch_is_one_clear_error_before_anything_is_written(run_env, tmp_path):
    env = run_env | {"PATH": str(Path(python()[0]).parent)}
    result = subprocess.run(
        python("sweep.py", *LAUNCHER, "model=asrnn", "fold=0", "debug=fast"),
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "sbatch is not on the PATH" in lines[0]
    assert not (tmp_path / "sweeps").exists()


def test_a_gpu_sweep_is_submitted_from_a_machine_without_a_gpu_and_fails_on_its_nodes(
    run_env, tmp_path
):
    """A login node has no GPU: the sweep is submitted all the same. This node has none
    either, so each job fails with one clear error in its error.json, named in the summary."""
    sweep_dir = tmp_path / "sweeps" / "gpu-emodb"
    process = start_sweep(
        "hardware=gpu", "model=asrnn", "fold=0,1", "debug=fast", "task_name=gpu",
        env=run_env | {"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    output = finish(process, timeout=600)
    assert process.returncode == 1, output[-3000:]
    assert "0 of 2 runs already have results; submitting 2" in output
    for fold in (0, 1):
        error = json.loads((sweep_dir / f"asrnn-fold{fold}" / "error.json").read_text())
        assert error["error"] == "ConfigError" and error["fold"] == fold
        assert error["message"].startswith("hardware=gpu/ddp needs a GPU but none is visible on ")
        assert "hydra.launcher.gpus_per_node" in error["message"]
    assert not list(sweep_dir.rglob("results.json"))
    summary = (sweep_dir / "summary.md").read_text()
    assert "## Failed runs (2)" in summary
    assert all(f"| asrnn-fold{f} | ConfigError: hardware=gpu/ddp needs a GPU" in summary
               for f in (0, 1))  # fmt: skip


def test_a_sweep_finished_on_the_nodes_is_finished_when_resubmitted_from_another_host(
    run_env, tmp_path
):
    """The runs' identity (config hash) and precision come from the command: a sweep
    submitted again from a machine whose CPU differs (here: in its bf16 flags) submits
    nothing, and every run trained in fp32."""
    # hardware=auto: the default, which debug=fast would replace with hardware=cpu
    overrides = ["model=asrnn", "fold=0,1", "debug=fast", "hardware=auto", "task_name=hosts"]
    sweep_dir = tmp_path / "sweeps" / "hosts-emodb"
    first = start_sweep(*overrides, env=run_env)
    output = finish(first, timeout=600)
    assert first.returncode == 0, output[-3000:]
    done = {p: p.stat().st_mtime_ns for p in sweep_dir.glob("*/results.json")}
    assert len(done) == 2
    assert {json.loads(p.read_text())["environment"]["precision"] for p in done} == {"32-true"}

    rerun = start_sweep(*overrides, env=run_env, host=lambda c: as_other_cpu(c, tmp_path))
    output = finish(rerun, timeout=600)
    assert rerun.returncode == 0, output[-3000:]
    assert "2 of 2 runs already have results; submitting 0" in output
    assert {p: p.stat().st_mtime_ns for p in done} == done
