"""Gradient-masking diagnostics: rules over a model's attack records and probes (DESIGN.md §5).

Each rule is a small function of a `ModelResults` (one model's per-attack outcomes per threat
model, and its probes) that returns a `Finding`: whether it fired, the numbers that made it fire,
its threshold and its source. A model is "masking suspected" when any rule fires.

Sources: Athalye, Carlini, Wagner 2018 ("Obfuscated Gradients Give a False Sense of Security",
§3.1 and §6's checklist); Carlini et al. 2019 ("On Evaluating Adversarial Robustness", §5 sanity
checks); Croce & Hein 2020 (AutoAttack's checks in `checks.py`: Square beating APGD by more than
0.2 points, zero gradients); Carlini & Wagner 2016 ("Defensive Distillation is Not Robust to
Adversarial Examples": logit size, saturated softmax).

Small evaluation slices are noisy, so the rules that compare two attacks use a slack of
max(threshold, 3/n): three examples must separate them before a rule fires.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

# attacks grouped by what they use
WHITE_BOX_ITERATIVE = ("pgd", "pgd-margin", "cw")
GRADIENT_ATTACKS = ("pgd", "pgd-margin", "fgsm", "autoattack", "cw", "jsma")
BLACK_BOX = ("square", "transfer")
NOT_AN_EVALUATION = ("noise",)  # a sanity baseline, never what a paper reports


@dataclass
class AttackResult:
    robust_acc: float
    adv_correct: pd.Series  # bool per example index
    metrics: dict


@dataclass
class ModelResults:
    """One model's outcomes: threat model (norm, eps) → attack → result; plus its probes."""

    label: str
    model_id: str
    n: int
    by_threat: dict[tuple[str, float], dict[str, AttackResult]]
    probes: dict | None = None
    reference_probes: dict | None = None  # the vanilla model of the same dataset and architecture

    def slack(self, threshold: float) -> float:
        return max(threshold, 3 / self.n) if self.n else threshold

    @staticmethod
    def worst(results: dict[str, AttackResult]) -> float:
        merged = None
        for r in results.values():
            merged = r.adv_correct if merged is None else (merged & r.adv_correct.reindex(merged.index, fill_value=False))
        return float(merged.mean()) if merged is not None else float("nan")


@dataclass
class Finding:
    rule: str
    title: str
    fired: bool
    evaluated: bool
    evidence: dict = field(default_factory=dict)
    threshold: str = ""
    source: str = ""


def _finding(rule, title, threshold, source):
    return lambda fired, evaluated=True, **evidence: Finding(rule, title, fired, evaluated, evidence, threshold, source)


def rule_fgsm_beats_pgd(m: ModelResults) -> Finding:
    make = _finding("R1", "single-step FGSM beats iterative PGD", "fgsm < pgd − max(0.02, 3/n)",
                    "Athalye et al. 2018 §6; Carlini et al. 2019 §5.2")
    hits, seen = {}, False
    for (norm, eps), res in m.by_threat.items():
        if "fgsm" in res and "pgd" in res:
            seen = True
            if res["fgsm"].robust_acc < res["pgd"].robust_acc - m.slack(0.02):
                hits[f"{norm} {eps:g}"] = {"fgsm": res["fgsm"].robust_acc, "pgd": res["pgd"].robust_acc}
    return make(bool(hits), seen, **hits)


def rule_black_box_beats_white_box(m: ModelResults) -> Finding:
    """As AutoAttack's check_square_sr: the black-box attack is compared with the *strongest*
    white-box gradient attack run (AutoAttack itself is left out: it contains Square)."""
    make = _finding("R2", "black-box or transfer beats the strongest white-box attack",
                    "min(square, transfer) < min(pgd, pgd-margin, cw) − max(0.002, 3/n)",
                    "Croce & Hein 2020 (check_square_sr, 0.2 points); Athalye et al. 2018 §6")
    hits, seen = {}, False
    for (norm, eps), res in m.by_threat.items():
        black = {a: res[a].robust_acc for a in BLACK_BOX if a in res}
        white = {a: res[a].robust_acc for a in WHITE_BOX_ITERATIVE if a in res}
        if not black or not white:
            continue
        seen = True
        best_black = min(black, key=black.get)
        best_white = min(white, key=white.get)
        if black[best_black] < white[best_white] - m.slack(0.002):
            hits[f"{norm} {eps:g}"] = {best_black: black[best_black], best_white: white[best_white]}
    return make(bool(hits), seen, **hits)


def rule_unbounded_attack_fails(m: ModelResults) -> Finding:
    make = _finding("R3", "unbounded minimal-norm attack (C&W) does not reach ~100%", "unbounded success < 99%",
                    "Carlini et al. 2019 §5.1 (an unbounded attack must always succeed)")
    for res in m.by_threat.values():
        if "cw" in res:
            rate = res["cw"].metrics.get("unbounded_success_rate", float("nan"))
            return make(rate < 0.99, True, cw_unbounded_success=rate)
    return make(False, False)


def rule_noise_beats_gradients(m: ModelResults) -> Finding:
    make = _finding("R4", "random noise finds errors that every gradient attack missed",
                    "share of inputs broken by noise only > max(0.002, 3/n)",
                    "Carlini et al. 2019 §5.2; Athalye et al. 2018 §6")
    hits, seen = {}, False
    for (norm, eps), res in m.by_threat.items():
        grads = [res[a].adv_correct for a in GRADIENT_ATTACKS if a in res]
        if "noise" not in res or not grads:
            continue
        seen = True
        survived_all = grads[0]
        for g in grads[1:]:
            survived_all = survived_all & g.reindex(survived_all.index, fill_value=False)
        only_noise = (~res["noise"].adv_correct.reindex(survived_all.index, fill_value=True)) & survived_all
        share = float(only_noise.mean())
        if share > m.slack(0.002):
            hits[f"{norm} {eps:g}"] = {"broken_by_noise_only": share}
    return make(bool(hits), seen, **hits)


def rule_budget_does_not_break(m: ModelResults) -> Finding:
    make = _finding("R5", "robust accuracy does not fall monotonically as the budget grows",
                    "an attack's accuracy rises by > max(0.02, 3/n) with ε", "Carlini et al. 2019 §5.2; Athalye et al. 2018 §6")
    hits, seen = {}, False
    norms = {norm for norm, _ in m.by_threat}
    for norm in norms:
        budgets = sorted(eps for nn_, eps in m.by_threat if nn_ == norm)
        if len(budgets) < 2:
            continue
        attacks = set.intersection(*(set(m.by_threat[(norm, e)]) for e in budgets)) - set(NOT_AN_EVALUATION)
        for a in sorted(attacks):
            seen = True
            curve = [m.by_threat[(norm, e)][a].robust_acc for e in budgets]
            rises = [(budgets[i], budgets[i + 1]) for i in range(len(curve) - 1) if curve[i + 1] > curve[i] + m.slack(0.02)]
            if rises:
                hits[f"{a} {norm}"] = dict(zip(map(str, budgets), curve))
    return make(bool(hits), seen, **hits)


def rule_ce_vs_margin_gap(m: ModelResults) -> Finding:
    # On properly trained robust models CE and margin losses land within a few points of each other
    # (Croce & Hein 2020, APGD-CE vs APGD-DLR); masking opens gaps of tens of points. 0.20 keeps a
    # small or briefly trained robust model (measured: 12 points on a 15-epoch digits AT model,
    # n = 60) from a false flag.
    make = _finding("R6", "cross-entropy attacks far weaker than margin/logit attacks",
                    "pgd (CE) − min(pgd-margin, cw) > 0.20", "Carlini & Wagner 2016; Carlini et al. 2019 §4.3")
    hits, seen = {}, False
    for (norm, eps), res in m.by_threat.items():
        logit = {a: res[a].robust_acc for a in ("pgd-margin", "cw") if a in res}
        if "pgd" not in res or not logit:
            continue
        seen = True
        best = min(logit, key=logit.get)
        if res["pgd"].robust_acc - logit[best] > 0.20:
            hits[f"{norm} {eps:g}"] = {"pgd": res["pgd"].robust_acc, best: logit[best]}
    return make(bool(hits), seen, **hits)


def rule_probes(m: ModelResults) -> Finding:
    make = _finding("R7", "vanishing gradients, saturated softmax, or inflated logits",
                    "zero CE gradient > 10%, or softmax = 1.0 on > 50%, or median logit L1 > 10× vanilla's",
                    "Carlini & Wagner 2016 (§4: L1 logit norm 482 vs 5.8); Croce & Hein 2020 (check_zero_gradients)")
    if not m.probes:
        return make(False, False)
    p = m.probes
    evidence = {"zero_grad_share": p["zero_grad_share"], "saturated_share": p["saturated_share"],
                "logit_l1_median": p["logit_l1_median"]}
    fired = p["zero_grad_share"] > 0.10 or p["saturated_share"] > 0.50
    if m.reference_probes and m.reference_probes.get("model_id") != m.model_id:
        ratio = p["logit_l1_median"] / max(m.reference_probes["logit_l1_median"], 1e-12)
        evidence["logit_l1_vs_vanilla"] = ratio
        fired = fired or ratio > 10
    return make(fired, True, **evidence)


def rule_apparent_vs_actual(m: ModelResults) -> Finding:
    make = _finding("R8", "PGD on cross-entropy claims far more than the worst case over the suite",
                    "pgd (CE) − worst case > 0.20", "Athalye et al. 2018 §1 (apparent vs actual robustness)")
    hits, seen = {}, False
    for (norm, eps), res in m.by_threat.items():
        if "pgd" not in res or len(res) < 2:
            continue
        seen = True
        worst = m.worst({a: r for a, r in res.items()})
        if res["pgd"].robust_acc - worst > 0.20:
            hits[f"{norm} {eps:g}"] = {"pgd": res["pgd"].robust_acc, "worst_case": worst}
    return make(bool(hits), seen, **hits)


RULES: list[Callable[[ModelResults], Finding]] = [
    rule_fgsm_beats_pgd, rule_black_box_beats_white_box, rule_unbounded_attack_fails, rule_noise_beats_gradients,
    rule_budget_does_not_break, rule_ce_vs_margin_gap, rule_probes, rule_apparent_vs_actual,
]


@dataclass
class Diagnosis:
    findings: list[Finding]

    @property
    def fired(self) -> list[str]:
        return [f.rule for f in self.findings if f.fired]

    @property
    def evaluated(self) -> list[str]:
        return [f.rule for f in self.findings if f.evaluated]

    @property
    def verdict(self) -> str:
        if self.fired:
            return f"masking suspected: {', '.join(self.fired)}"
        return "no masking detected" if self.evaluated else "not diagnosed (no attacks to compare)"


def diagnose(m: ModelResults) -> Diagnosis:
    return Diagnosis([rule(m) for rule in RULES])


def apparent_and_worst(results: dict[str, AttackResult]) -> tuple[float, float]:
    """Apparent robust accuracy (the best any single attack of the suite leaves, noise excluded: what
    a paper evaluating with that attack alone would claim) and the per-example worst case."""
    evaluations = {a: r.robust_acc for a, r in results.items() if a not in NOT_AN_EVALUATION}
    apparent = max(evaluations.values()) if evaluations else float("nan")
    return apparent, ModelResults.worst(results)


def model_results(records: list[dict], load_per_example: Callable[[str], pd.DataFrame], probes: dict | None = None,
                  reference_probes: dict | None = None) -> ModelResults:
    """Build a ModelResults from one model's records on one dataset and evaluation size."""
    by_threat: dict[tuple[str, float], dict[str, AttackResult]] = {}
    for rec in records:
        s = rec["spec"]
        frame = load_per_example(rec["record_id"]).set_index("index")
        key = (s["budget"]["norm"], float(s["budget"]["eps"]))
        by_threat.setdefault(key, {})[s["attack"]["name"]] = AttackResult(
            rec["metrics"]["robust_acc"], frame["adv_correct"].astype(bool), rec["metrics"])
    first = records[0]
    return ModelResults(first["spec"]["defense"]["label"], first["model_id"], int(first["spec"]["dataset"]["n"]),
                        by_threat, probes, reference_probes)
