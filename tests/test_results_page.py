"""docs/results: every summary there is what its runs' results.json give today; every
summary-shaped row on the page is a row of one of those summaries, and every comparison row
a row of one of the page's ``sweep.py compare`` commands, remade from the kept runs (and
the tables of its ``aggregate --reference`` and ``lengths`` commands likewise); and
every ``mean +- std`` on the page, prose included, is one that those sources give (or a
summary kept without runs: those runs predate keeping them). A number is matched against
all sources together, not against the section it stands in."""

from __future__ import annotations

import functools
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from ser.comparison import compare_sweeps, comparison_markdown
from ser.lengths import length_rows, length_runs, lengths_markdown
from ser.results import aggregate, collect, joined_runs
from ser.tables import summary_markdown

RESULTS = Path(__file__).parents[1] / "docs" / "results"
PAGE = (RESULTS / "README.md").read_text()
#: rows of the model, per-fold, paired and seed-spread tables of a summary
SUMMARY_ROW = re.compile(
    r"^\| [\w-]+ \| \d+/\d+( \(.*?\))? \|"  # model | folds | ...
    r"|^\| \d+ \| [\w,]+ \| [\d.-]+ \|"  # fold | test speakers | UAR ...
    r"|^\| [\w-]+ - [\w-]+ \| \d+ \| -?[\d.]+ \|"  # model - reference | folds | difference
    r"|^\| [\w-]+ \| \d+ over \d+ folds \|"  # model | seed runs | seed and fold spread
    r"|^\| \d+ \| [\d.]+ \(\d+\)"  # fold | UAR (seed), ... per model
)


def summaries() -> list[Path]:
    """The summary.md files kept with their runs: ``<dir>/runs`` (a sweep), or for the
    reference rows ``reference/<corpus>/runs`` joined with ``<corpus>/runs``."""
    return sorted(p for p in RESULTS.glob("**/summary.md") if (p.parent / "runs").is_dir())


@functools.cache
def regenerated(summary: Path) -> str:
    folder = summary.parent
    if folder.parent.name == "reference":
        networks = RESULTS / folder.name / "runs"
        runs = joined_runs([networks, folder / "runs"])
        return summary_markdown(aggregate(runs, newest_protocol=False))
    runs_dir = folder / "runs"
    return summary_markdown(
        aggregate(
            collect(runs_dir),
            failures=collect(runs_dir, "error.json"),
            cross=collect(runs_dir, "cross_eval/*.json"),
        )
    )


def table_rows(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if SUMMARY_ROW.match(line.strip())}


@pytest.mark.parametrize("summary", summaries(), ids=lambda p: str(p.parent.relative_to(RESULTS)))
def test_a_kept_summary_is_what_its_runs_give(summary):
    stored = table_rows(summary.read_text())
    assert stored, f"{summary}: no table rows found"
    assert stored <= table_rows(regenerated(summary))


#: ``sweep.py aggregate`` with another reference row; ``<corpus>`` stands for each corpus
REFERENCE_COMMAND = re.compile(
    r"python sweep\.py aggregate docs/results/(\S+)/runs --reference ([\w-]+)"
)


def against_other_references() -> str:
    """The summaries of the page's ``aggregate --reference`` commands, remade from the runs."""
    summaries = []
    for folder, reference in REFERENCE_COMMAND.findall(PAGE):
        for runs_dir in sorted(RESULTS.glob(f"{folder.replace('<corpus>', '*')}/runs")):
            summary = aggregate(collect(runs_dir), reference=reference)
            summaries.append(summary_markdown(summary))
    return "\n".join(summaries)


def test_every_summary_row_on_the_page_comes_from_a_kept_summary():
    """Or from one of the page's commands that pair the rows with another reference."""
    known = set().union(*(table_rows(regenerated(s)) for s in summaries()))
    known |= table_rows(against_other_references())
    page = table_rows(PAGE)
    assert page, "no summary-shaped rows on the page"
    assert sorted(page - known) == []


MEAN_STD = re.compile(r"\d+\.\d\d \+- \d+\.\d\d")
COMPARE_COMMAND = re.compile(
    r"python sweep\.py compare (docs/results/\S+) (docs/results/\S+) --names (\S+) (\S+)"
    r"(?: --seeds ([\d ]+))?"
)
#: rows of a ``sweep.py compare`` table: model | folds | UAR a | UAR b | b - a | ...
COMPARE_ROW = re.compile(r"^\| [\w-]+ \| \d+ \| [\d.]+ \+- [\d.]+ \| [\d.]+ \+- [\d.]+ \| ")


@functools.cache
def compared() -> str:
    """The tables of every ``sweep.py compare`` command on the page, remade from its runs."""
    root = RESULTS.parents[1]
    return "\n".join(
        comparison_markdown(
            compare_sweeps(root / a, root / b, seeds=[int(s) for s in seeds.split()] or None),
            (x, y),
        )
        for a, b, x, y, seeds in COMPARE_COMMAND.findall(PAGE)
    )


LENGTHS_COMMAND = re.compile(
    r"python sweep\.py lengths ((?:docs/results/\S+ )+)--models ([\w -]+?) --seeds ([\d ]+?)"
    r"(?: --out|$)",
    re.MULTILINE,
)


@functools.cache
def lengths_tables() -> str:
    """The tables of every ``sweep.py lengths`` command on the page, remade from its runs."""
    root = RESULTS.parents[1]
    return "\n".join(
        lengths_markdown(
            length_rows(
                length_runs(
                    [root / folder for folder in folders.split()],
                    models=models.split(),
                    seeds=[int(seed) for seed in seeds.split()],
                )
            )
        )
        for folders, models, seeds in LENGTHS_COMMAND.findall(PAGE)
    )


#: rows of a ``sweep.py lengths`` table: model | steps | folds | val UAR | test UAR | ...
LENGTHS_ROW = re.compile(r"^\| [\w-]+ \| \d+ \| \d+ \| [\d.]+ \+- [\d.]+ \| ")


def evaluated_elsewhere() -> str:
    """``(folder, model, result name): mean +- std`` over folds of the
    ``python -m ser.evaluate`` results kept with runs that no sweep records
    (``cross_eval/<corpus>_norm_<norm>.json``)."""
    scores: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for path in RESULTS.glob("*/runs/*/cross_eval/*_norm_*.json"):
        run = json.loads((path.parents[1] / "results.json").read_text())
        scores[(str(path.parents[3]), run["model"], path.stem)].append(
            json.loads(path.read_text())["uar"]
        )
    return "\n".join(
        f"{key}: {100 * np.mean(v):.2f} +- {100 * np.std(v, ddof=1):.2f}"
        for key, v in scores.items()
    )


def test_every_compare_row_on_the_page_is_what_its_command_gives():
    page = {line.strip() for line in PAGE.splitlines() if COMPARE_ROW.match(line.strip())}
    assert page, "no sweep.py compare rows on the page"
    assert sorted(page - set(compared().splitlines())) == []


def test_every_lengths_row_on_the_page_is_what_its_command_gives():
    page = {line.strip() for line in PAGE.splitlines() if LENGTHS_ROW.match(line.strip())}
    assert page, "no sweep.py lengths rows on the page"
    assert sorted(page - set(lengths_tables().splitlines())) == []


def test_every_mean_and_std_on_the_page_comes_from_kept_runs():
    """Prose included: each ``mean +- std`` is in a summary remade from kept runs, in a
    ``sweep.py compare`` or ``sweep.py lengths`` table, in a kept ``ser.evaluate`` result,
    or in one of the summaries kept without runs (their runs predate keeping them)."""
    sources = [regenerated(s) for s in summaries()]
    sources += [
        summary_markdown(aggregate(collect(runs), cross=collect(runs, "cross_eval/*.json")))
        for runs in RESULTS.glob("*/runs")
        if not (runs.parent / "summary.md").exists()  # those are regenerated above
    ]
    sources += [compared(), lengths_tables(), evaluated_elsewhere()]
    sources += [
        p.read_text() for p in RESULTS.glob("*/summary.md") if not (p.parent / "runs").exists()
    ]
    known = set(MEAN_STD.findall("\n".join(sources)))
    assert sorted(set(MEAN_STD.findall(PAGE)) - known) == []
