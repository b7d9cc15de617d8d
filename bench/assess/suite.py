"""The minimum suite a row needs before it is ranked, per threat model (docs/leaderboard.md).

Each requirement matches attacks by the role and loss they declare (bench/plugins/attacks/base.py),
so a plugin attack that plays the role counts — except the reference column: AutoAttack standard
is the built-in `autoattack` run through `pyautoattack` (the original algorithms), never whatever
declares `role = "ensemble"`. A plugin can add evidence; it cannot fill a reference column (a
do-nothing ensemble would otherwise fill it with the clean accuracy).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bench.store.records import AttackInfo


@dataclass(frozen=True)
class SuiteRequirement:
    key: str
    description: str
    matches: Callable[[AttackInfo], bool]


def _is_reference_ensemble(a: AttackInfo) -> bool:
    return (a.role == "ensemble" and a.name == "autoattack" and a.library == "pyautoattack"
            and a.config.get("version", "standard") in ("standard", "plus"))


def _is_logit_white_box(a: AttackInfo) -> bool:
    return a.role == "gradient" and a.loss in ("margin", "logits") and not a.single_step


AUTOATTACK = SuiteRequirement("autoattack", "AutoAttack standard", _is_reference_ensemble)
LOGIT_WHITE_BOX = SuiteRequirement("logit-white-box", "a white-box attack on a margin or logit loss (pgd-margin)",
                                   _is_logit_white_box)
BLACK_BOX = SuiteRequirement("black-box", "a black-box attack (square) or transfer",
                             lambda a: a.role in ("black-box", "transfer"))
MINIMAL_NORM = SuiteRequirement("minimal-norm", "a minimal-norm white-box attack (cw, ddn-margin, ddn, fmn)",
                                lambda a: a.role == "gradient" and a.minimal_norm)
SALIENCY_L0 = SuiteRequirement("jsma", "JSMA (a white-box L0 attack)", lambda a: a.role == "gradient")
LOGIT_L0 = SuiteRequirement("logit-l0", "an L0 attack on logits (JSMA with use_logits=true)", _is_logit_white_box)
GRADIENT_FREE_L0 = SuiteRequirement("gradient-free-l0", "a gradient-free L0 attack (sparse-rs)",
                                    lambda a: a.role == "black-box")

# Per threat model, what a row needs before its worst case is a ranked number (docs/leaderboard.md).
# L∞ and L2 follow the accepted practice (Croce & Hein 2020; Carlini et al. 2019 §4): the reference
# ensemble, a logit-loss white-box attack (blind to softmax saturation), and a gradient-free attack
# (blind to gradient masking), plus C&W at L2. At L0, softmax JSMA (the attack defensive
# distillation was tuned against) is not enough: JSMA on logits and Sparse-RS (gradient-free) too.
MINIMUM_SUITE: dict[str, tuple[SuiteRequirement, ...]] = {
    "linf": (AUTOATTACK, LOGIT_WHITE_BOX, BLACK_BOX),
    "l2": (AUTOATTACK, LOGIT_WHITE_BOX, BLACK_BOX, MINIMAL_NORM),
    "l0": (SALIENCY_L0, LOGIT_L0, GRADIENT_FREE_L0),
}
