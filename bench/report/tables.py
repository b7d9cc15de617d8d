"""Markdown tables, shared by every page."""
from __future__ import annotations

import os
import shlex
from pathlib import PurePath
from typing import Iterable, Sequence


def inline(text) -> str:
    """Text that stays on its line: every run of whitespace (newlines, carriage returns, tabs)
    becomes one space, so a name or a note cannot start a table row or a heading of its own."""
    return " ".join(str(text).split())


def portable(command: str) -> str:
    """A command as a page shows it: every absolute path in it becomes `DIR/` + its last part
    (`--out DIR/store23`), so that no published page holds a folder of the machine that made it;
    relative paths are kept as typed. The record keeps the command exactly as it ran."""
    try:
        tokens = shlex.split(command)
    except ValueError:
        return inline(command)

    def short(value: str) -> str:
        return f"DIR/{PurePath(value).name}" if os.path.isabs(value) else value

    out = []
    for token in tokens:
        if token.startswith("--") and "=" in token:
            option, value = token.split("=", 1)
            out.append(f"{option}={short(value)}")
        else:
            out.append(short(token))
    if out == tokens:  # nothing to shorten: exactly as recorded
        return inline(command)
    return inline(" ".join(shlex.quote(t) for t in out))


def md_table(headers: Sequence[str], aligns: str, rows: Iterable[Sequence[str]]) -> list[str]:
    """A markdown table; `aligns` has one letter per column: l(eft) or r(ight). Cells are kept on
    one line and their pipes escaped, whatever a label or an adapter's note holds."""
    esc = lambda s: inline(s).replace("|", "\\|")
    lines = ["| " + " | ".join(esc(h) for h in headers) + " |",
             "|" + "|".join(":--" if a == "l" else "--:" for a in aligns) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return lines
