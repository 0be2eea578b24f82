"""Download and unpack a corpus archive atomically, with a progress bar.

The archive is fetched to a temporary file beside the destination, checked (zip CRCs,
optional SHA-256, a caller-supplied content check), unpacked into a temporary folder and
only then renamed to the destination: an interrupted download never leaves a partial corpus.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from ser.errors import DownloadError


def download_and_unpack(
    *,
    url: str,
    dest: Path,
    sha256: str | None = None,
    check: Callable[[Path], None] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Fetch the zip at ``url`` and unpack it to ``dest`` (which must not exist yet).

    Args:
        url: ``http(s)://`` or ``file://`` address of a zip archive.
        dest: folder to create with the archive's contents.
        sha256: expected hex digest of the archive, checked when given.
        check: called with the unpacked temporary folder; raises to reject the contents.
        timeout: seconds to wait for the server.

    Returns:
        ``dest``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-") as tmp:
        archive = Path(tmp) / "archive.zip"
        digest = _fetch(url, archive, timeout=timeout)
        if sha256 is not None and digest != sha256.lower():
            raise DownloadError(f"{url}: SHA-256 {digest} does not match the expected {sha256}")
        unpacked = Path(tmp) / "unpacked"
        try:
            with zipfile.ZipFile(archive) as zf:
                broken = zf.testzip()
                if broken is not None:
                    raise DownloadError(f"{url}: archive member {broken} is corrupt")
                zf.extractall(unpacked)
        except zipfile.BadZipFile as err:
            raise DownloadError(f"{url}: not a zip archive ({err})") from err
        if check is not None:
            check(unpacked)
        try:
            unpacked.rename(dest)
        except OSError:
            if not dest.exists():
                raise
            # Another process finished the same download first: keep its copy.
            shutil.rmtree(unpacked, ignore_errors=True)
    return dest


def _fetch(url: str, target: Path, *, timeout: float) -> str:
    """Stream ``url`` into ``target`` with a progress bar; return its SHA-256."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, target.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {url}") as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise DownloadError(f"cannot download {url}: {err}") from err
    return digest.hexdigest()
