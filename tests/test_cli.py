"""train.py and sweep.py share one Hydra task function (ser.cli.run) and keep their job names."""

from __future__ import annotations

from hydra_compose import compose_tool


def test_each_config_names_its_job_after_its_script():
    # Hydra would name the job "cli" after the file of the task function: the log file would
    # be cli.log and results.json's command "python cli.py ..." (the runs' files: test_sweep).
    # sweep.yaml includes config.yaml (job name train) and must win over it.
    for config_name, job_name in [("config", "train"), ("sweep", "sweep")]:
        cfg = compose_tool(config_name, [], return_hydra_config=True)
        assert cfg.hydra.job.name == job_name
