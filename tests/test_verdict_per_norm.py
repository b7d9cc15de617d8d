"""A verdict per threat model (issue 20, item 3), on fixed records: masking evidence at L0 marks
the L0 rows only — the L∞ row keeps its rank and names the L0 finding without taking it — while a
finding about the model itself (its probes) marks every norm."""
from __future__ import annotations

from bench.assess.assessment import assess
from bench.report.board import build_board
from recordkit import make_record, model_spec, probes, result_set

N = 100
AT = model_spec("c000000000000003", "adversarial-training", {"epochs": 5})


def _n(k):
    return [True] * k + [False] * (N - k)


def _linf(spec):
    return [make_record(spec, "pgd", "linf", 0.3, _n(50)), make_record(spec, "pgd-margin", "linf", 0.3, _n(49)),
            make_record(spec, "square", "linf", 0.3, _n(49)), make_record(spec, "autoattack", "linf", 0.3, _n(48))]


def _l0(spec):
    # softmax JSMA far above JSMA on logits: R6 at L0 (the cross-entropy family blinded)
    return [make_record(spec, "jsma", "l0", 0.05, _n(70)),
            make_record(spec, "jsma", "l0", 0.05, _n(20), attack_config={"use_logits": True})]


def _rows(results):
    board = build_board(assess(results))
    return {(p.norm, t.eps): t.rows[0] for p in board.pages for t in p.tables}


def test_masking_at_l0_marks_the_l0_rows_only():
    results = result_set(_linf(AT) + _l0(AT), [AT])
    m = assess(results)[AT["model_id"]]
    assert "R6" in m.diagnosis.fired
    assert m.fired_at(("l0", 0.05)) == ["R6"] and "R6" not in m.fired_at(("linf", 0.3))
    rows = _rows(results)
    linf, l0 = rows[("linf", 0.3)], rows[("l0", 0.05)]
    assert "R6" in l0.fired and l0.verdict_cell.startswith("masked? R6")
    assert linf.fired == [] and linf.fired_elsewhere == {"l0": ["R6"]}
    assert "masking at l0: R6" in linf.verdict_cell and not linf.verdict_cell.startswith("masked?")
    assert not any("masking suspected" in r for r in linf.reasons)


def test_a_finding_about_the_model_itself_marks_every_norm():
    results = result_set(_linf(AT) + _l0(AT), [AT], [probes(AT["model_id"], zero=0.9, saturated=0.9, logit_l1=900.0)])
    m = assess(results)[AT["model_id"]]
    assert "R7" in m.fired_at(("linf", 0.3)) and "R7" in m.fired_at(("l0", 0.05))
    assert "R7" in _rows(results)[("linf", 0.3)].fired


def test_at_l0_the_rules_compare_like_with_like():
    """The issue's case: on adversarial training softmax JSMA leaves 68.5%, JSMA on logits 85.5% and
    untargeted Sparse-RS 0%. Softmax JSMA is the stronger of the two JSMAs, so neither R6 (softmax
    blinded) nor R8 (claimed far above) may fire on a targeted-vs-untargeted gap. Defensive
    distillation's case — softmax JSMA 95% where JSMA on logits leaves 10% — still fires R6 (R8 then
    reads it as a weak claimed attack that JSMA on logits closes, as at every norm)."""
    at = [make_record(AT, "jsma", "l0", 0.05, _n(68)),
          make_record(AT, "jsma", "l0", 0.05, _n(85), attack_config={"use_logits": True}),
          make_record(AT, "sparse-rs", "l0", 0.05, _n(0))]
    m = assess(result_set(at, [AT]))[AT["model_id"]]
    assert not {"R6", "R8"} & set(m.diagnosis.fired)
    dd_spec = model_spec("c000000000000004", "defensive-distillation", {"epochs": 5, "temperature": 100.0})
    dd = [make_record(dd_spec, "jsma", "l0", 0.05, _n(95)),
          make_record(dd_spec, "jsma", "l0", 0.05, _n(10), attack_config={"use_logits": True}),
          make_record(dd_spec, "sparse-rs", "l0", 0.05, _n(0))]
    m = assess(result_set(dd, [dd_spec]))[dd_spec["model_id"]]
    assert "R6" in m.diagnosis.fired and m.fired_at(("l0", 0.05)) == ["R6"]
