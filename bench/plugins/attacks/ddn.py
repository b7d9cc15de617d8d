"""Decoupled Direction and Norm (Rony et al. 2019, "Decoupling Direction and Norm for Efficient
Gradient-Based L2 Adversarial Attacks and Defenses"), from Foolbox (`DDNAttack`).

A minimal-norm L2 attack in about 100 steps where C&W's binary search takes 9 × 100 or more: each
step moves along the normalised gradient, then rescales the perturbation to a norm ε that shrinks
by γ while the point is adversarial and grows by γ while it is not. AttackBench (Cinà et al.
2024) ranks Foolbox's implementation first among L2 attacks.

It ascends the cross-entropy, whose gradient underflows to exactly zero on a saturated softmax
(defensive distillation); Foolbox then steps along Gaussian noise, so on masked models DDN fails
where C&W does not — a finding rule R3 reads. `ddn-margin` is the same algorithm on the logit
margin, for those models.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.core.errors import BenchInputError
from bench.plugins.attacks.base import Attack
from bench.plugins.attacks.foolbox_minimize import foolbox_minimize


class DDN(Attack):
    """DDN L2 (Foolbox), untargeted, cross-entropy; minimal-norm."""

    name = "ddn"
    description = "Decoupled Direction and Norm L2 (Foolbox DDNAttack), cross-entropy, minimal-norm in ~100 steps"
    norms = frozenset({"l2"})
    role = "gradient"
    loss = "ce"
    minimal_norm = True
    library = "foolbox"

    @dataclass(frozen=True)
    class Config:
        """Defaults: the paper's and Foolbox's — 100 steps, initial ε 1.0, γ 0.05 (the norm moves by
        5% per step), step size cosine-annealed from 1 to 0.01."""

        steps: int = 100
        init_epsilon: float = 1.0
        gamma: float = 0.05

        def __post_init__(self):
            if self.steps < 1 or not self.init_epsilon > 0 or not 0 < self.gamma < 1:
                raise BenchInputError(f"ddn needs steps >= 1, init_epsilon > 0, 0 < gamma < 1; got {self}")

    def run(self, model, x, y, *, budget, num_classes, generator):
        import foolbox

        attack = foolbox.attacks.DDNAttack(init_epsilon=self.cfg.init_epsilon, steps=self.cfg.steps,
                                           gamma=self.cfg.gamma)
        return foolbox_minimize(attack, model, x, y, generator)
