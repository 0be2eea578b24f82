"""Where the Hydra configs are, and how entry points turn user mistakes into one clear line."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf.errors import MissingMandatoryValue

from ser.data.audio import AudioError
from ser.data.corpora import CorpusError
from ser.data.download import DownloadError

#: the repository's ``conf/`` (the package is installed in editable mode by ``make install``)
CONFIG_DIR = Path(os.environ.get("SER_CONFIG_DIR", Path(__file__).resolve().parents[2] / "conf"))


class ConfigError(ValueError):
    """A configuration choice that cannot work (the message names the option)."""


USER_ERRORS = (ConfigError, CorpusError, AudioError, DownloadError, MissingMandatoryValue)


def user_error(err: BaseException) -> BaseException | None:
    """The user-facing error in ``err``'s cause chain (Hydra wraps constructor errors)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, USER_ERRORS):
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
                key = getattr(cause, "full_key", "") or "a value"
                message = f"missing required option {key}: set it on the command line ({key}=...)"
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)

    return wrapper
