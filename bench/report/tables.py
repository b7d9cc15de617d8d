"""Markdown tables, shared by every page."""
from __future__ import annotations

from typing import Iterable, Sequence


def inline(text) -> str:
    """Text that stays on its line: every run of whitespace (newlines, carriage returns, tabs)
    becomes one space, so a name or a note cannot start a table row or a heading of its own."""
    return " ".join(str(text).split())


def md_table(headers: Sequence[str], aligns: str, rows: Iterable[Sequence[str]]) -> list[str]:
    """A markdown table; `aligns` has one letter per column: l(eft) or r(ight). Cells are kept on
    one line and their pipes escaped, whatever a label or an adapter's note holds."""
    esc = lambda s: inline(s).replace("|", "\\|")
    lines = ["| " + " | ".join(esc(h) for h in headers) + " |",
             "|" + "|".join(":--" if a == "l" else "--:" for a in aligns) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return lines
