"""The budget axis of a page as pure views of its tables: the security curves (per row and attack,
upper bounds marked), the worst case per defense with its 95% band (the figure), and ε as a page
writes it (an L0 budget as a count of features)."""
from __future__ import annotations

from bench.report.board import Page


def security_curves(page: Page) -> dict[str, dict[float, tuple[float, bool]]]:
    """'row · attack' → {ε: (robust accuracy, an upper bound?)} over the page's budgets (only when
    more than one). A worst case is an upper bound where its row is not ranked at that budget (an
    incomplete or cheaper suite there, masking unresolved); one attack's accuracy always is one."""
    if len(page.tables) < 2:
        return {}
    curves: dict[str, dict[float, tuple[float, bool]]] = {}
    for table in page.tables:
        for row in table.rows:
            curves.setdefault(f"{row.label} · worst case", {})[table.eps] = (row.robust.value, not row.ranked)
            for key, cell in row.attacks.items():
                curves.setdefault(f"{row.label} · {key}", {})[table.eps] = (cell.value, True)
    return curves


def worst_case_bands(page: Page) -> dict[str, dict[float, tuple[float, float, float, bool]]]:
    """Row label → {ε: (worst case, 95% low, 95% high, an upper bound?)}: the security-curve figure,
    one line per defense with its interval as a band (only with more than one budget)."""
    if len(page.tables) < 2:
        return {}
    bands: dict[str, dict[float, tuple[float, float, float, bool]]] = {}
    for table in page.tables:
        for row in table.rows:
            bands.setdefault(row.label, {})[table.eps] = (row.robust.value, row.robust.low, row.robust.high,
                                                           not row.ranked)
    return bands


def budget_text(norm: str, eps: float, dataset: str) -> str:
    """ε as a page shows it: an L0 budget as the count of features it allows where the dataset's
    size is known ("5 of 784 features"), otherwise the number."""
    if norm == "l0":
        from bench.plugins.datasets import DATASETS

        features = getattr(DATASETS.get(dataset), "features", None)
        if features:
            count = round(eps * features)
            if count >= 1 and abs(count / features - eps) < 1e-9:
                return f"{eps:g} ({count} of {features:,} features)"
    return f"{eps:g}"
