"""bench/sync_check.py: CUDA sync warnings counted per line, and its train.py run."""

import importlib.util
import json
import sys
import warnings
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
spec = importlib.util.spec_from_file_location("sync_check", BENCH / "sync_check.py")
sync_check = sys.modules["sync_check"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sync_check)


def _synchronising_op() -> None:
    warnings.warn(sync_check.SYNC_WARNING, UserWarning, stacklevel=1)


def test_sync_warnings_are_counted_by_the_line_that_raised_them():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            _synchronising_op()
        warnings.warn("something else", DeprecationWarning, stacklevel=1)
        _synchronising_op()
    line = _synchronising_op.__code__.co_firstlineno + 1
    assert sync_check.count_syncs(caught) == {f"{__file__}:{line}": 4}


def test_without_cuda_the_row_says_nothing_was_checked(tmp_path, emodb_root, emodb_cache_dir,
                                                       monkeypatch, capsys):  # fmt: skip
    monkeypatch.setenv("SER_EMODB_ROOT", str(emodb_root))
    monkeypatch.setenv("SER_CACHE_DIR", str(emodb_cache_dir))
    out = tmp_path / "syncs.json"
    overrides = ["debug=fast", "model=asrnn", "logger=csv", "print_config=false"]
    assert sync_check.main(["--json", str(out), "--", *overrides]) == 0
    row = json.loads(out.read_text())
    assert row == json.loads(capsys.readouterr().out)
    assert (row["device"], row["checked"], row["steps_checked"], row["syncs"]) == (
        "cpu", False, 0, {}
    )  # fmt: skip
    assert row["command"] == "python train.py " + " ".join(overrides)
