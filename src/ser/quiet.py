"""Library notices that do not apply to a ``ser`` run, kept out of its log, one by one.

Each filter matches one message of one library, and only where it does not apply; every
other warning and log line passes as it is (no blanket filters).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

#: Lightning's advertisement for its hosted logger, printed by every Trainer
LITLOGGER_TIP = "💡 Tip: For seamless cloud logging"
#: Lightning's hint to launch with srun, printed wherever an ``srun`` binary is on the PATH
SRUN_HINT = r"The `srun` command is available on your system but is not used"
#: a deprecation inside Lightning's own pytree helper (torch's ``LeafSpec``), not user code
LEAFSPEC_DEPRECATION = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
#: ModelCheckpoint's warning about files already in its folder
CHECKPOINTS_NOT_EMPTY = r"Checkpoint directory .+ exists and is not empty\."


class _DropMessage(logging.Filter):
    """Drops the records whose message starts with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quiet_library_notices() -> None:
    """Silence the notices above (idempotent).

    The srun hint is kept inside a SLURM allocation (``SLURM_JOB_ID`` set), where a
    multi-GPU run started without ``srun`` would hang and the hint is the right advice.
    """
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropMessage) for f in logger.filters):
        logger.addFilter(_DropMessage(LITLOGGER_TIP))
    warnings.filterwarnings("ignore", message=LEAFSPEC_DEPRECATION)
    if "SLURM_JOB_ID" not in os.environ:
        warnings.filterwarnings("ignore", message=SRUN_HINT)


@contextmanager
def resuming_in_own_folder() -> Iterator[None]:
    """Silence :data:`CHECKPOINTS_NOT_EMPTY` while a fit resumes.

    A run resumes only in the folder its checkpoints were written to
    (:func:`ser.resume.check_resume_folder`), so the folder holds them by design. A fresh
    fit keeps the warning: there, files in the folder are another run's.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=CHECKPOINTS_NOT_EMPTY)
        yield
