"""Wall time of one whole sweep, as a user runs it: ``python sweep.py <overrides>``.

Runs the sweep in a subprocess into ``--sweep-dir`` (a fresh folder: finished runs would be
skipped and make it look fast), and records one JSON row: the wall time, the runs finished
against the runs planned, the sum and the largest of the runs' own ``wall_time_s``, the
training steps logged, the device (the GPU's name, else the CPU's model), the date and the
command. With ``--timeout S`` the sweep is stopped after S seconds (every process it
started) and the row says how far it got; rerunning the sweep command resumes it. When the
sweep fails or is stopped, the end of its log is printed.

    python bench/sweep_timing.py --name emodb --sweep-dir OUT/emodb --json OUT/emodb.json \\
        [--timeout 420] -- experiment=emodb_4class hydra/launcher=ser_local logger=csv

bench/gpu.sh uses it for the Emo-DB and IEMOCAP-sized sweeps of docs/hardware.md.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ser.io import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]


def device_name() -> str:
    """The first visible GPU's name, else the CPU's model name."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def planned_runs(log_text: str) -> int | None:
    """The run count of the sweep's plan line (``sweep: 40 runs (...)``)."""
    match = re.search(r"sweep: (\d+) runs? \(", log_text)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class SweepRun:
    """How a timed sweep ended: its exit code (``None``: stopped at the timeout), wall time
    and the id of its process session (every process it started, workers included)."""

    code: int | None
    wall_s: float
    session: int


def stop_session(session: int, process: subprocess.Popen, *, grace_s: float = 15.0) -> None:
    """SIGTERM every process of the sweep's session, then SIGKILL what is left.

    The main process dies at once, but workers may outlive it: Lightning turns SIGTERM into
    an exception that a process pool catches, and the worker would take the next run."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(session, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)
    deadline = time.monotonic() + grace_s
    # again until none is left: a pool may start a worker in place of one that died
    while (pids := session_processes(session)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    process.wait()


def session_processes(session: int) -> list[int]:
    """Ids of the live processes of a session (``/proc/<pid>/stat``, Linux)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            # after the name: state, ppid, pgrp, session; zombies are already dead
            if int(fields[3]) == session and fields[0] != "Z":
                pids.append(int(stat.parent.name))
    return pids


def run_sweep(
    overrides: list[str], *, sweep_dir: Path, timeout: float | None, log_path: Path
) -> SweepRun:
    """Run ``python sweep.py`` into ``sweep_dir`` in a session of its own, its output in
    ``log_path``; past ``timeout`` seconds the whole session is stopped."""
    command = [sys.executable, str(ROOT / "sweep.py"), *overrides, f"hydra.sweep.dir={sweep_dir}"]
    start = time.perf_counter()
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
        try:
            code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_session(process.pid, process)
            code = None
    return SweepRun(code, time.perf_counter() - start, process.pid)


def steps_logged(sweep_dir: Path) -> int:
    """Training steps in the runs' ``csv/metrics.csv`` (as far as the logger flushed them):
    progress of runs a timeout cut."""
    total = 0
    for path in sweep_dir.glob("*/csv/metrics.csv"):
        with path.open() as f:
            steps = [int(row["step"]) for row in csv.DictReader(f) if row.get("step")]
        total += max(steps, default=0)
    return total


def timing_row(
    name: str, overrides: list[str], *, sweep_dir: Path, run: SweepRun, log_text: str
) -> dict[str, Any]:
    """The JSON row of one timed sweep."""
    runs = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/results.json"))]
    run_s = [r["wall_time_s"] for r in runs if r.get("wall_time_s") is not None]
    return {
        "name": name,
        "date": datetime.date.today().isoformat(),
        "device": device_name(),
        "command": "python sweep.py " + " ".join(overrides),
        "exit_code": run.code,
        "stopped_at_timeout": run.code is None,
        "wall_s": run.wall_s,
        "runs_finished": len(runs),
        "runs_planned": planned_runs(log_text),
        "failed_runs": len(list(sweep_dir.glob("*/error.json"))),
        "run_wall_s_sum": sum(run_s),
        "run_wall_s_max": max(run_s, default=None),
        "steps_logged": steps_logged(sweep_dir),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, time the sweep, print and write the row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="the row's name, e.g. emodb")
    parser.add_argument("--sweep-dir", type=Path, required=True, help="a new folder")
    parser.add_argument("--json", type=Path, help="also write the row here")
    parser.add_argument("--timeout", type=float, help="stop the sweep after this many seconds")
    parser.add_argument("overrides", nargs="*", help="sweep.py overrides (after --)")
    args = parser.parse_args(argv)
    if args.sweep_dir.exists() and any(args.sweep_dir.iterdir()):
        parser.error(f"--sweep-dir {args.sweep_dir} is not empty: a timing needs a new folder")
    args.sweep_dir.mkdir(parents=True, exist_ok=True)
    log_path = args.sweep_dir.parent / f"{args.sweep_dir.name}.log"
    run = run_sweep(
        args.overrides, sweep_dir=args.sweep_dir.resolve(), timeout=args.timeout, log_path=log_path
    )
    log_text = log_path.read_text()
    if run.code != 0:  # why, in the caller's output (the log may not travel back)
        print(f"sweep {'stopped at the timeout' if run.code is None else 'failed'}; "
              f"the end of {log_path}:\n" + "\n".join(log_text.splitlines()[-40:]))  # fmt: skip
    row = timing_row(args.name, args.overrides, sweep_dir=args.sweep_dir, run=run,
                     log_text=log_text)  # fmt: skip
    print(json.dumps(row, indent=2))
    if args.json:
        write_json_atomic(args.json, row)
    return 0 if run.code in (0, None) else 1


if __name__ == "__main__":
    sys.exit(main())
