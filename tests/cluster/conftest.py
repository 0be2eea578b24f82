"""A SLURM cluster on localhost for the cluster tests (``make test-cluster``).

``slurm.sh`` starts it once per session on free ports (so that it never meets another
cluster on this machine) and stops its daemons at the end. Where it cannot start (not root,
no apt-get), every cluster test is skipped with the reason, which ``-ra`` prints.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("slurm.sh")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def slurm_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a process that talks to the test cluster (``SLURM_CONF``)."""
    folder = tmp_path_factory.mktemp("slurm")
    ports = {
        name: str(free_port())
        for name in (
            "SER_SLURMCTLD_PORT",
            "SER_SLURMD_PORT",
            "SER_SLURMDBD_PORT",
            "SER_MARIADB_PORT",
        )
    }
    env = os.environ | ports
    started = subprocess.run(
        ["bash", str(SCRIPT), "start", str(folder)],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if started.returncode == 3:
        pytest.skip(started.stderr.strip() or "the local SLURM cluster cannot start here")
    assert started.returncode == 0, started.stderr[-3000:]
    try:
        yield env | {"SLURM_CONF": str(folder / "slurm.conf")}
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], env=env, timeout=120)


@pytest.fixture
def run_env(
    slurm_env: dict[str, str], emodb_root: Path, emodb_cache_dir: Path, tmp_path: Path
) -> dict[str, str]:
    """Cluster environment plus a fresh project root in ``tmp_path`` and the filled cache."""
    return slurm_env | {
        "SER_ROOT": str(tmp_path),
        "SER_EMODB_ROOT": str(emodb_root),
        "SER_CACHE_DIR": str(emodb_cache_dir),
        "PYTHONUNBUFFERED": "1",
        # slurm_helpers' callbacks, in the jobs too
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
