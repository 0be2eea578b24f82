"""train.py and sweep.py share one Hydra task function (ser.cli.run) and keep their job names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hydra_compose import compose_tool

REPO = Path(__file__).resolve().parents[1]


def test_each_config_names_its_job_after_its_script():
    # Hydra would name the job "cli" after the file of the task function: the log file would
    # be cli.log and results.json's command "python cli.py ..." (the runs' files: test_sweep).
    # sweep.yaml includes config.yaml (job name train) and must win over it.
    for config_name, job_name in [("config", "train"), ("sweep", "sweep")]:
        cfg = compose_tool(config_name, [], return_hydra_config=True)
        assert cfg.hydra.job.name == job_name


def test_the_entry_points_and_launcher_plugins_start_without_torch_or_lightning():
    """Every job of a sweep and every CLI call imports these; Hydra imports the launcher
    plugins for every Hydra app. torch and Lightning come only with a run that trains."""
    modules = [
        "ser.cli", "ser.config", "ser.results", "ser.comparison", "ser.sweep", "ser.identity",
        "ser.hardware", "ser.tables", "ser.results_cli", "ser.stats", "ser.options",
        "ser.resolvers", "ser.naming", "hydra_plugins.ser_launcher.launcher",
        "hydra_plugins.ser_launcher.slurm", "hydra_plugins.ser_launcher.search",
    ]  # fmt: skip
    code = (
        f"import sys; import {', '.join(modules)}; "
        "print(' '.join(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []


def test_help_lists_the_groups_users_choose_from_and_not_the_plumbing():
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--help"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    groups_text = result.stdout.split("== Configuration groups ==", 1)[1].split("== Config ==")[0]
    listed = {
        line.split(":", 1)[0]: line.split(":", 1)[1].strip().split(", ")
        for line in groups_text.splitlines()
        if ":" in line and not line.startswith("Compose")
    }
    conf = REPO / "conf"
    expected = {
        d.name: sorted(p.stem for p in d.glob("*.yaml"))
        for d in conf.iterdir()
        if d.is_dir() and not d.name.startswith(("_", "hydra"))
    }
    assert listed == expected
    assert "_width" not in groups_text and "_base" not in groups_text
