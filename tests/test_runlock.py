"""ser.runlock: one process per run folder, and a killed holder leaves no lock behind."""

from __future__ import annotations

import csv
import errno
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest

from ser.errors import RunFolderBusyError
from ser.runlock import LOCK_NAME, distributed_rank, run_folder_lock

REPO = Path(__file__).resolve().parents[1]
HOLD = """from ser.runlock import run_folder_lock; import sys, time
with run_folder_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


class WaitFor(L.Callback):
    """Holds a training at its start until the file ``path`` exists (a minute at most): the
    run keeps its folder while the test starts another process on it."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_start(self, trainer, pl_module) -> None:
        deadline = time.monotonic() + 60
        while not self.path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def hold(folder: Path) -> subprocess.Popen:
    """A process holding ``folder``'s lock (until killed)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_process_is_refused_and_a_killed_holder_frees_the_folder(tmp_path):
    holder = hold(tmp_path)
    try:
        with (
            pytest.raises(
                RunFolderBusyError,
                match=rf"in use by another process \(pid {holder.pid} on {platform.node()}\)",
            ),
            run_folder_lock(tmp_path),
        ):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with run_folder_lock(tmp_path):  # kill -9 left the file, not the lock
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()} on {platform.node()}"


def test_followers_of_a_distributed_run_share_the_folder(tmp_path, monkeypatch):
    assert distributed_rank({"SLURM_PROCID": "0"}) == 0
    assert distributed_rank({"RANK": "3", "LOCAL_RANK": "1"}) == 3
    with run_folder_lock(tmp_path):
        monkeypatch.setenv("LOCAL_RANK", "1")
        with run_folder_lock(tmp_path):
            pass


def test_two_trainings_started_on_one_run_folder(tmp_path, emodb_root, emodb_cache_dir):
    """The second stops at once with one error line; the first, held at the start of its
    training until then, finishes intact."""
    run_dir, go = tmp_path / "run", tmp_path / "go"
    command = [
        sys.executable, str(REPO / "train.py"), "debug=fast", "model=asrnn",
        f"hydra.run.dir={run_dir}", f"paths.root_dir={tmp_path}",
        f"paths.cache_dir={emodb_cache_dir}",
    ]  # fmt: skip
    held = [f"+callbacks.wait._target_={WaitFor.__module__}.WaitFor", f"+callbacks.wait.path={go}"]
    env = os.environ | {
        "SER_EMODB_ROOT": str(emodb_root),
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    first = subprocess.Popen(
        [*command, *held], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        lock = run_dir / LOCK_NAME
        deadline = time.monotonic() + 120
        while not (lock.is_file() and lock.read_text().startswith(f"{first.pid} on ")):
            assert first.poll() is None and time.monotonic() < deadline, "the first never started"
            time.sleep(0.1)
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert first.poll() is None  # the second was refused while the first held the folder
    finally:
        go.touch()
    assert second.returncode == 2, second.stderr[-2000:]
    errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: the run folder {run_dir} is in use by another process (pid {first.pid} on "
        f"{platform.node()}): wait "
        "for it to end, or give this run another folder (hydra.run.dir=...)"
    ]
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-2000:]
    assert (run_dir / "results.json").is_file()
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        epochs = sorted({int(r["epoch"]) for r in csv.DictReader(f) if r.get("val/uar")})
    assert epochs == [0, 1]  # debug=fast: both epochs, nothing of the second process


def test_a_file_system_without_flock_runs_unlocked_with_a_warning(tmp_path, monkeypatch, caplog):
    import fcntl

    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    ran = False
    with caplog.at_level("WARNING", logger="ser.runlock"), run_folder_lock(tmp_path):
        ran = True
    assert ran and "its file system has no flock" in caplog.text
