"""The adaptive stage: after the suite and the rules, the attacks each fired finding calls for.

A flag is not the end of an evaluation (Tramèr et al. 2020, "On Adaptive Attacks to Adversarial
Example Defenses"; Athalye et al. 2018; Carlini et al. 2019): each kind of masking has attacks that
get around it. A rule that fires prescribes a family of attacks; `bench run` runs the missing ones
as ordinary cached records marked adaptive, at every budget of the run whose norm the attack
supports, then assesses again. A model whose masking was flagged is ranked only once every
prescribed attack has run at that budget ("resolved"), at the worst case that survives them;
until then its row is an upper bound (docs/leaderboard.md, docs/masking.md).

Families (rule → attacks):
- saturated softmax / cross-entropy far weaker than margin / claimed far above the worst case
  (R1, R6, R7, R8): losses that a saturated softmax cannot blind: APGD-T (targeted DLR, scale
  invariant), PGD on the margin loss with 5 restarts, PGD on cross-entropy of logits rescaled so
  the softmax no longer saturates (Carlini & Wagner 2016); at L0, JSMA on logits;
- black-box or noise beats white-box, unbounded attack fails, accuracy rises with ε (R2, R3, R4,
  R5): the symptoms of shattered or obfuscated gradients: Square at its full 5,000 queries with 3
  restarts, and transfer from the undefended model of the same spec (its base architecture); at L0,
  Sparse-RS with 5,000 queries; for a distilled model, transfer from its own teacher at the
  teacher's temperature (Carlini & Wagner 2016);
- input gradients unavailable or not finite (R10): BPDA through the architecture's declared
  approximation of its input transform (or the identity), plus the two above, and HopSkipJump
  (decision-based: labels only, for outputs whose scores carry no information);
- an attack of the suite weak on this model, or AutoAttack warning (W1, W2; not masking): APGD-T,
  APGD-CE with 5 restarts, PGD on the margin loss with 5 restarts (and for W2 Square with 3 restarts);
- restarts that still pay (W7): `pgd-margin` and APGD-CE with 10 restarts;
- an attack stopped before it converged, or a minimal-norm attack that never broke some examples
  (W3, W4: Pintor et al. 2022, bench/assess/indicators.py): the same attacks run longer;
- a loss unstable near the inputs (W6, Pintor et al. 2022): the R9 attacks below and Square with 3
  restarts;
- a randomized model (R9): expectation over transformation (Athalye et al. 2018): PGD on the margin
  loss with gradients averaged over 20 draws, APGD-CE with 20 EOT iterations, AutoAttack's `rand`
  version.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from bench.store.records import Record


@dataclass(frozen=True)
class Prescription:
    attack: str
    config: Mapping[str, Any] = field(default_factory=dict)  # overrides of the attack's defaults
    needs_teacher: bool = False  # only for models distilled from an upstream teacher

    @property
    def label(self) -> str:
        cfg = ", ".join(f"{k}={v}" for k, v in sorted(self.config.items()))
        return f"{self.attack} ({cfg})" if cfg else self.attack

    def matches(self, rec: Record) -> bool:
        return rec.attack.name == self.attack and all(rec.attack.config.get(k) == v for k, v in self.config.items())


SATURATION = (
    Prescription("apgd", {"component": "apgd-t"}),
    Prescription("pgd-margin", {"restarts": 5}),
    Prescription("pgd-margin", {"loss": "scaled-ce"}),
    Prescription("jsma", {"use_logits": True}),  # L0
)
SHATTERED = (
    Prescription("square", {"restarts": 3}),
    Prescription("transfer", {}),
    Prescription("transfer", {"source": "teacher"}, needs_teacher=True),
    Prescription("sparse-rs", {"n_queries": 5000}),  # L0
)
UNAVAILABLE = (Prescription("bpda", {}),) + SHATTERED + (Prescription("hsj", {}),)  # labels only: no gradient, no scores needed
RANDOMIZED = (
    Prescription("pgd-margin", {"eot_draws": 20}),
    Prescription("apgd", {"component": "apgd-ce", "eot_iter": 20}),
    Prescription("autoattack", {"version": "rand"}),
)
# attack-strength findings (bench/assess/strength.py): stronger white-box attacks on this model
STRONGER_WHITE_BOX = (
    Prescription("apgd", {"component": "apgd-t"}),
    Prescription("apgd", {"component": "apgd-ce", "restarts": 5}),
    Prescription("pgd-margin", {"restarts": 5}),
)
# W7 (bench/assess/strength.py): a restarted attack was the only one to break some examples: more restarts
MORE_RESTARTS = (
    Prescription("pgd-margin", {"restarts": 10}),
    Prescription("apgd", {"component": "apgd-ce", "restarts": 10}),
)
# attack-failure indicators (bench/assess/indicators.py): the same attacks run longer. For minimal-norm
# L2 the longer attack is DDN on the margin rather than C&W 9 × 1,000: as small a median perturbation
# as our C&W at a tenth of its cost (benchmarks/README.md, "Minimal-norm L2")
MORE_ITERATIONS = (
    Prescription("pgd-margin", {"steps": 200}),
    Prescription("apgd", {"component": "apgd-ce", "iterations": 500}),
    Prescription("ddn-margin", {"steps": 1000}),
)
UNCONSTRAINED = (
    Prescription("ddn-margin", {"steps": 1000}),
    Prescription("fmn", {"steps": 1000}),
)
# W5, a transfer that fooled only its surrogate: black-box evidence from an attack that queries the model
QUERY_BLACK_BOX = (Prescription("square", {"restarts": 3}),)
# W6, a loss that changes by about its own size a few 1/255 away: averaged gradients and a loss-comparing attack
UNSTABLE = RANDOMIZED + QUERY_BLACK_BOX
INDICATORS = ("W3", "W4")  # findings that must clear, not only have their remedies run, for a rank
FAMILIES: dict[str, tuple[Prescription, ...]] = {
    "W1": STRONGER_WHITE_BOX, "W2": STRONGER_WHITE_BOX + (Prescription("square", {"restarts": 3}),),
    "W7": MORE_RESTARTS, "W3": MORE_ITERATIONS, "W4": UNCONSTRAINED, "W5": QUERY_BLACK_BOX, "W6": UNSTABLE,
    "R1": SATURATION, "R6": SATURATION, "R7": SATURATION, "R8": SATURATION,
    "R2": SHATTERED, "R3": SHATTERED, "R4": SHATTERED, "R5": SHATTERED, "R10": UNAVAILABLE,
    "R9": RANDOMIZED,
}


def attack_norms(attack: str) -> frozenset[str]:
    try:
        from bench.plugins.registry import ATTACKS

        return ATTACKS.get(attack).obj.norms
    except Exception:
        return frozenset()


def prescriptions(fired: list[str], norm: str, has_teacher: bool = False) -> list[Prescription]:
    """The adaptive attacks the fired rules call for at `norm` (each once)."""
    out: list[Prescription] = []
    for rule in fired:
        for p in FAMILIES.get(rule, ()):
            if norm in attack_norms(p.attack) and p not in out and (has_teacher or not p.needs_teacher):
                out.append(p)
    return out


def unanswered(fired: list[str], norm: str) -> list[str]:
    """Fired rules with no adaptive attack available at `norm` (e.g. every rule at L0 today)."""
    return [rule for rule in fired if not any(norm in attack_norms(p.attack) for p in FAMILIES.get(rule, ()))]


def missing(fired: list[str], norm: str, records: list[Record], has_teacher: bool = False) -> list[Prescription]:
    """Prescriptions at this budget that no record answers yet."""
    return [p for p in prescriptions(fired, norm, has_teacher) if not any(p.matches(r) for r in records)]
