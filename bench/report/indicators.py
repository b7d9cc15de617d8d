"""The attack-failure indicators of a model's attacks (bench/assess/indicators.py) as a model-page
section and as JSON: pure views of the assessment."""
from __future__ import annotations

from bench.assess.indicators import indicator_rows
from bench.report.tables import md_table

DOCS = "docs/masking.md#attack-failure-indicators"
HEADER = ["attack", "examples traced", "silent successes (counted)", "still improving at the end",
          "never broken at any size", "fooled the surrogate"]


def _n(value) -> str:
    return "—" if value is None else str(value)


def _traced(t) -> bool:
    return any(a.traced is not None or a.surrogate_fooled is not None for a in t.attacks.values())


def indicators_markdown(m) -> list[str]:
    threats = [(key, t) for key, t in sorted(m.threats.items()) if _traced(t)]
    if not threats:
        return []
    lines = ["## Attack-failure indicators (Pintor et al. 2022)", "",
             "From the harness's own view of every query each attack made (not from the adapter): silent successes "
             "are counted in the record; examples still improving at the end (W3) and examples no minimal-norm "
             f"attack broke at any size (W4) prescribe longer attacks; a transfer attack's points that fooled its "
             f"surrogate and not the model (W5) prescribe an attack that queries the model ({DOCS}).", ""]
    for (norm, eps), t in threats:
        rows = [[r["attack"], "not recorded" if r["traced"] is None else str(r["traced"]), _n(r["silent_success"]),
                 "—" if r["still_improving"] is None else f"{r['still_improving']} of {r['robust']} robust",
                 _n(r["never_broken"]), _n(r["surrogate_fooled"])] for r in indicator_rows(t)]
        lines += [f"**{norm} ε = {eps:g}**", ""] + md_table(HEADER, "lrrrrr", rows) + [""]
    return lines


def indicators_json(m) -> dict:
    return {f"{norm} {eps:g}": indicator_rows(t) for (norm, eps), t in sorted(m.threats.items()) if _traced(t)}
