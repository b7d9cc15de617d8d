"""Records → markdown leaderboard. Pure functions of the records (and their per-example files):
the same records always give the same text.

One table per dataset × threat model (norm, ε) × evaluation size: a row per model, robust
accuracy per attack, and the worst case per example over those attacks, ranked by it.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterable

import pandas as pd

from bench.evaluate import worst_case

PerExampleLoader = Callable[[str], pd.DataFrame]


def _pct(v: float) -> str:
    return "—" if v != v else f"{100 * v:.1f}"  # v != v: NaN


def leaderboard_tables(records: Iterable[dict], load_per_example: PerExampleLoader) -> list[tuple[str, pd.DataFrame]]:
    """Group records into (title, table) pairs, tables ranked by worst-case robust accuracy."""
    groups: dict[tuple, dict[str, dict[str, dict]]] = defaultdict(lambda: defaultdict(dict))
    for rec in records:
        s = rec["spec"]
        key = (s["dataset"]["name"], s["budget"]["norm"], float(s["budget"]["eps"]), int(s["dataset"]["n"]))
        current = groups[key][rec["model_id"]].get(s["attack"]["name"])
        # one record per model × attack in a table: the newest wins (e.g. after a config change)
        if current is None or (rec["provenance"]["started_at"], rec["record_id"]) > (
                current["provenance"]["started_at"], current["record_id"]):
            groups[key][rec["model_id"]][s["attack"]["name"]] = rec

    tables = []
    for (dataset, norm, eps, n), by_model in sorted(groups.items()):
        attacks = sorted({a for per_attack in by_model.values() for a in per_attack})
        minimal = sorted({a for per_attack in by_model.values() for a, r in per_attack.items()
                          if r["spec"]["attack"].get("minimal_norm")})
        rows = []
        for model_id, per_attack in by_model.items():
            any_rec = next(iter(per_attack.values()))
            s = any_rec["spec"]
            row = {"defense": s["defense"]["label"], "arch": s["arch"], "model": model_id,
                   "clean": any_rec["metrics"]["clean_acc"]}
            for a in attacks:
                row[a] = per_attack[a]["metrics"]["robust_acc"] if a in per_attack else float("nan")
            for a in minimal:
                # the evidence a minimal-norm attack adds: does it always succeed, and how far must it go
                m = per_attack[a]["metrics"] if a in per_attack else {}
                pert = m.get("perturbation") or {}
                row[f"{a} success (any size)"] = m.get("unbounded_success_rate", float("nan"))
                row[f"{a} median {norm}"] = pert.get("median", float("nan"))
            frames = [load_per_example(r["record_id"]) for r in per_attack.values()]
            row["worst case"], _ = worst_case(frames)
            row["attacks run"] = f"{len(per_attack)}/{len(attacks)}"
            row["n"] = n
            rows.append(row)
        df = pd.DataFrame(rows).sort_values(["worst case", "clean", "defense"], ascending=[False, False, True])
        title = f"{dataset} · {norm} ε = {eps:g} · n = {n}"
        tables.append((title, df.reset_index(drop=True)))
    return tables


def render_markdown(tables: list[tuple[str, pd.DataFrame]], *, heading: str = "distill-bench leaderboard",
                    command: str | None = None) -> str:
    """Markdown text: accuracies in %, worst case per example over the attacks in the table."""
    lines = [f"# {heading}", ""]
    if command:
        lines += ["Produced by:", "", "```", command, "```", ""]
    lines += ["Accuracies in % on the first n test examples. Each attack column is the robust accuracy "
              "under that attack; **worst case** counts an example as robust only if every attack in the "
              "table left it correctly classified. `attacks run` below the table width means the worst "
              "case covers fewer attacks for that row.", ""]
    if not tables:
        lines += ["_No records yet._", ""]
    for title, df in tables:
        shown = df.copy()
        for col in shown.columns:
            if " median " in col:
                shown[col] = shown[col].map(lambda v: "—" if v != v else f"{v:.3f}")
            elif col not in ("defense", "arch", "model", "attacks run", "n"):
                shown[col] = shown[col].map(_pct)
        lines += [f"## {title}", "", shown.to_markdown(index=False, disable_numparse=True), ""]
    return "\n".join(lines)
