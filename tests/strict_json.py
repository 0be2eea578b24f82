"""Reading the project's JSON files strictly: no bare ``NaN`` or ``Infinity`` tokens."""

import json
from pathlib import Path
from typing import Any


def reject_constant(constant: str) -> None:
    """``json.loads`` hook: strict JSON has no ``NaN`` or ``Infinity``."""
    raise ValueError(f"not JSON: bare {constant}")


def read_strict_json(path: Path) -> Any:
    """The JSON in ``path``; fails on a bare ``NaN``/``Infinity`` token."""
    return json.loads(Path(path).read_text(), parse_constant=reject_constant)
