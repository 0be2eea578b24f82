"""Every relative link in the README and docs/ reaches a file, and every ``#anchor`` a
heading of its page (GitHub's slugs), so that a renamed section or a moved file fails here
instead of leaving a dead link."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("**/*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE_BLOCK = re.compile(r"```.*?```", flags=re.DOTALL)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation other than ``-`` and ``_``
    dropped, spaces as hyphens.

    Example:
        >>> slug("The search's recipe on all folds (`experiment=emodb_best`)")
        'the-searchs-recipe-on-all-folds-experimentemodb_best'
    """
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings; a repeated heading gets ``-1``, ``-2``... as on
    GitHub."""
    seen: Counter[str] = Counter()
    found = set()
    for heading in re.findall(r"^#+ (.+)$", CODE_BLOCK.sub("", page.read_text()), re.M):
        base = slug(heading)
        found.add(f"{base}-{seen[base]}" if seen[base] else base)
        seen[base] += 1
    return found


def links(page: Path) -> list[str]:
    """The page's relative links (outside code blocks)."""
    return [
        target
        for target in LINK.findall(CODE_BLOCK.sub("", page.read_text()))
        if not re.match(r"[a-z]+:", target)
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_reaches_its_file_and_heading(page):
    dead = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            dead.append(f"{target} (no such file)")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            dead.append(f"{target} (no such heading)")
    assert dead == []


def test_a_repeated_heading_gets_a_numbered_anchor(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Emo-DB\n\n```\n# not a heading\n```\n\n## Emo-DB\n\n### What's next?\n")
    assert anchors(page) == {"emo-db", "emo-db-1", "whats-next"}
