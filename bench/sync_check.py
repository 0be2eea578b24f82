"""Host synchronisations inside training steps on a GPU, counted by the line that asked.

CUDA's sync debug mode (``torch.cuda.set_sync_debug_mode("warn")``) warns at every operation
that makes the host wait for the GPU: ``.item()``, ``bool(tensor)``, ``torch.bincount``,
boolean-mask indexing, a copy to the host. :class:`SyncCheck`, a Lightning callback, turns
it on from a training batch's start to its end (forward, loss, backward, optimiser step,
``self.log``; not the logger's writes, which come after) after ``skip_steps`` warm-up
steps, and writes the warnings it saw, counted per file and line, to ``out`` (JSON).
This runs ``python train.py`` with it:

    python bench/sync_check.py --json OUT/syncs.json -- model=adsrnn trainer.max_steps=30

The run goes to a temporary ``SER_ROOT`` (nothing is skipped as already done; the feature
cache, ``SER_CACHE_DIR``, is kept). Without CUDA nothing is checked and the row says so.
bench/gpu.sh runs it for docs/hardware.md.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ser.io import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
#: what CUDA's sync debug mode warns (c10/cuda/CUDAFunctions.cpp)
SYNC_WARNING = "called a synchronizing CUDA operation"


def count_syncs(records: Iterable[warnings.WarningMessage]) -> dict[str, int]:
    """Sync warnings among ``records``, counted per ``file:line`` (most first).

    Example:
        >>> sync = warnings.WarningMessage(SYNC_WARNING, UserWarning, "m.py", 7)
        >>> other = warnings.WarningMessage("deprecated", UserWarning, "m.py", 9)
        >>> count_syncs([sync, other, sync])
        {'m.py:7': 2}
    """
    counts = collections.Counter(
        f"{record.filename}:{record.lineno}"
        for record in records
        if SYNC_WARNING in str(record.message)
    )
    return dict(counts.most_common())


class SyncCheck(L.Callback):
    """Record CUDA's sync warnings in training steps after ``skip_steps`` (module docstring)."""

    def __init__(self, *, out: str, skip_steps: int = 2) -> None:
        self.out = Path(out)
        self.skip_steps = skip_steps
        self.steps = 0
        self.records: list[warnings.WarningMessage] = []
        self._catcher: warnings.catch_warnings | None = None
        self._caught: list[warnings.WarningMessage] = []

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        """Start recording, on CUDA and past the warm-up steps."""
        if trainer.strategy.root_device.type != "cuda" or trainer.global_step < self.skip_steps:
            return
        self._catcher = warnings.catch_warnings(record=True)
        self._caught = self._catcher.__enter__()
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")

    def on_train_batch_end(self, *args: Any) -> None:
        """Stop recording and keep what this step warned."""
        if self._stop():
            self.records.extend(self._caught)
            self.steps += 1

    def on_exception(self, *args: Any) -> None:
        """Stop recording: a failed step leaves neither the mode nor the warnings filter on."""
        self._stop()

    def _stop(self) -> bool:
        """Turn the sync debug mode and the warnings capture off; whether they were on."""
        if self._catcher is None:
            return False
        torch.cuda.set_sync_debug_mode("default")
        self._catcher.__exit__(None, None, None)
        self._catcher = None
        return True

    def on_train_end(self, trainer: L.Trainer, *args: Any) -> None:
        """Write the counts (also when nothing was checked, saying why)."""
        syncs = count_syncs(self.records)
        write_json_atomic(
            self.out,
            {
                "device": str(trainer.strategy.root_device),
                "checked": trainer.strategy.root_device.type == "cuda",
                "steps_checked": self.steps,
                "syncs_per_step": {k: v / max(1, self.steps) for k, v in syncs.items()},
                "syncs": syncs,
            },
        )


def main(argv: list[str] | None = None) -> int:
    """Run ``train.py`` with :class:`SyncCheck`; the JSON gets the date and the command."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, required=True, help="where the counts go")
    parser.add_argument("--skip-steps", type=int, default=2, help="warm-up steps not checked")
    parser.add_argument("overrides", nargs="*", help="train.py overrides (after --)")
    args = parser.parse_args(argv)
    out = args.json.resolve()
    command = [
        sys.executable, str(ROOT / "train.py"), *args.overrides,
        "+callbacks.sync_check._target_=sync_check.SyncCheck",
        f"+callbacks.sync_check.out={out}", f"+callbacks.sync_check.skip_steps={args.skip_steps}",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="ser-sync-check-") as root:
        path = os.pathsep.join(filter(None, [str(ROOT / "bench"), os.environ.get("PYTHONPATH")]))
        env = os.environ | {"SER_ROOT": root, "PYTHONPATH": path}
        returncode = subprocess.run(command, cwd=ROOT, env=env).returncode
    if returncode != 0 or not out.is_file():
        print(f"error: train.py failed (exit {returncode}); no counts in {out}", file=sys.stderr)
        return returncode or 1
    row = json.loads(out.read_text())
    row["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    row["command"] = "python train.py " + " ".join(args.overrides)
    write_json_atomic(out, row)
    print(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
