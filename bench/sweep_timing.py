"""Wall time of one whole sweep, as a user runs it: ``python sweep.py <overrides>``.

Runs the sweep in a subprocess into ``--sweep-dir`` (a fresh folder: finished runs would be
skipped and make it look fast), and records one JSON row: the wall time, the runs finished
against the runs planned, the sum and the largest of the runs' own ``wall_time_s``, the
device (the GPU's name, else the CPU's model), the date and the command. With
``--timeout S`` the sweep is stopped after S seconds (its whole process group) and the row
says how far it got; rerunning the sweep command resumes it.

    python bench/sweep_timing.py --name emodb --sweep-dir OUT/emodb --json OUT/emodb.json \\
        [--timeout 420] -- experiment=emodb_4class hydra/launcher=ser_local logger=csv

bench/gpu.sh uses it for the Emo-DB and IEMOCAP-sized sweeps of README "Hardware".
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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


def run_sweep(
    overrides: list[str], *, sweep_dir: Path, timeout: float | None, log_path: Path
) -> tuple[int | None, float]:
    """Run ``python sweep.py`` into ``sweep_dir``; return (exit code or None if stopped, s)."""
    command = [sys.executable, str(ROOT / "sweep.py"), *overrides, f"hydra.sweep.dir={sweep_dir}"]
    start = time.perf_counter()
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
        try:
            code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            code = None
    return code, time.perf_counter() - start


def timing_row(
    name: str, overrides: list[str], *, sweep_dir: Path, code: int | None, wall_s: float,
    log_text: str,
) -> dict[str, Any]:  # fmt: skip
    """The JSON row of one timed sweep."""
    runs = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/results.json"))]
    run_s = [r["wall_time_s"] for r in runs if r.get("wall_time_s") is not None]
    return {
        "name": name,
        "date": datetime.date.today().isoformat(),
        "device": device_name(),
        "command": "python sweep.py " + " ".join(overrides),
        "exit_code": code,
        "stopped_at_timeout": code is None,
        "wall_s": wall_s,
        "runs_finished": len(runs),
        "runs_planned": planned_runs(log_text),
        "failed_runs": len(list(sweep_dir.glob("*/error.json"))),
        "run_wall_s_sum": sum(run_s),
        "run_wall_s_max": max(run_s, default=None),
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
    code, wall_s = run_sweep(
        args.overrides, sweep_dir=args.sweep_dir.resolve(), timeout=args.timeout, log_path=log_path
    )
    row = timing_row(args.name, args.overrides, sweep_dir=args.sweep_dir, code=code,
                     wall_s=wall_s, log_text=log_path.read_text())  # fmt: skip
    print(json.dumps(row, indent=2))
    if args.json:
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(row, indent=2) + "\n")
        os.replace(tmp, args.json)
    return 0 if code in (0, None) else 1


if __name__ == "__main__":
    sys.exit(main())
