"""Reading the harness's trace of an attack's queries (bench/execute/observer.py) from a record's
per-example frame: which examples it traced, and on which its objective was still improving at
the end (Pintor et al. 2022, incomplete optimisation; bench/assess/indicators.py)."""
from __future__ import annotations

import pandas as pd

MOVING = 0.05  # Pintor et al. 2022: the rescaled best-so-far loss moved by more than this over the last steps


def still_moving(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series] | None:
    """(traced, moving) per example of a record's frame: the best-so-far objective, rescaled to
    [0, 1] by its range, improved by more than MOVING over the last min(10, T) queries; None for a
    record made without traces."""
    if "trace_queries" not in frame.columns:
        return None
    traced = frame["trace_queries"].fillna(0).astype(float) > 1
    span = frame["trace_best"] - frame["trace_low"]
    moved = (frame["trace_best"] - frame["trace_before_last"]) / span.where(span > 0)
    return traced, traced & (moved.fillna(0) > MOVING)


def either(a: pd.Series | None, b: pd.Series) -> pd.Series:
    """Per example of either index: true in `a` or in `b` (absent counts as false)."""
    if a is None:
        return b
    idx = a.index.union(b.index)
    return a.reindex(idx, fill_value=False) | b.reindex(idx, fill_value=False)
