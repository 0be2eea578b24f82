"""bench/sweep_timing.py: a real sweep on the synthetic IEMOCAP-shaped corpus, timed."""

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = sys.modules[name] = importlib.util.module_from_spec(spec)  # dataclasses need it
    spec.loader.exec_module(module)
    return module


timing, synthetic = load("sweep_timing"), load("synthetic_iemocap")


@pytest.fixture
def synthetic_sweep(tmp_path, monkeypatch):
    """sweep.py overrides for a debug sweep of ASRNN on a tiny synthetic corpus."""
    manifest = synthetic.write_corpus(tmp_path / "synth", scale=0.02, mean_seconds=1.0)
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    return ["debug=fast", "print_config=false", "model=asrnn", "fold=0,1", "data=manifest",
            f"data.manifest={manifest}"]  # fmt: skip


def test_a_timed_sweep_records_its_runs_and_wall_time(tmp_path, synthetic_sweep, capsys):
    sweep_dir, row_file = tmp_path / "timed" / "synth", tmp_path / "row.json"
    args = ["--name", "synth", "--sweep-dir", str(sweep_dir), "--json", str(row_file)]
    assert timing.main([*args, "--", *synthetic_sweep]) == 0
    row = json.loads(row_file.read_text())
    assert row == json.loads(capsys.readouterr().out)
    runs = [json.loads(p.read_text()) for p in sweep_dir.glob("*/results.json")]
    assert sorted(r["fold"] for r in runs) == [0, 1]
    assert {r["corpus"] for r in runs} == {"manifest"}
    assert (row["runs_finished"], row["runs_planned"], row["failed_runs"]) == (2, 2, 0)
    assert row["exit_code"] == 0 and row["stopped_at_timeout"] is False
    assert row["run_wall_s_sum"] == pytest.approx(sum(r["wall_time_s"] for r in runs))
    assert row["wall_s"] > row["run_wall_s_max"] > 0
    assert row["command"] == "python sweep.py " + " ".join(synthetic_sweep)
    # a timing needs a fresh folder: finished runs would be skipped
    with pytest.raises(SystemExit):
        timing.main([*args, "--", *synthetic_sweep])


def test_a_sweep_past_its_timeout_is_stopped(tmp_path, synthetic_sweep):
    sweep_dir, log_path = tmp_path / "stopped", tmp_path / "stopped.log"
    sweep_dir.mkdir()
    run = timing.run_sweep(synthetic_sweep, sweep_dir=sweep_dir, timeout=2.0, log_path=log_path)
    assert run.code is None and run.wall_s >= 2.0
    assert timing.session_processes(run.session) == []
    row = timing.timing_row("stopped", synthetic_sweep, sweep_dir=sweep_dir, run=run,
                            log_text=log_path.read_text())  # fmt: skip
    assert row["stopped_at_timeout"] is True and row["runs_finished"] == 0


def test_stopping_a_parallel_sweep_stops_its_training_workers(tmp_path, synthetic_sweep):
    overrides = [o for o in synthetic_sweep if not o.startswith("fold=")]
    overrides += ["fold=0,1,2,3", "hydra/launcher=ser_local", "hydra.launcher.n_jobs=2"]
    log_path = tmp_path / "sweep.log"
    command = [sys.executable, str(timing.ROOT / "sweep.py"), *overrides,
               f"hydra.sweep.dir={tmp_path / 'sweep'}"]  # fmt: skip
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while "seg/s" not in log_path.read_text():  # a worker's epoch line: it is training
        assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.5)
    assert len(timing.session_processes(process.pid)) > 1
    timing.stop_session(process.pid, process)
    assert timing.session_processes(process.pid) == []
