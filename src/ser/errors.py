"""User errors: the user asked for something that cannot work.

Every such error is a :class:`SERError`. Entry points print it as one ``error:`` line and
exit with code 2 (:func:`exit_on_user_error`); any other exception is a bug and
keeps its traceback. The subclasses also derive from the builtin exception that callers
catch (``ValueError``, or ``RuntimeError`` for a failed download).

These classes are also importable as ``ser.data.corpora.CorpusError``,
``ser.data.audio.AudioError``, ``ser.data.download.DownloadError`` and
``ser.predict.CheckpointError``, the import paths callers may use.
"""

import functools
import shutil
import sys
from collections.abc import Callable
from typing import Any

from omegaconf.errors import MissingMandatoryValue


class SERError(Exception):
    """The user asked for something that cannot work: one ``error:`` line, exit code 2.

    The message says what is wrong and, where it comes from the config, names the option.
    """


class ConfigError(SERError, ValueError):
    """A configuration choice that cannot work (the message names the option)."""


class CorpusError(SERError, ValueError):
    """A corpus root, manifest or option that cannot be used (the message says what to do)."""


class AudioError(SERError, ValueError):
    """An audio file that cannot be used: unreadable, empty or too short (names the file).

    ``permanent`` is False for failures that may pass (the file system refused the read).
    """

    def __init__(self, message: str, *, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


class DownloadError(SERError, RuntimeError):
    """The archive could not be fetched, verified or unpacked."""


class OutOfMemoryError(SERError, RuntimeError):
    """The run does not fit in the GPU's memory (the message names the settings to lower)."""


class CheckpointError(ConfigError):
    """A checkpoint that is missing or was not written by ser's ``train.py``."""


def require_batch_size(option: str, value: object) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a positive number of segments.

    Example:
        >>> require_batch_size("datamodule.batch_size", 0)
        Traceback (most recent call last):
        ...
        ser.errors.ConfigError: datamodule.batch_size=0: give a positive number of segments
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{option}={value!r}: give a positive number of segments")


def require_sbatch() -> None:
    """A :class:`ConfigError` when SLURM's ``sbatch`` is not on the PATH."""
    if shutil.which("sbatch") is None:
        raise ConfigError(
            "hydra/launcher=slurm: sbatch is not on the PATH, so there is no SLURM cluster to "
            "submit to. Run the sweep on a SLURM login node, or on one machine with "
            "hydra/launcher=ser_local"
        )


class RunFolderBusyError(SERError, RuntimeError):
    """Another process is running in this run folder (:mod:`ser.runlock`)."""


def missing_option(key: str) -> str:
    """The message for a mandatory option (``???``) left unset."""
    return f"missing required option {key}: set it on the command line ({key}=...)"


def user_error(err: BaseException) -> BaseException | None:
    """The first user error in ``err``'s cause/context chain, or ``None`` for a bug.

    A user error is a :class:`~ser.errors.SERError` or an unset mandatory option
    (OmegaConf's ``MissingMandatoryValue``). Hydra wraps constructor errors in an
    ``InstantiationException`` and OmegaConf wraps resolver errors, hence the walk along
    the chain. Nothing else counts, not even a ``ValueError`` raised while instantiating
    the config: that may be a bug, and it keeps its traceback.
    """
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, SERError | MissingMandatoryValue):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def exit_on_user_error(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn``; a user error prints ``error: <message>`` on stderr and exits with code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            cause = user_error(err)
            if cause is None:
                raise
            message = str(cause)
            if isinstance(cause, MissingMandatoryValue):
                message = missing_option(getattr(cause, "full_key", "") or "a value")
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)

    return wrapper
