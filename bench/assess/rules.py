"""The masking rules that compare attacks on one model: R1–R6 and R8 (bench/assess/masking.py
lists all ten and turns their findings into the verdict; docs/masking.md documents each rule).

A rule is a function of a `ModelEvidence` returning a `Finding`. Comparisons are paired: on the
same examples, a rule fires only when the gap exceeds its threshold and an exact one-sided McNemar
or binomial test (α = 0.05, bench/assess/stats.py) says it is not chance. Attacks are selected by
the role and loss they declare, never by name.
"""
from __future__ import annotations
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bench.assess.evidence import AttackSummary, ModelEvidence, ThreatAssessment
from bench.assess.stats import ALPHA, paired_gap, rate_below, rate_exceeds
from bench.assess.traces import either


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


def _threat_name(t: ThreatAssessment) -> str:
    return f"{t.norm} {t.eps:g}"


def _aligned(a: pd.Series, b: pd.Series) -> tuple[pd.Series, pd.Series]:
    common = a.index.intersection(b.index)
    return a.loc[common], b.loc[common]


def _compare(high: AttackSummary | pd.Series, low: AttackSummary | pd.Series, threshold: float):
    """Paired comparison: does `high` leave more examples robust than `low`, by more than `threshold`?"""
    hs = high if isinstance(high, pd.Series) else high.survived
    ls = low if isinstance(low, pd.Series) else low.survived
    hs, ls = _aligned(hs, ls)
    return paired_gap(hs.to_numpy(), ls.to_numpy())


def is_iterative_gradient(a: AttackSummary) -> bool:
    return a.info.role == "gradient" and not a.info.single_step


def is_ce_family(a: AttackSummary) -> bool:
    """The losses a saturated softmax blinds: cross-entropy, and the softmax itself (JSMA)."""
    return is_iterative_gradient(a) and a.info.loss in ("ce", "softmax")


def is_logit_family(a: AttackSummary) -> bool:
    """Attacks a saturated softmax does not blind: margin/logit losses, and score-based black-box
    attacks (they read the scores' ranking, not their gradient)."""
    return (is_iterative_gradient(a) and a.info.loss in ("margin", "logits")) or a.info.role == "black-box"


def rule_fgsm_beats_pgd(m: ModelEvidence) -> Finding:
    make = _finding("R1", "single-step FGSM beats iterative PGD",
                    "FGSM leaves > 2 points less than iterative PGD on the same examples, McNemar p < 0.05",
                    "Athalye et al. 2018 §6; Carlini et al. 2019 §5.2")
    hits, seen = {}, False
    for t in m.threats.values():
        single = t.strongest(lambda a: a.info.role == "gradient" and a.info.single_step)
        iterative = t.strongest(lambda a: is_ce_family(a) and a.info.loss == "ce")
        if single is None or iterative is None:
            continue
        seen = True
        gap = _compare(iterative, single, 0.02)
        if gap.exceeds(0.02):
            hits[_threat_name(t)] = {iterative.key: round(iterative.accuracy.value, 4),
                                     single.key: round(single.accuracy.value, 4), "paired": gap.to_json()}
    return make(bool(hits), seen, **hits)


BLACK_BOX_COMPONENTS = ("square",)  # AutoAttack's components that use no gradient


def rule_black_box_beats_white_box(m: ModelEvidence) -> Finding:
    """As AutoAttack's check_square_sr. Where AutoAttack reported which component broke each example,
    its white-box components (APGD-CE, APGD-T, FAB-T) join the white-box side and its Square the
    black-box side, and the rule asks AutoAttack's question: did black-box attacks break examples that
    *every* white-box attack left robust (share > 0.2 points, exact binomial p < 0.05)? Otherwise it
    compares the best black-box or transfer attack with the strongest iterative white-box attack on
    the same examples (McNemar)."""
    make = _finding("R2", "black-box or transfer beats the strongest white-box attack",
                    "examples broken only by black-box attacks > 0.2 points (with AutoAttack's components), or the "
                    "best black-box leaves > 0.2 points less than the best white-box; p < 0.05",
                    "Croce & Hein 2020 (check_square_sr, 0.2 points); Athalye et al. 2018 §6")
    hits, seen = {}, False
    for t in m.threats.values():
        if t.norm == "l0":  # JSMA is targeted at one class: a black-box L0 search beats it anyway (R6 covers L0)
            continue
        ensembles = [a for a in t.attacks.values() if a.info.role == "ensemble" and a.broken_by is not None]
        blacks = [a for a in t.attacks.values() if a.info.role in ("black-box", "transfer")]
        whites = [a for a in t.attacks.values() if is_iterative_gradient(a)]
        if ensembles:
            seen = True
            white_ok = None
            for a in whites:
                white_ok = a.survived if white_ok is None else (white_ok & a.survived.reindex(white_ok.index,
                                                                                            fill_value=True))
            black_broke = None
            for e in ensembles:
                by = e.broken_by.reindex(e.survived.index, fill_value="")
                w = e.survived | by.isin(BLACK_BOX_COMPONENTS)  # survived AutoAttack's white-box components
                b = by.isin(BLACK_BOX_COMPONENTS)
                white_ok = w if white_ok is None else (white_ok.reindex(w.index, fill_value=True) & w)
                black_broke = b if black_broke is None else (black_broke | b.reindex(black_broke.index, fill_value=False))
            for a in blacks:
                b = ~a.survived
                black_broke = black_broke.reindex(black_broke.index.union(b.index), fill_value=False) | \
                    b.reindex(black_broke.index.union(b.index), fill_value=False)
            white_ok, black_broke = _aligned(white_ok, black_broke)
            only_black = int((white_ok & black_broke).sum())
            n = len(white_ok)
            p = rate_exceeds(only_black, n, 0.002)
            if n and only_black / n > 0.002 and p < ALPHA:
                hits[_threat_name(t)] = {"broken_only_by_black_box": only_black, "n": n, "p": float(f"{p:.3g}")}
            continue
        black = t.strongest(lambda a: a.info.role in ("black-box", "transfer"))
        white = t.strongest(is_iterative_gradient)
        if black is None or white is None:
            continue
        seen = True
        gap = _compare(white, black, 0.002)
        if gap.exceeds(0.002):
            hits[_threat_name(t)] = {white.key: round(white.accuracy.value, 4), black.key: round(black.accuracy.value, 4),
                                     "paired": gap.to_json()}
    return make(bool(hits), seen, **hits)


def rule_unbounded_attack_fails(m: ModelEvidence) -> Finding:
    """Judged on the union of the minimal-norm gradient attacks of each threat model: an example
    counts as reached when any of them misclassified it at some size. One attack that stops short
    (C&W at 5 × 100 left 120 of 193 correct mnist-5k examples of an undefended model unbroken at any
    size, where DDN on the margin reached all 193) is that attack's weakness, the attack-strength
    finding W4, not the model's masking; when no gradient attack reaches them, the gradients are."""
    make = _finding("R3", "unbounded minimal-norm attacks (C&W, DDN, FMN) do not reach ~100%",
                    "share of the attacked examples that no minimal-norm gradient attack misclassified at any size "
                    "above 1% (success < 99%), exact binomial p < 0.05 against 99%",
                    "Carlini et al. 2019 §5.1 (an unbounded attack must always succeed)")
    hits, seen = {}, False
    for t in m.threats.values():
        reached, attacked, rates = None, None, {}
        for a in t.attacks.values():
            if not (a.info.minimal_norm and a.info.role == "gradient"):
                continue
            seen = True
            reached = either(reached, a.fooled_any_size.reindex(t.examples, fill_value=False).astype(bool))
            attacked = either(attacked, a.clean_correct.reindex(t.examples, fill_value=False).astype(bool))
            rates[a.key] = round(a.unbounded_success.value, 4)
        if reached is None:
            continue
        n, k = int(attacked.sum()), int((reached & attacked).sum())
        p = rate_below(k, n, 0.99)
        if n and k / n < 0.99 and p < ALPHA:
            hits[_threat_name(t)] = {"unbounded_success": round(k / n, 4), "attacked": n, "p": float(f"{p:.3g}"),
                                     "per_attack": rates}
    return make(bool(hits), seen, **hits)


def rule_noise_beats_gradients(m: ModelEvidence) -> Finding:
    make = _finding("R4", "random noise finds errors that every gradient attack missed",
                    "share broken by noise only > 0.2%, exact binomial p < 0.05 against 0.2%",
                    "Carlini et al. 2019 §5.2; Athalye et al. 2018 §6")
    hits, seen = {}, False
    for t in m.threats.values():
        noise = t.strongest(lambda a: a.info.role == "random")
        grads = [a for a in t.attacks.values() if a.info.role in ("gradient", "ensemble")]
        if noise is None or not grads:
            continue
        seen = True
        survived_all = grads[0].survived
        for g in grads[1:]:
            survived_all, other = _aligned(survived_all, g.survived)
            survived_all = survived_all & other
        survived_all, noise_survived = _aligned(survived_all, noise.survived)
        only_noise = int((survived_all & ~noise_survived).sum())
        n = len(survived_all)
        p = rate_exceeds(only_noise, n, 0.002)
        if n and only_noise / n > 0.002 and p < ALPHA:
            hits[_threat_name(t)] = {"broken_by_noise_only": only_noise, "n": n, "p": float(f"{p:.3g}")}
    return make(bool(hits), seen, **hits)


def rule_budget_does_not_break(m: ModelEvidence) -> Finding:
    make = _finding("R5", "robust accuracy does not fall monotonically as the budget grows",
                    "an attack leaves > 2 points more at a larger ε on the same examples, McNemar p < 0.05",
                    "Carlini et al. 2019 §5.2; Athalye et al. 2018 §6")
    hits, seen = {}, False
    for norm in sorted({norm for norm, _ in m.threats}):
        budgets = sorted(eps for n_, eps in m.threats if n_ == norm)
        for small, large in zip(budgets, budgets[1:]):
            ts, tl = m.threats[(norm, small)], m.threats[(norm, large)]
            for key in sorted(set(ts.attacks) & set(tl.attacks)):
                if ts.attacks[key].info.role == "random":
                    continue
                seen = True
                gap = _compare(tl.attacks[key], ts.attacks[key], 0.02)
                if gap.exceeds(0.02):
                    hits[f"{key} {norm} {small:g}→{large:g}"] = {f"{small:g}": round(ts.attacks[key].accuracy.value, 4),
                                                                 f"{large:g}": round(tl.attacks[key].accuracy.value, 4),
                                                                 "paired": gap.to_json()}
    return make(bool(hits), seen, **hits)


def rule_ce_vs_margin_gap(m: ModelEvidence) -> Finding:
    # On properly trained robust models CE and margin losses land within a few points of each other
    # (Croce & Hein 2020, APGD-CE vs APGD-DLR); masking opens gaps of tens of points. 0.20 keeps a
    # small or briefly trained robust model (measured: 12 points on a 15-epoch digits AT model,
    # n = 60) from a false flag. At L0 this compares softmax JSMA with JSMA on logits only.
    make = _finding("R6", "cross-entropy/softmax attacks far weaker than margin/logit attacks",
                    "CE or softmax attack leaves > 20 points more than the best margin/logit or black-box attack "
                    "(at L0: than JSMA on logits), McNemar p < 0.05", "Carlini & Wagner 2016; Carlini et al. 2019 §4.3")
    hits, seen = {}, False
    for t in m.threats.values():
        ce = t.strongest(is_ce_family)
        # at L0 like with like: softmax JSMA against JSMA on logits (same seed, so the same random
        # targets), never against untargeted Sparse-RS, which beats a targeted attack on any model
        logit = t.strongest(lambda a: is_logit_family(a) and (t.norm != "l0" or a.info.role == "gradient"))
        if ce is None or logit is None:
            continue
        seen = True
        gap = _compare(ce, logit, 0.20)
        if gap.exceeds(0.20):
            hits[_threat_name(t)] = {ce.key: round(ce.accuracy.value, 4), logit.key: round(logit.accuracy.value, 4),
                                     "paired": gap.to_json()}
    return make(bool(hits), seen, **hits)


def _merged_survived(attacks: list[AttackSummary]) -> pd.Series:
    """Per example: survived every one of `attacks` that covered it."""
    merged = None
    for a in attacks:
        if merged is None:
            merged = a.survived
            continue
        idx = merged.index.union(a.survived.index)
        merged = merged.reindex(idx, fill_value=True) & a.survived.reindex(idx, fill_value=True)
    return merged


def rule_apparent_vs_actual(m: ModelEvidence) -> Finding:
    """A large gap between the claimed number and the worst case is masking only when no stronger
    *gradient* attack closes it: if one does (APGD, a margin loss, AutoAttack), the claimed attack
    was merely weak, which the finding reports without firing (Pintor et al. 2022 tell the two
    apart the same way). AutoAttack counts as a gradient attack here although it ends with Square:
    its per-component outcomes are not kept yet."""
    make = _finding("R8", "the defense's own evaluation claims far more than the worst case",
                    "claimed (PGD-CE, or softmax JSMA at L0) − worst case (at L0: over the gradient attacks) > 20 "
                    "points, McNemar p < 0.05, and no "
                    "stronger gradient attack within 20 points of the worst case",
                    "Athalye et al. 2018 §1 (apparent vs actual robustness); Pintor et al. 2022 (weak attack)")
    hits, weak, seen = {}, {}, False
    for t in m.threats.values():
        claimed = t.claimed
        if claimed is None or len(t.attacks) < 2:
            continue
        seen = True
        worst, worst_value = t.worst_survived, t.worst.value
        if t.norm == "l0":  # like with like: targeted softmax JSMA against the gradient attacks only, not
            worst = _merged_survived([a for a in t.attacks.values() if a.info.role == "gradient"])  # Sparse-RS
            worst_value = float(worst.mean())
        gap = _compare(claimed, worst, 0.20)
        if not gap.exceeds(0.20):
            continue
        stronger = t.strongest(lambda a: (is_iterative_gradient(a) and not is_ce_family(a))
                              or a.info.role == "ensemble")
        entry = {claimed.key: round(claimed.accuracy.value, 4), "worst_case": round(worst_value, 4),
                 "paired": gap.to_json()}
        if stronger is not None and not _compare(stronger, worst, 0.20).exceeds(0.20):
            weak[_threat_name(t)] = {**entry, "closed_by": stronger.key,
                                     stronger.key: round(stronger.accuracy.value, 4)}
        else:
            hits[_threat_name(t)] = entry
    evidence = dict(hits)
    if weak:
        evidence["weak attack, not masking"] = {k: v["closed_by"] for k, v in weak.items()}
    return make(bool(hits), seen, **evidence)

