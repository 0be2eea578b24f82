"""bench/sweep_timing.py: a real sweep on the synthetic IEMOCAP-shaped corpus, timed."""

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
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


def test_a_sweep_past_its_timeout_is_stopped_whole(tmp_path, synthetic_sweep):
    sweep_dir = tmp_path / "stopped"
    sweep_dir.mkdir()
    log_path = tmp_path / "stopped.log"
    code, wall_s = timing.run_sweep(
        synthetic_sweep, sweep_dir=sweep_dir, timeout=2.0, log_path=log_path
    )
    assert code is None and 2.0 <= wall_s < 70
    left = subprocess.run(["pgrep", "-f", f"hydra.sweep.dir={sweep_dir}"], capture_output=True)
    assert left.stdout == b""
    row = timing.timing_row("stopped", synthetic_sweep, sweep_dir=sweep_dir, code=code,
                            wall_s=wall_s, log_text=log_path.read_text())  # fmt: skip
    assert row["stopped_at_timeout"] is True and row["runs_finished"] == 0
