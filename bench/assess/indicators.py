"""Attack-failure indicators (Pintor et al. 2022, "Indicators of Attack Failure"), computed from what
the harness itself saw of each attack (bench/execute/observer.py), never from what an adapter says.

- **Silent success** — an earlier query was adversarial, the returned point is not. Remedied inside
  the record: the harness judges that query like a returned point and counts it (the record's
  `silent_success` column; the page's indicator table shows the count).
- **Incomplete optimisation** (W3) — on the examples an iterative white-box attack left robust,
  its best-so-far objective (the margin inside the budget; minus the size of a misclassified point
  for a minimal-norm attack), rescaled to [0, 1] by its range, still moved by more than 0.05 over
  the last min(10, T) queries in every record of that attack.
- **Unconstrained attack failure** (W4) — a minimal-norm attack is unconstrained: on a correctly
  classified example it must find *some* misclassified point. Examples it never broke at any size
  mean the attack failed, not that the model is robust.
- **Unavailable gradients** are the records' gradient status and the probes (rule R10 and the
  per-example `gradient` column); a randomized model is R9.
- **Unstable predictions** (W6) — the probes' `loss_instability`, the reference's metric: the mean
  relative change of the cross-entropy over 100 random points within ±4/255 per feature of each of
  the first 100 test inputs, each input's value capped at 1 before the mean over inputs (so that one
  input of a model with huge logits cannot decide it: bench/execute/probes.py), above
  INSTABILITY_THRESHOLD (0.25). Measured, per-input cap: undefended papernot-mnist on mnist-5k 0.013
  (50 epochs), its adversarial training 0.018, defensive distillation at T 100 0.0006, ta-chain at
  T 100 0.010 (0.73 capped only as a whole: one input); digits-cnn 0.115; the digits model with
  Gaussian input noise of σ 0.05 in its forward 0.73, with inputs quantized to 4 levels 0.37 (8 levels
  0.33). The threshold sits at 2.2× the largest smooth value and below every shattered or randomized one.
  Gradients measured at one point then say little about the loss a step away: W6 prescribes
  expectation over transformation and an attack that only compares losses (Square).
- **Transfer failure** (W5) — on examples robust in the worst case, the transfer attack's point
  fooled its surrogate (the harness predicts every returned point there, column `surrogate_fooled`)
  and not the model. The surrogate is not the model: its failure to transfer says nothing of the
  model's robustness, so the black-box evidence must come from an attack that queries the model
  (Square), which W5 prescribes.

W3 to W6 are attack-strength findings (bench/assess/strength.py) with their remedies
(bench/assess/remedies.py). A row is ranked at a budget only when the prescribed attacks have run,
and for W3 and W4 only when the indicator then no longer fires — otherwise "≤ X", named; W5 and W6
are answered once their remedies ran (a resisted transfer and an unstable loss are properties of the
model that more attacks cannot remove).
"""
from __future__ import annotations

from bench.assess.evidence import ModelEvidence
from bench.assess.rules import Finding, _finding, _threat_name, is_iterative_gradient

# an indicator fires when the examples it concerns could move the attack's accuracy by more than this
SHARE = 0.01
# W6 fires above this loss instability (Pintor et al.'s metric capped per input, in [0, 1]): 2.2x the
# largest value measured on a smooth model (0.115), below a 4-level quantized input (0.37) and input
# noise (0.73) (the docstring above; 0.5 when the metric was capped only as a whole, probes version 4)
INSTABILITY_THRESHOLD = 0.25


def _fires(count: int, n: int) -> bool:
    return count >= 2 and count > SHARE * n


def _unconverged(t) -> tuple[int, dict]:
    """Examples robust in the worst case that an iterative white-box attack traced as still improving
    and on which none of them converged (a converged trace of any attack settles the example)."""
    moving, steady, per_attack = None, None, {}
    for a in t.attacks.values():
        if a.derived or not is_iterative_gradient(a) or a.incomplete is None:
            continue
        idx = t.examples
        incomplete = a.incomplete.reindex(idx, fill_value=False)
        settled = a.steady.reindex(idx, fill_value=False)
        moving = incomplete if moving is None else moving | incomplete
        steady = settled if steady is None else steady | settled
        if int(incomplete.sum()):
            per_attack[a.key] = int(incomplete.sum())
    if moving is None:
        return -1, {}
    count = int((moving & ~steady & t.worst_survived.reindex(t.examples, fill_value=False)).sum())
    return count, per_attack


def rule_incomplete_optimisation(m: ModelEvidence) -> Finding:
    make = _finding("W3", "an attack stopped before its loss converged",
                    "on > 1% of the evaluation set (and at least 2 examples) left robust, an iterative white-box "
                    "attack's best-so-far objective, rescaled to [0, 1], still moved by > 0.05 over its last "
                    "min(10, T) queries, and no such attack converged there",
                    "Pintor et al. 2022, incomplete optimization")
    hits, seen = {}, False
    for t in m.threats.values():
        if t.norm == "l0":  # JSMA and Sparse-RS stop at their budget of pixels: more iterations cannot help
            continue
        count, per_attack = _unconverged(t)
        if count < 0:
            continue
        seen = True
        if _fires(count, len(t.examples)):
            hits[_threat_name(t)] = {"unconverged robust examples": count, "still improving per attack": per_attack}
    return make(bool(hits), seen, **hits)


def rule_unconstrained_failure(m: ModelEvidence) -> Finding:
    make = _finding("W4", "a minimal-norm attack failed without a budget",
                    "on > 1% of the evaluation set (and at least 2 examples), correctly classified and robust in the "
                    "worst case, no minimal-norm (unconstrained) attack found a misclassified point at any size",
                    "Pintor et al. 2022, unconstrained attack failure")
    hits, seen = {}, False
    for t in m.threats.values():
        found, per_attack = None, {}
        for a in t.attacks.values():
            if a.derived or not a.info.minimal_norm:
                continue
            fooled = a.fooled_any_size.reindex(t.examples, fill_value=False)
            found = fooled if found is None else found | fooled
            u = a.unbounded_success
            per_attack[a.key] = f"never broke {u.n - u.correct} of {u.n}"
        if found is None:
            continue
        seen = True
        count = int((t.worst_survived.reindex(t.examples, fill_value=False) & ~found).sum())
        if _fires(count, len(t.examples)):
            hits[_threat_name(t)] = {"robust examples no minimal-norm attack broke at any size": count, **per_attack}
    return make(bool(hits), seen, **hits)


def rule_transfer_failure(m: ModelEvidence) -> Finding:
    make = _finding("W5", "a transfer attack fooled its surrogate, not the model",
                    "on > 1% of the evaluation set (and at least 2 examples) robust in the worst case, a transfer "
                    "attack's point misclassified on its surrogate (inside the budget) was classified right by the "
                    "model",
                    "Pintor et al. 2022, transfer failure")
    hits, seen = {}, False
    for t in m.threats.values():
        robust = t.worst_survived.reindex(t.examples, fill_value=False)
        for a in t.attacks.values():
            if a.surrogate_fooled is None:
                continue
            seen = True
            on_surrogate = a.surrogate_fooled.reindex(t.examples, fill_value=False)
            count = int((robust & on_surrogate).sum())
            if _fires(count, len(t.examples)):
                hits.setdefault(_threat_name(t), {})[a.key] = (
                    f"fooled the surrogate, not the model, on {count} robust examples "
                    f"(the surrogate was fooled on {int(on_surrogate.sum())} of {len(t.examples)})")
    return make(bool(hits), seen, **hits)


def rule_unstable_predictions(m: ModelEvidence) -> Finding:
    make = _finding("W6", "the model's loss is unstable near its inputs",
                    f"the mean relative change of the cross-entropy over 100 random points within ±4/255 per feature "
                    f"of the first 100 test inputs (probes, each input capped at 1) is above {INSTABILITY_THRESHOLD}",
                    "Pintor et al. 2022, unstable predictions")
    p = m.probes
    value = None if p is None else p.loss_instability
    if value is None:
        return make(False, False)
    hits = {}
    if value > INSTABILITY_THRESHOLD:  # a property of the model: every threat model's gradient attacks are concerned
        hits = {_threat_name(t): {"loss_instability": round(value, 4)} for t in m.threats.values()}
    return make(bool(hits), True, **(hits or {"loss_instability": round(value, 4)}))


INDICATOR_RULES = [rule_incomplete_optimisation, rule_unconstrained_failure, rule_transfer_failure,
                   rule_unstable_predictions]


def indicator_rows(t) -> list[dict]:
    """Per attack at one threat model: the examples the harness traced, the silent successes it
    counted, the examples it left robust and those still improving at the end, and (minimal-norm
    attacks) the examples never broken at any size, (transfer attacks) the points that fooled the
    surrogate; None where not recorded or not applicable."""
    rows = []
    for a in t.attacks.values():
        if a.derived:
            continue
        traced = int(a.traced.sum()) if a.traced is not None else None
        incomplete = a.incomplete
        unbounded = a.unbounded_success if a.info.minimal_norm else None
        rows.append({"attack": a.key, "traced": traced, "silent_success": None if traced is None else a.silent,
                     "surrogate_fooled": None if a.surrogate_fooled is None else int(a.surrogate_fooled.sum()),
                     "robust": int(a.survived.sum()),
                     "still_improving": None if incomplete is None else int(incomplete.sum()),
                     "never_broken": None if unbounded is None else unbounded.n - unbounded.correct})
    return rows
