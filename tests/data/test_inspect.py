"""``python -m ser.inspect``: corpus counts and folds (ser/inspect.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ser.data.corpora import IEMOCAP, EmoDB
from ser.inspect import fold_table, speaker_table


@pytest.fixture(scope="module")
def runs(emodb_root, tmp_path_factory):
    """Both command lines, started together (each pays the import time once)."""
    cwd = tmp_path_factory.mktemp("inspect")
    env = {k: v for k, v in os.environ.items() if k != "SER_EMODB_ROOT"}
    commands = {
        "emodb": ["data=emodb", f"data.root={emodb_root}", f"+json={cwd / 'out.json'}"],
        "iemocap": ["data=iemocap"],
    }
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "ser.inspect", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in commands.items()
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = (proc.returncode, out, err)
    return cwd, results


def test_emodb_tables_and_json(runs, emodb_root):
    cwd, results = runs
    code, out, err = results["emodb"]
    assert code == 0, err
    corpus = EmoDB(root=emodb_root, download=False)
    # a speaker table with a totals row and column, then the fold table
    assert speaker_table(corpus) in out
    assert fold_table(corpus) in out
    lines = out.splitlines()
    header = next(line for line in lines if line.split()[:1] == ["speaker"])
    assert header.split() == ["speaker", "ang", "sad", "hap", "neu", "total"]
    total = next(line for line in lines if line.split()[:1] == ["total"])
    assert total.split() == ["total", "127", "62", "71", "79", "339"]  # README counts
    for speaker in corpus.speakers:
        row = next(line.split() for line in lines if line.split()[:1] == [speaker])
        assert int(row[-1]) == sum(map(int, row[1:-1]))
    fold_rows = [line.split() for line in lines if line.split()[:1] and line.split()[0].isdigit()]
    fold_rows = [r for r in fold_rows if len(r) == 5 and r[-1] == "spk"]
    assert [(r[0], r[1], r[2]) for r in fold_rows] == [
        (str(f.index), f.test[0], f.val[0]) for f in corpus.folds()
    ]

    report = json.loads((cwd / "out.json").read_text())
    assert report["counts"] == corpus.counts()
    assert report["folds"] == [f.as_dict() for f in corpus.folds()]
    assert sum(sum(c.values()) for c in report["counts"].values()) == 339
    # nothing else written where it ran
    assert sorted(p.name for p in cwd.iterdir()) == ["out.json"]


def test_iemocap_without_root_is_a_one_line_error(runs):
    _, results = runs
    code, out, err = results["iemocap"]
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:")
    assert "data.root" in lines[0]
    assert "Traceback" not in err + out


def test_tables_of_the_iemocap_fixture(iemocap_tree):
    corpus = IEMOCAP(root=iemocap_tree.root)
    table = speaker_table(corpus).splitlines()
    assert table[0].split() == ["speaker", "ang", "sad", "hap", "neu", "total"]
    assert [row.split()[0] for row in table[1:]] == [*corpus.speakers, "total"]
    counts = corpus.counts()
    for row in table[1:-1]:
        cells = row.split()
        assert list(map(int, cells[1:-1])) == list(counts[cells[0]].values())
        assert int(cells[-1]) == sum(counts[cells[0]].values())
    assert int(table[-1].split()[-1]) == len(corpus.utterances)
    folds = fold_table(corpus).splitlines()[1:]
    assert [row.split()[1] for row in folds] == [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]
