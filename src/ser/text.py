"""Plain text for terminals and files: aligned tables, CSV, durations."""

from __future__ import annotations

import csv
import io
from typing import Any


def align_table(rows: list[list[str]]) -> str:
    """Right-aligned columns separated by two spaces; the first row is the header.

    Example:
        >>> print(align_table([["speaker", "n"], ["03", "49"]]))
        speaker   n
             03  49
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    )


def csv_text(rows: list[dict[str, Any]], header: list[str] | None = None) -> str:
    """``rows`` as CSV with a header line (the keys of the first row, else ``header``).

    Example:
        >>> print(csv_text([{"fold": 0, "uar": 0.5}]), end="")
        fold,uar
        0,0.5
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else header or [])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def duration(seconds: float) -> str:
    """A short human duration.

    Example:
        >>> duration(75), duration(3 * 3600 + 120)
        ('1m15s', '3h02m')
    """
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
