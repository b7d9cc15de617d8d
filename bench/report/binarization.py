"""The binarization tests of a model's attacks (bench/execute/binarization.py) as a model-page
section and as JSON: pure views of the assessment."""
from __future__ import annotations

from bench.report.tables import md_table

DOCS = "docs/masking.md#the-binarization-test-does-the-attack-find-what-exists"


def _verdict(passed: bool | None) -> str:
    return "pass" if passed else ("**fail**" if passed is False else "no counted example")


def binarization_markdown(m) -> list[str]:
    if not m.binarization:
        return []
    rows = [[b.attack, f"{b.norm} {b.eps:g}", str(b.counted), "—" if b.success_rate is None else f"{b.success_rate:.0%}",
             f"≥ {b.pass_rate:.0%}", _verdict(b.passed), f"`{b.record_id}`"] for b in m.binarization]
    lines = ["## Binarization test (does the attack find what exists?)", "",
             "Per example, the classifier head is replaced by a binary readout on the model's own features with an "
             "adversarial point inside the budget by construction (Zimmermann et al. 2022). An attack that fails "
             f"does not count toward the row's minimum suite ({DOCS}).", ""]
    return lines + md_table(["attack", "budget", "counted examples", "found", "needed", "result", "record"],
                            "llrrrll", rows) + [""]


def binarization_json(m) -> list[dict]:
    return [b.to_json() for b in m.binarization]
