"""``python -m ser.inspect``: corpus counts and folds (ser/inspect.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from ser.data.corpora import IEMOCAP
from ser.inspect import fold_table, speaker_table

#: shared/data/emodb/README.md: emotion letters of the 4-class subset, speakers in order, and
#: the documented fold pairs (fold k tests speaker k and validates on its partner)
FOUR = {"W": "ang", "T": "sad", "F": "hap", "N": "neu"}
SPEAKERS = ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"]
PARTNER = {"03": "08", "10": "09", "11": "13", "12": "14", "15": "16"}
PARTNER |= {b: a for a, b in PARTNER.items()}


def emodb_counts(emodb_root) -> dict[str, dict[str, int]]:
    """``{speaker: {class: n}}`` straight from the Emo-DB file names."""
    counts = Counter(
        (p.stem[:2], FOUR[p.stem[5]])
        for p in (emodb_root / "wav").glob("*.wav")
        if p.stem[5] in FOUR
    )
    return {s: {c: counts[s, c] for c in FOUR.values()} for s in SPEAKERS}


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
    expected = emodb_counts(emodb_root)
    # a speaker table with a totals row and column, then the fold table
    lines = out.splitlines()
    header = next(line for line in lines if line.split()[:1] == ["speaker"])
    assert header.split() == ["speaker", "ang", "sad", "hap", "neu", "total"]
    total = next(line for line in lines if line.split()[:1] == ["total"])
    assert total.split() == ["total", "127", "62", "71", "79", "339"]  # README counts
    for speaker, counts in expected.items():
        row = next(line.split() for line in lines if line.split()[:1] == [speaker])
        assert row[1:] == [str(n) for n in counts.values()] + [str(sum(counts.values()))]
    fold_rows = [line.split() for line in lines if line.split()[:1] and line.split()[0].isdigit()]
    fold_rows = [r for r in fold_rows if len(r) == 5 and r[-1] == "spk"]
    assert fold_rows == [[str(k), s, PARTNER[s], "8", "spk"] for k, s in enumerate(SPEAKERS)]

    report = json.loads((cwd / "out.json").read_text())
    assert report["counts"] == expected
    assert [(f["fold"], f["test"], f["val"]) for f in report["folds"]] == [
        (k, [s], [PARTNER[s]]) for k, s in enumerate(SPEAKERS)
    ]
    for fold in report["folds"]:
        assert sorted(fold["train"]) == sorted(set(SPEAKERS) - {*fold["test"], *fold["val"]})
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
    # the fixture's ground truth: improvised utterances with audio, of the 4 classes
    classes = ["ang", "sad", "hap", "neu"]
    truth = Counter(
        (u.speaker, u.label)
        for u in iemocap_tree.truth
        if u.improvised and u.has_wav and u.label in classes
    )
    speakers = [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]
    table = speaker_table(corpus).splitlines()
    assert table[0].split() == ["speaker", *classes, "total"]
    assert [row.split()[0] for row in table[1:]] == [*speakers, "total"]
    for row in table[1:-1]:
        cells = row.split()
        expected = [truth[cells[0], c] for c in classes]
        assert list(map(int, cells[1:])) == [*expected, sum(expected)]
    assert int(table[-1].split()[-1]) == sum(truth.values())
    folds = fold_table(corpus).splitlines()[1:]
    assert [row.split()[1] for row in folds] == [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]
