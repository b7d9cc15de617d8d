"""Markdown tables, shared by every page."""
from __future__ import annotations

from typing import Iterable, Sequence


def md_table(headers: Sequence[str], aligns: str, rows: Iterable[Sequence[str]]) -> list[str]:
    """A markdown table; `aligns` has one letter per column: l(eft) or r(ight)."""
    esc = lambda s: str(s).replace("|", "\\|")
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join(":--" if a == "l" else "--:" for a in aligns) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return lines
