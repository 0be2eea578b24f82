"""docs/results: every summary there is what its runs' results.json give today, and every
summary-shaped table row on the page is one of those summaries' rows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ser.results import aggregate, collect, joined_runs
from ser.tables import summary_markdown

RESULTS = Path(__file__).parents[1] / "docs" / "results"
#: rows of the model, per-fold, paired and seed-spread tables of a summary
SUMMARY_ROW = re.compile(
    r"^\| [\w-]+ \| \d+/\d+( \(.*?\))? \|"  # model | folds | ...
    r"|^\| \d+ \| [\w,]+ \| [\d.-]+ \|"  # fold | test speakers | UAR ...
    r"|^\| [\w-]+ - [\w-]+ \| \d+ \| -?[\d.]+ \|"  # model - reference | folds | difference
    r"|^\| [\w-]+ \| \d+ over \d+ folds \|"  # model | seed runs | seed and fold spread
)


def summaries() -> list[Path]:
    """The summary.md files kept with their runs: ``<dir>/runs`` (a sweep), or for the
    reference rows ``reference/<corpus>/runs`` joined with ``<corpus>/runs``."""
    return sorted(p for p in RESULTS.glob("**/summary.md") if (p.parent / "runs").is_dir())


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


def test_every_summary_row_on_the_page_comes_from_a_kept_summary():
    known = set().union(*(table_rows(regenerated(s)) for s in summaries()))
    page = table_rows((RESULTS / "README.md").read_text())
    assert page, "no summary-shaped rows on the page"
    assert sorted(page - known) == []
