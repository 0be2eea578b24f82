"""Fetching and unpacking Emo-DB (ser/data/download.py, EmoDB.prepare)."""

from __future__ import annotations

import functools
import hashlib
import socket
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ser.data.corpora import CorpusError, EmoDB
from ser.data.download import DownloadError, download_and_unpack

N_FILES = 535  # shared/data/emodb/README.md
N_FOUR_CLASS = 339


@pytest.fixture(scope="module")
def archives(emodb_root, tmp_path_factory):
    """Zips built from the shared copy: the corpus, a truncated and a bit-flipped copy, and
    archives of the wrong content."""
    folder = tmp_path_factory.mktemp("archives")
    wavs = sorted((emodb_root / "wav").glob("*.wav"))
    good = folder / "emodb.zip"
    with zipfile.ZipFile(good, "w", zipfile.ZIP_STORED) as zf:
        for wav in wavs:
            zf.write(wav, f"wav/{wav.name}")
        zf.writestr("erkennung.txt", "Emo-DB\n")
    data = good.read_bytes()
    (folder / "truncated.zip").write_bytes(data[: len(data) // 2])
    # flip bytes inside the first member's data: the CRC check must catch it
    with zipfile.ZipFile(good) as zf:
        info = zf.infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 1000
    flipped = bytearray(data)
    flipped[start : start + 8] = bytes(b ^ 0xFF for b in flipped[start : start + 8])
    (folder / "crc.zip").write_bytes(bytes(flipped))
    with zipfile.ZipFile(folder / "few.zip", "w") as zf:  # wav/ with too few files
        for wav in wavs[:10]:
            zf.write(wav, f"wav/{wav.name}")
    with zipfile.ZipFile(folder / "nested.zip", "w", zipfile.ZIP_STORED) as zf:  # no top wav/
        for wav in wavs:
            zf.write(wav, f"emodb/wav/{wav.name}")
    (folder / "text.zip").write_text("<html>404 not found</html>")
    return folder


@pytest.fixture(scope="module")
def server(archives):
    """An HTTP server on loopback serving the archive folder."""
    handler = functools.partial(_QuietHandler, directory=str(archives))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_clean(parent: Path, dest: Path):
    """No destination and no temporary leftovers beside it."""
    assert not dest.exists()
    assert not [p.name for p in parent.iterdir() if p.name.startswith(f".{dest.name}")]


def check_corpus(root: Path):
    assert len(list((root / "wav").glob("*.wav"))) == N_FILES
    assert len(EmoDB(root=root, download=False).utterances) == N_FOUR_CLASS


def test_prepare_over_http(server, tmp_path):
    root = tmp_path / "new" / "emodb"
    corpus = EmoDB(root=root, url=f"{server}/emodb.zip")
    corpus.prepare()
    check_corpus(root)
    assert len(corpus.utterances) == N_FOUR_CLASS
    assert sorted(p.name for p in root.parent.iterdir()) == ["emodb"]  # no leftovers
    corpus.prepare()  # already there: nothing to do


def test_prepare_from_a_file_url(archives, tmp_path):
    root = tmp_path / "emodb"
    EmoDB(root=root, url=(archives / "emodb.zip").as_uri()).prepare()
    check_corpus(root)


def test_sha256_is_checked(archives, tmp_path):
    digest = hashlib.sha256((archives / "emodb.zip").read_bytes()).hexdigest()
    root = tmp_path / "ok"
    EmoDB(root=root, url=(archives / "emodb.zip").as_uri(), sha256=digest.upper()).prepare()
    check_corpus(root)
    wrong = tmp_path / "wrong"
    with pytest.raises(CorpusError, match="SHA-256"):
        EmoDB(root=wrong, url=(archives / "emodb.zip").as_uri(), sha256="0" * 64).prepare()
    assert_clean(tmp_path, wrong)


@pytest.mark.parametrize("name", ["truncated.zip", "crc.zip", "text.zip"])
def test_corrupt_archive_leaves_no_folder(server, tmp_path, name):
    root = tmp_path / "emodb"
    with pytest.raises(CorpusError) as err:
        EmoDB(root=root, url=f"{server}/{name}").prepare()
    assert name in str(err.value)
    assert isinstance(err.value.__cause__, DownloadError)
    assert_clean(tmp_path, root)


@pytest.mark.parametrize("name", ["few.zip", "nested.zip"])
def test_wrong_content_leaves_no_folder(archives, tmp_path, name):
    root = tmp_path / "emodb"
    with pytest.raises(CorpusError, match=f"expected {N_FILES}"):
        EmoDB(root=root, url=(archives / name).as_uri()).prepare()
    assert_clean(tmp_path, root)


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/emodb.zip", "{server}/missing.zip"])
def test_unreachable_url_says_how_to_set_data_root(server, tmp_path, url):
    root = tmp_path / "emodb"
    url = url.format(port=closed_port(), server=server)
    with pytest.raises(CorpusError) as err:
        EmoDB(root=root, url=url).prepare()
    message = str(err.value)
    assert "data.root=" in message
    assert str(root) in message and url in message
    assert_clean(tmp_path, root)


def test_no_download_when_switched_off(tmp_path):
    root = tmp_path / "emodb"
    EmoDB(root=root, url="http://127.0.0.1:1/never", download=False).prepare()
    assert not root.exists()
    with pytest.raises(CorpusError, match=r"data\.download=true"):
        _ = EmoDB(root=root, download=False).utterances


def test_existing_folder_without_wav_is_not_overwritten(archives, tmp_path):
    root = tmp_path / "emodb"
    root.mkdir()
    (root / "mine.txt").write_text("keep me")
    with pytest.raises(CorpusError, match="no wav/ folder"):
        EmoDB(root=root, url=(archives / "emodb.zip").as_uri()).prepare()
    assert [p.name for p in root.iterdir()] == ["mine.txt"]


def test_download_and_unpack_refuses_through_the_check(archives, tmp_path):
    def reject(unpacked: Path):
        assert (unpacked / "wav").is_dir()
        raise DownloadError("rejected")

    with pytest.raises(DownloadError, match="rejected"):
        download_and_unpack(url=(archives / "few.zip").as_uri(), dest=tmp_path / "d", check=reject)
    assert_clean(tmp_path, tmp_path / "d")
    out = download_and_unpack(url=(archives / "few.zip").as_uri(), dest=tmp_path / "d")
    assert len(list((out / "wav").glob("*.wav"))) == 10
