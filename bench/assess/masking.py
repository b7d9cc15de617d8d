"""Gradient-masking rules over one model's assessment (docs/masking.md lists each rule, its
threshold, its test and its source).

Each rule is a small function of a `ModelEvidence` (every threat model of one model, each attack
merged per example, and the model's probes) that returns a `Finding`: whether it fired, whether it
could be evaluated, the numbers behind it, its threshold and its source. Rules select attacks by
the role and loss they declare (bench/plugins/attacks/base.py), never by name, so a plugin attack takes
part. A verdict holds per norm: a rule that fired on evidence at one norm marks that norm's rows
(any budget or slice of it counts); one that fired on the model itself (its probes) marks every
norm; the other norms' rows name it without taking it as theirs (`Diagnosis.fired_at`).

Rules that compare two attacks do so on the same examples, with an exact one-sided McNemar test
(α = 0.05) on top of the rule's threshold on the observed gap (bench/assess/stats.py): a rule fires only
when the gap is both large and not chance.

Sources: Athalye, Carlini, Wagner 2018 ("Obfuscated Gradients Give a False Sense of Security");
Carlini et al. 2019 ("On Evaluating Adversarial Robustness"); Croce & Hein 2020 (AutoAttack's
checks: Square beating APGD by more than 0.2 points, zero gradients); Carlini & Wagner 2016
("Defensive Distillation is Not Robust to Adversarial Examples": logit size, saturated softmax).
"""
from __future__ import annotations
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bench.assess.evidence import ModelEvidence
from bench.assess.probe_rules import rule_gradients_unavailable, rule_probes, rule_randomized
from bench.assess.rules import (Finding, rule_apparent_vs_actual, rule_black_box_beats_white_box,
                                rule_budget_does_not_break, rule_ce_vs_margin_gap, rule_fgsm_beats_pgd,
                                rule_noise_beats_gradients, rule_unbounded_attack_fails)


RULES: list[Callable[[ModelEvidence], Finding]] = [
    rule_fgsm_beats_pgd, rule_black_box_beats_white_box, rule_unbounded_attack_fails, rule_noise_beats_gradients,
    rule_budget_does_not_break, rule_ce_vs_margin_gap, rule_probes, rule_apparent_vs_actual, rule_randomized,
    rule_gradients_unavailable,
]

RULE_SUMMARY = {
    "R1": "FGSM beats PGD", "R2": "black-box beats the strongest white-box attack", "R3": "unbounded minimal-norm attacks below 99%",
    "R4": "noise finds what gradients missed", "R5": "accuracy rises with the budget",
    "R6": "cross-entropy far weaker than margin", "R7": "zero gradients / saturated softmax / inflated logits",
    "R8": "claimed far above the worst case", "R9": "randomized model",
    "R10": "input gradients unavailable or not finite",
}


def verdict_text(fired: list[str], evaluated: list[str]) -> str:
    """The verdict in one line, the same wherever a model or a row of models appears."""
    if fired:
        return f"masking suspected: {', '.join(fired)}"
    return "no masking detected" if evaluated else "not diagnosed"


def verdict_cell(fired: list[str], evaluated: list[str], adapted: bool = False,
                 elsewhere: dict[str, list[str]] | None = None) -> str:
    """The verdict for a table cell: the fired rule ids (and whether the adaptive attacks ran), or
    how many rules could be evaluated; `elsewhere`: rules that fired at other norms only, named
    without changing this row (their own page carries them)."""
    if fired:
        cell = f"masked? {' '.join(fired)}" + (" · adapted" if adapted else "")
    else:
        cell = f"none ({len(evaluated)}/{len(RULES)} rules)" if evaluated else "not diagnosed"
    for norm, rules in sorted((elsewhere or {}).items()):
        cell += f" · masking at {norm}: {' '.join(rules)} (its page)"
    return cell


def finding_norms(f: Finding) -> frozenset[str]:
    """The norms a finding's evidence names ("linf 0.3", "pgd l2 1.5", "pgd-margin l0 0.01→0.05"):
    empty for a finding about the model itself (its probes: zero gradients, randomness), which
    holds at every norm."""
    from bench.core.specs import NORMS

    return frozenset(token for key in f.evidence for token in str(key).split() if token in NORMS)


@dataclass
class Diagnosis:
    findings: list[Finding]
    strength: list[Finding] = None  # attack-strength findings W1-W6 (bench/assess/strength.py, indicators.py): not masking

    def __post_init__(self):
        if self.strength is None:
            self.strength = []

    @property
    def weak(self) -> list[str]:
        """Attack-strength findings that fired (they prescribe stronger attacks; the verdict stays)."""
        return [f.rule for f in self.strength if f.fired]

    @property
    def fired(self) -> list[str]:
        return [f.rule for f in self.findings if f.fired]

    def fired_at(self, norm: str) -> list[str]:
        """Masking rules that fired on evidence at `norm`, or on the model itself (the probes): the
        verdict of that norm's rows. Evidence at another norm marks that norm's page only."""
        return [f.rule for f in self.findings if f.fired and (not finding_norms(f) or norm in finding_norms(f))]

    def fired_elsewhere(self, norm: str) -> dict[str, list[str]]:
        """norm → the rules that fired there and not at `norm` (the other pages link to them)."""
        here = set(self.fired_at(norm))
        out: dict[str, list[str]] = {}
        for f in self.findings:
            if f.fired and f.rule not in here:
                for other in sorted(finding_norms(f)):
                    out.setdefault(other, []).append(f.rule)
        return out

    @property
    def evaluated(self) -> list[str]:
        return [f.rule for f in self.findings if f.evaluated]

    @property
    def suspected(self) -> bool:
        return bool(self.fired)

    @property
    def verdict(self) -> str:
        """One line, the same wherever the model appears."""
        return verdict_text(self.fired, self.evaluated)

    @property
    def short(self) -> str:
        """The verdict for a table cell: the fired rule ids, or what was evaluated."""
        return verdict_cell(self.fired, self.evaluated)


def diagnose(m: ModelEvidence) -> Diagnosis:
    from bench.assess.strength import STRENGTH_RULES

    return Diagnosis([rule(m) for rule in RULES], [rule(m) for rule in STRENGTH_RULES])
