"""ser.identity: a run's hashes come from its command; the documented runs keep theirs."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from ser.identity import IDENTITY_VERSION, config_hash

RESULTS = Path(__file__).parents[1] / "docs" / "results"


def documented_runs() -> list[Path]:
    """One results.json per model of each documented sweep (fold 0)."""
    return sorted(RESULTS.glob("*/runs/*-fold0/results.json"))


@pytest.mark.parametrize(
    "path", documented_runs(), ids=lambda p: f"{p.parents[2].name}/{p.parent.name}"
)
def test_a_documented_run_s_command_still_gives_its_hashes(compose_config, path):
    """The command a documented run recorded still composes. A run of this hash scheme
    (``identity_version``) gets its recorded config hash, so rerunning the command finds it
    finished, on this CPU with native bf16 as on any other machine; a run of older code does
    not, so rerunning the command retrains it instead of calling it done."""
    results = json.loads(path.read_text())
    root = yaml.safe_load(path.with_name("config.yaml").read_text())["data"]["root"]
    overrides = [o for o in shlex.split(results["command"])[2:] if not o.startswith("hydra")]
    cfg = compose_config([*overrides, f"data.root={root}"])
    if results.get("identity_version") == IDENTITY_VERSION:
        assert config_hash(cfg) == results["config_hash"]
    else:
        assert config_hash(cfg) != results["config_hash"]
