"""One process per run folder: a lock held while a run trains, tests and records.

Two processes writing one run folder (a sweep started twice on one folder, two array tasks
that collide) garble each other's metrics and checkpoints. The lock is an ``flock`` on
``<run>/.lock``: the kernel releases it when its process ends, however it ends, so a killed
run never leaves it stuck. Only the first process of a distributed run takes it (DDP
ranks share their folder).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ser.errors import RunFolderBusyError

log = logging.getLogger(__name__)

#: flock errors of file systems that cannot lock (Lustre mounted noflock, NFS without lockd):
#: the run goes on without the lock, with a warning
UNSUPPORTED = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP)

#: the lock file inside a run folder
LOCK_NAME = ".lock"

#: environment variables that carry a process's rank in a distributed run
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "NODE_RANK")


def distributed_rank(environ: dict[str, str] | None = None) -> int:
    """This process's rank in a distributed run, from its launcher's environment (0 when
    it is not one: any rank variable above 0 makes the process a follower).

    Example:
        >>> distributed_rank({}), distributed_rank({"LOCAL_RANK": "1"})
        (0, 1)
    """
    environ = os.environ if environ is None else environ
    return max((int(environ[v]) for v in RANK_VARIABLES if environ.get(v, "").isdigit()), default=0)


@contextmanager
def run_folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold the run folder's lock while inside; raise :class:`RunFolderBusyError` at once,
    naming the holder's process id, when another process holds it. Followers of a
    distributed run (:func:`distributed_rank` above 0) take no lock.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder, run_folder_lock(folder):
        ...     with run_folder_lock(folder):
        ...         pass
        Traceback (most recent call last):
        ...
        ser.errors.RunFolderBusyError: the run folder ... is in use by another process ...
    """
    if distributed_rank() > 0:
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise RunFolderBusyError(
                f"the run folder {folder} is in use by another process (pid {holder}): wait "
                "for it to end, or give this run another folder (hydra.run.dir=...)"
            ) from None
        except OSError as err:
            if err.errno not in UNSUPPORTED:
                raise
            log.warning("no lock on the run folder %s: its file system has no flock (%s)",
                        folder, err)  # fmt: skip
            yield
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} on {platform.node()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
