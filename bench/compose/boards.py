"""The store → board assembly, once for `bench run`, `bench eval`, `bench leaderboard`, the audit
and the published pages; and the files `bench run` writes beside its table."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from bench.assess.assessment import assess
from bench.core.files import write_atomic
from bench.report.board import Board, build_board
from bench.report.curves import worst_case_bands
from bench.report.markdown import board_markdown
from bench.report.plots import security_curve_png
from bench.report.serialize import board_json_text
from bench.store.records import ResultSet


def store_board(store, dataset: str | None, model_ids: Iterable[str] | None = None,
                command: str | None = None) -> Board:
    """The board of `model_ids` (default: every model) over everything the store holds; each
    page lists the commands its records were made by (`command` replaces them when given)."""
    results = ResultSet.from_store(store, dataset)
    assessments = assess(results, set(model_ids) if model_ids is not None else None)
    commands: dict[tuple[str, str], set[str]] = {}
    for r in results.records:
        if r.model_id in assessments and r.command:
            commands.setdefault((r.dataset, r.budget.norm), set()).add(r.command)
    if command:
        for key in commands:
            commands[key] = {command}
    return build_board(assessments, {k: sorted(v) for k, v in commands.items()})


def write_board(board: Board, path: Path, log: Callable[[str], None]) -> None:
    """leaderboard.md (given path), leaderboard.json beside it, and a security-curve PNG per swept norm."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, board_markdown(board).encode())
    write_atomic(path.with_suffix(".json"), board_json_text(board).encode())
    for page in board.pages:
        curves = worst_case_bands(page)
        if curves:
            png = path.parent / f"curves-{page.dataset}-{page.norm}.png"
            write_atomic(png, security_curve_png(f"Security curves · {page.dataset} · {page.norm}", curves, page.norm))
            log(f"security curve written to {png}")
