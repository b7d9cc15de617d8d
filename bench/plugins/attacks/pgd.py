"""PGD (Madry et al. 2018) from torchattacks: L∞ (`PGD`) and L2 (`PGDL2`) on cross-entropy.

The step size scales with the budget, α = step_factor · ε / steps, so the attack stays calibrated
across budget sweeps (2.5 ε / steps is the rule of Madry et al.'s robustness library). Restarts
keep, per example, the first adversarial example found.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.plugins.attacks.base import Attack, model_device, seeded_global_rng
from bench.core.errors import BenchInputError


class PGD(Attack):
    """Projected gradient descent on cross-entropy (torchattacks), L∞ or L2, random start, restarts."""

    name = "pgd"
    description = "projected gradient descent on cross-entropy (torchattacks PGD / PGDL2), random start"
    norms = frozenset({"linf", "l2"})
    role = "gradient"
    loss = "ce"
    library = "torchattacks"

    @dataclass(frozen=True)
    class Config:
        """Defaults: 40 steps with a random start, as in Madry et al. 2018's MNIST evaluation (§5 and
        their mnist_challenge config); α = 2.5 ε / steps (Madry et al.'s robustness library); 1 restart."""

        steps: int = 40
        step_factor: float = 2.5
        random_start: bool = True
        restarts: int = 1

        def __post_init__(self):
            if self.steps < 1 or self.restarts < 1 or not self.step_factor > 0:
                raise BenchInputError(f"pgd needs steps >= 1, restarts >= 1, step_factor > 0; got {self}")

    def run(self, model, x, y, *, budget, num_classes, generator):
        import torchattacks

        alpha = self.cfg.step_factor * budget.eps / self.cfg.steps
        if budget.norm == "linf":
            attack = torchattacks.PGD(model, eps=budget.eps, alpha=alpha, steps=self.cfg.steps,
                                      random_start=self.cfg.random_start)
        else:
            attack = torchattacks.PGDL2(model, eps=budget.eps, alpha=alpha, steps=self.cfg.steps,
                                        random_start=self.cfg.random_start)
        best = x.clone()
        found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        with seeded_global_rng(generator, model_device(model)):
            for _ in range(self.cfg.restarts):
                todo = ~found
                if not todo.any():
                    break
                x_adv = attack(x[todo], y[todo])
                with torch.no_grad():
                    fooled = model(x_adv).argmax(1) != y[todo]
                idx = todo.nonzero().squeeze(1)
                best[idx] = x_adv
                found[idx[fooled]] = True
        return best
