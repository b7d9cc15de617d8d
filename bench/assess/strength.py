"""Attack-strength findings (docs/masking.md, "Attack strength"): evidence that an attack of the
suite is weak *on this model*, distinct from gradient masking. The verdict does not change; the
finding prescribes stronger attacks, which the adaptive stage runs, and the row is ranked only once
they have run at that budget.

- W1, a white-box attack is weak: per iterative white-box attack on a margin or logit loss (a
  cross-entropy attack far weaker than those is R6, masking), a score-based black-box attack
  (Square; AutoAttack's own Square counts through the components that broke each example) breaks
  examples it left robust — more than 0.2 points on the same examples, exact one-sided McNemar
  p < 0.05. R2 asks only whether black-box attacks beat the *strongest* white-box attack; W1 asks
  it of each one, since a weak PGD is what a paper reports (on the published board Square beat
  40-step margin PGD by 13.5–21 points on the robust rows).
- W2, AutoAttack warned: AutoAttack's own sanity checks, read from its records' notes — Square
  decreased the robust accuracy of the gradient components ("the robustness evaluation using
  AutoAttack is unreliable"), a randomized defense, zero gradients, probabilities for logits.
  AutoAttack prints these and goes on; here each is a finding with its remedy.
- W7, restarts still pay: a white-box attack run with restarts (`pgd-margin`, `apgd`; W1's remedies
  run 5) is the only record that broke examples, on > 1% of the evaluation set and at least 2: more
  random starts found what no other attack did, so the worst case may still fall with more of them
  (measured on an earlier published board: PGD-margin at L2 on TRADES fell from 69% to 58% between
  1 and 5 restarts). It prescribes the same attacks with RESTART_CAP restarts; answered once they ran.
"""
from __future__ import annotations

from bench.assess.evidence import ModelEvidence
from bench.assess.indicators import _fires
from bench.assess.rules import Finding, _aligned, _compare, _finding, _threat_name, is_iterative_gradient
from bench.assess.stats import paired_gap

# AutoAttack's check messages (pyautoattack/checks.py) → what they mean here
AUTOATTACK_WARNINGS = {
    "Square Attack has decreased the robust accuracy": "Square beat AutoAttack's white-box components",
    "randomized defense": "the model looks randomized",
    "zero gradient": "points with zero gradient",
    "probability distribution": "the outputs look like probabilities, not logits",
    "dynamic defense": "the model looks dynamic",
}


def rule_white_box_weak(m: ModelEvidence) -> Finding:
    make = _finding("W1", "a white-box attack is weak on this model",
                    "a black-box attack breaks > 0.2 points more on the same examples than this white-box attack, "
                    "McNemar p < 0.05",
                    "Croce & Hein 2020 (check_square_sr); Pintor et al. 2022; Carlini et al. 2019 §5")
    hits, seen = {}, False
    for t in m.threats.values():
        if t.norm == "l0":
            continue
        black = t.strongest(lambda a: a.info.role == "black-box")
        not_by_square = None
        for a in t.attacks.values():  # AutoAttack's Square, where the record says what broke each example
            if a.info.role == "ensemble" and a.broken_by is not None:
                by = a.broken_by.reindex(a.survived.index, fill_value="")
                # examples AutoAttack's Square did not break (it runs on what its white-box components left)
                not_by_square = ~by.str.startswith("square") if not_by_square is None else not_by_square
        # margin/logit white-box attacks: a cross-entropy attack weaker than them is R6's case (masking)
        whites = [a for a in t.attacks.values() if is_iterative_gradient(a) and a.info.loss in ("margin", "logits")]
        if not whites or (black is None and not_by_square is None):
            continue
        seen = True
        weak = {}
        for white in whites:
            if black is not None:
                gap = _compare(white, black, 0.002)
                if gap.exceeds(0.002):
                    weak[white.key] = {"white": round(white.accuracy.value, 4), black.key: round(black.accuracy.value, 4),
                                       "paired": gap.to_json()}
                    continue
            if not_by_square is not None:
                # high: survived the white-box attack; low: survived it and AutoAttack's Square
                w, s = _aligned(white.survived, not_by_square)
                gap = paired_gap(w.to_numpy(), (w & s).to_numpy())
                if gap.exceeds(0.002):
                    weak[white.key] = {"white": round(white.accuracy.value, 4), "autoattack square": "broke "
                                       f"{gap.high_only} it left", "paired": gap.to_json()}
        if weak:
            hits[_threat_name(t)] = weak
    return make(bool(hits), seen, **hits)


def rule_autoattack_warned(m: ModelEvidence) -> Finding:
    make = _finding("W2", "AutoAttack's own checks warned", "any warning of AutoAttack's sanity checks",
                    "Croce & Hein 2020, pyautoattack checks.py")
    hits, seen = {}, False
    for t in m.threats.values():
        for a in t.attacks.values():
            if a.info.role != "ensemble":
                continue
            seen = True
            said = sorted({meaning for r in a.records for note in r.notes
                           for key, meaning in AUTOATTACK_WARNINGS.items() if key in note})
            if said:
                hits[_threat_name(t)] = said
    return make(bool(hits), seen, **hits)


RESTART_CAP = 10  # W7's remedies: pgd-margin and APGD-CE with this many restarts (W1's run 5)
RESTARTED = ("pgd-margin", "apgd")


def rule_restarts_still_pay(m: ModelEvidence) -> Finding:
    make = _finding("W7", "more restarts still pay",
                    f"on > 1% of the evaluation set (and at least 2 examples), a white-box attack run with fewer than "
                    f"{RESTART_CAP} restarts was the only record that broke them",
                    "Madry et al. 2018 (random restarts); Croce & Hein 2020 (APGD restarts); Carlini et al. 2019 §4")
    hits, seen = {}, False
    for t in m.threats.values():
        for r in t.records:
            restarts = r.attack.config.get("restarts", 1)
            if r.attack.name not in RESTARTED or not isinstance(restarts, int) or restarts < 2:
                continue
            seen = True
            alone = t.sole_breaks.get(r.record_id, 0)
            if restarts < RESTART_CAP and _fires(alone, len(t.examples)):
                hits.setdefault(_threat_name(t), {})[f"{r.attack.name} ({restarts} restarts)"] = (
                    f"the only record to break {alone} of {len(t.examples)} examples")
    return make(bool(hits), seen, **hits)


def _indicator_rules():
    from bench.assess.indicators import INDICATOR_RULES  # W3-W6: Pintor et al. 2022, from the harness's traces and probes

    return INDICATOR_RULES


STRENGTH_RULES = [rule_white_box_weak, rule_autoattack_warned, rule_restarts_still_pay, *_indicator_rules()]
