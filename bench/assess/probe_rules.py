"""The gradient-masking rules about the model itself: its probes (R7), randomness (R9) and
unavailable gradients (R10); docs/masking.md lists each rule, its threshold and its source."""
from __future__ import annotations

from bench.assess.evidence import ModelEvidence
from bench.assess.rules import Finding, _finding


def rule_probes(m: ModelEvidence) -> Finding:
    """Zero gradients are measured on the DLR loss, as AutoAttack's check_zero_gradients does: DLR is
    invariant to the logits' scale, so a long-trained undefended model whose confident softmax
    rounds the cross-entropy gradient to zero does not trip it. Saturation and logit size are judged
    against the undefended reference of the same spec where the store has it. The undefended model
    is its own reference: its saturation and its logits are the baseline a defense is compared with,
    so only its DLR gradients can fire R7 (a long-trained vanilla papernot-mnist saturates its
    softmax on 75% of mnist-5k's test inputs, and nothing in it masks anything)."""
    make = _finding("R7", "vanishing gradients, saturated softmax, or inflated logits",
                    "zero DLR gradient on > 10% of inputs; or softmax = 1.0 on > 50% of inputs and > 30 points more "
                    "than the undefended reference (vanilla, same dataset, base arch, seed and epochs); or median "
                    "logit L1 > 10× the reference's",
                    "Carlini & Wagner 2016 (§4: L1 logit norm 482 vs 5.8); Croce & Hein 2020 (check_zero_gradients)")
    p = m.probes
    if p is None:
        return make(False, False)
    evidence = {"zero_dlr_grad_share": p.zero_dlr_grad_share, "zero_ce_grad_share": p.zero_grad_share,
                "saturated_share": p.saturated_share, "logit_l1_median": p.logit_l1_median}
    ref = m.reference_probes
    if m.own_reference:
        evidence["reference_model"] = "itself (the undefended model of its spec)"
    saturated = (not m.own_reference and p.saturated_share > 0.50
                 and (ref is None or p.saturated_share > ref.saturated_share + 0.30))
    fired = p.zero_dlr_grad_share > 0.10 or saturated
    if ref is not None:
        ratio = p.logit_l1_median / max(ref.logit_l1_median, 1e-12)
        evidence.update(logit_l1_vs_reference=ratio, reference_saturated_share=ref.saturated_share,
                        reference_model=ref.model_id)
        fired = fired or ratio > 10
    return make(fired, True, **evidence)


def _records(m: ModelEvidence):
    return [r for t in m.threats.values() for r in t.records]


def rule_randomized(m: ModelEvidence) -> Finding:
    make = _finding("R9", "the model is randomized",
                    "repeated eval-mode forwards of the same inputs disagree (probes), or an attack saw it",
                    "Athalye et al. 2018 §4.2 (stochastic gradients, EOT); Croce & Hein 2020 (check_randomized)")
    p = m.probes
    seen_by = sorted({r.attack.name for r in _records(m)
                      if r.metrics.extra.get("draws", 1) > 1 or any("randomized" in n for n in r.notes)})
    if p is None and not seen_by:
        return make(False, False)
    share = p.randomized_share if p is not None else 0.0
    evidence = {"randomized_share": share}
    if seen_by:
        evidence["seen_by"] = ", ".join(seen_by)
    return make(share > 0 or bool(seen_by), True, **evidence)


def rule_gradients_unavailable(m: ModelEvidence) -> Finding:
    make = _finding("R10", "input gradients unavailable or not finite",
                    "no autograd path from the input, or a NaN/inf input gradient, on any input (probes or attacks)",
                    "Pintor et al. 2022 (unavailable gradients); Athalye et al. 2018 §4.1 (shattered gradients, BPDA)")
    p = m.probes
    counts = {"unavailable": 0, "nonfinite": 0}
    for r in _records(m):
        counts["unavailable"] = max(counts["unavailable"], int(r.metrics.extra.get("gradient_unavailable", 0)))
        counts["nonfinite"] = max(counts["nonfinite"], int(r.metrics.extra.get("gradient_nonfinite", 0)))
    if p is None and not _records(m):
        return make(False, False)
    evidence = {"grad_unavailable_share": p.grad_unavailable_share if p else None,
                "grad_nonfinite_share": p.grad_nonfinite_share if p else None,
                "attack_examples_unavailable": counts["unavailable"], "attack_examples_nonfinite": counts["nonfinite"]}
    fired = bool(counts["unavailable"] or counts["nonfinite"]) or (
        p is not None and (p.grad_unavailable_share > 0 or p.grad_nonfinite_share > 0))
    return make(fired, True, **{k: v for k, v in evidence.items() if v is not None})

