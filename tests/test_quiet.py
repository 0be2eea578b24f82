"""ser.quiet: a run's log keeps ser's lines and real warnings, not library notices that do
not apply."""

from __future__ import annotations

import logging
import os
import stat
import warnings

import pytest

from ser.instantiate import instantiate_dict, instantiate_trainer
from ser.quiet import quiet_library_notices


def test_a_run_s_trainer_logs_no_lightning_tip_nor_srun_hint_outside_slurm(
    compose_config, tmp_path, monkeypatch, caplog
):
    """An ``srun`` binary on the PATH (a machine with SLURM installed) and no allocation:
    Lightning would print its srun hint and its hosted-logger tip whenever a run builds its
    Trainer."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    cfg = compose_config(["model=asrnn", "debug=fast"])
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        instantiate_trainer(cfg.trainer, logger=instantiate_dict(cfg.logger))
    assert not [w for w in caught if "srun" in str(w.message)]
    assert "Tip: For seamless cloud logging" not in caplog.text
    assert "GPU available" in caplog.text  # Lightning's other lines still pass


@pytest.mark.parametrize("in_slurm", [False, True])
def test_the_srun_hint_is_kept_inside_an_allocation(monkeypatch, in_slurm):
    if in_slurm:
        monkeypatch.setenv("SLURM_JOB_ID", "42")
    else:
        monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_notices()
        warnings.warn(
            "The `srun` command is available on your system but is not used. HINT: ...",
            stacklevel=1,
        )
        warnings.warn("a warning of ser's own", stacklevel=1)
    messages = [str(w.message) for w in caught]
    assert ("a warning of ser's own" in messages) and (len(messages) == 1 + in_slurm)
