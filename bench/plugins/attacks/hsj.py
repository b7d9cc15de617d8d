"""HopSkipJump (Chen, Jordan, Wainwright 2020, "HopSkipJumpAttack: A Query-Efficient Decision-Based
Attack"), from Foolbox (`HopSkipJumpAttack`): a decision-based attack — it reads only the predicted
label, never the scores or a gradient.

Why it is in the harness: a model whose scores carry no information (a label-only output, a
quantized or flat softmax) leaves gradient attacks nothing to follow and score-based Square nothing
to compare, so both report robustness that is only silence. A decision-based attack needs neither.
It is not part of `--attacks all`; the adaptive stage runs it where input gradients are unavailable
(rule R10, bench/assess/remedies.py).

Minimal-norm (L2 or L∞, the geometric step-size search of the paper): it starts from a misclassified
point (Foolbox's blended-uniform-noise search) and walks along the decision boundary towards the
input; the harness judges the smallest point found at every budget. Departure: at most 1,000 queries
per gradient estimate (Foolbox's default cap is 10,000) to keep a CPU run in minutes; the step count
and the initial estimate (64 steps, 100 queries) are the paper's.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.core.errors import BenchInputError
from bench.plugins.attacks.base import Attack
from bench.plugins.attacks.foolbox_minimize import foolbox_minimize


class HopSkipJump(Attack):
    """HopSkipJump (Foolbox), decision-based, minimal-norm at L2 or L∞."""

    name = "hsj"
    description = "HopSkipJump (Foolbox): decision-based, labels only, minimal-norm at L2 / L-inf"
    norms = frozenset({"l2", "linf"})
    role = "black-box"
    loss = "none"
    minimal_norm = True
    library = "foolbox"
    in_all = False

    @dataclass(frozen=True)
    class Config:
        """Defaults: the paper's 64 steps and 100 initial gradient-estimation queries (growing with
        √step), capped at 1,000 queries per estimate."""

        steps: int = 64
        initial_gradient_eval_steps: int = 100
        max_gradient_eval_steps: int = 1000

        def __post_init__(self):
            if self.steps < 1 or self.initial_gradient_eval_steps < 1 or self.max_gradient_eval_steps < 1:
                raise BenchInputError(f"hsj needs steps, initial_gradient_eval_steps, max_gradient_eval_steps >= 1; got {self}")

    def run(self, model, x, y, *, budget, num_classes, generator):
        import foolbox

        attack = foolbox.attacks.HopSkipJumpAttack(
            steps=self.cfg.steps, initial_gradient_eval_steps=self.cfg.initial_gradient_eval_steps,
            max_gradient_eval_steps=self.cfg.max_gradient_eval_steps,
            constraint="linf" if budget.norm == "linf" else "l2")
        return foolbox_minimize(attack, model, x, y, generator)
