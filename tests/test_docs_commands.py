"""Every command the README and docs/ show composes with today's config tree.

The commands are read from the pages (code blocks and inline code, ``\\``-continued lines
joined): ``python train.py``, ``python sweep.py``, ``make train|sweep ARGS="..."`` and
``python -m ser.predict|evaluate|inspect``. Each is composed in-process with the config of
its entry point (a sweep list composes with its first value). An option, group or value
renamed in ``conf/`` without the docs fails here, naming the page and the command.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra_compose import compose_tool

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "docs/results/README.md"]

#: entry point -> the config it composes
CONFIGS = {
    "train.py": "config",
    "sweep.py": "sweep",
    "ser.predict": "predict",
    "ser.evaluate": "evaluate",
    "ser.inspect": "inspect",
}
#: sweep.py's own commands (argparse, not Hydra)
SWEEP_COMMANDS = ("aggregate", "compare", "best", "lengths")
COMMAND = re.compile(
    r"(?:python3? (?:\S+/)?(?:train|sweep)\.py|python -m ser\.(?:predict|evaluate|inspect)"
    r"|make (?:train|sweep) ARGS=)"
)


def page_commands(page: Path) -> list[str]:
    """The commands on ``page``: from code blocks (continuation lines joined) and from
    inline code spans."""
    text = page.read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    candidates = [line for line in text.splitlines() if COMMAND.search(line)]
    commands = []
    for line in candidates:
        spans = re.findall(r"`([^`]+)`", line) if "`" in line else [line]
        commands += [span for span in spans if COMMAND.search(span)]
    return commands


def entry_and_overrides(command: str) -> tuple[str, list[str]] | None:
    """``(entry point, overrides)`` of a command; ``None`` for sweep.py's own commands and
    for a ``--help``."""
    command = command[COMMAND.search(command).start() :]
    if command.count('"') % 2:  # the end of a quoted command: sbatch --wrap "srun python ..."
        command = command.rsplit('"', 1)[0]
    if command.startswith("make "):
        script = "train.py" if command.startswith("make train") else "sweep.py"
        (args,) = re.findall(r'ARGS="([^"]*)"', command) or [""]
        words = shlex.split(args)
    else:
        words = shlex.split(command, comments=True)
        script = words[1] if words[1] != "-m" else words[2]
        script = Path(script).name
        words = words[2:] if words[1] != "-m" else words[3:]
    if script == "sweep.py" and words and words[0] in SWEEP_COMMANDS:
        return None
    if any(w in ("--help", "-h", "--hydra-help") for w in words):
        return None
    overrides = [w for w in words if not w.startswith("-") and "=" in w]
    # placeholders such as <run> or FILE.csv are values, whatever they stand for
    overrides = [re.sub(r"<[^>]*>", "X", o) for o in overrides]
    return script, first_of_each_sweep(overrides)


def first_of_each_sweep(overrides: list[str]) -> list[str]:
    """A multirun's overrides with each sweep (``model=a,b``, ``range(3)``) at its first
    value: one run that the sweep would start."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    result = []
    for text, override in zip(overrides, parsed, strict=True):
        if override.is_sweep_override():
            first = next(iter(override.sweep_iterator()))
            text = f"{override.get_key_element()}={first}"
        result.append(text)
    return result


CASES = [
    (page, command)
    for page in PAGES
    for command in page_commands(page)
    if entry_and_overrides(command) is not None
]


def test_the_pages_show_commands_of_every_entry_point():
    scripts = {entry_and_overrides(command)[0] for _, command in CASES}
    assert scripts == set(CONFIGS)


@pytest.mark.parametrize(
    ("page", "command"),
    CASES,
    ids=[f"{p.relative_to(REPO)}:{c[:60]}" for p, c in CASES],
)
def test_a_documented_command_composes(page, command):
    script, overrides = entry_and_overrides(command)
    compose_tool(CONFIGS[script], overrides, return_hydra_config=True)
