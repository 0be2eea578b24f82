"""Atomic file writes (a reader sees the old file or the new one, never a partial one) and
strict JSON."""

from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created like open() creates files (0o666 less the umask): mkstemp's 0o600 would stay
    # with the renamed file and hide results and shared caches from other users.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """:func:`write_bytes_atomic` for text (UTF-8)."""
    write_bytes_atomic(path, text.encode())


def strict(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by ``None`` (JSON ``null``).

    Dicts, lists and tuples are walked; other values are returned as they are.

    Example:
        >>> strict({"recall": [0.5, float("nan")], "n": 3})
        {'recall': [0.5, None], 'n': 3}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value


def json_text(value: Any, *, indent: int | None = 2) -> str:
    """Strict JSON of ``value``: undefined numbers (NaN, Inf) become ``null``, never bare
    ``NaN`` tokens that strict parsers (``jq``, JavaScript, ``json.loads(parse_constant=...)``)
    refuse.
    """
    return json.dumps(strict(value), indent=indent, allow_nan=False)


def write_json_atomic(path: str | Path, value: Any) -> None:
    """:func:`write_text_atomic` of :func:`json_text`."""
    write_text_atomic(path, json_text(value))


def require_writable(path: str | Path, *, option: str) -> Path:
    """``path`` as a file the command can write, checked before any work: not a folder,
    in a folder that exists (or can be made) and is writable. Raises
    :class:`~ser.errors.ConfigError` naming ``option`` otherwise.

    Example:
        >>> require_writable("/", option="out")
        Traceback (most recent call last):
        ...
        ser.errors.ConfigError: out=/ is a folder: give a file name, e.g. out=/results.json
    """
    from ser.errors import ConfigError

    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            f"{option}={path} is a folder: give a file name, e.g. {option}={path / 'results.json'}"
        )
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{option}={path}: cannot create its folder {folder} ({err})") from err
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"{option}={path}: {folder} is not writable; give another path")
    return path
