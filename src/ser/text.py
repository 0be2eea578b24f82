"""Plain-text tables for terminal output."""

from __future__ import annotations


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
