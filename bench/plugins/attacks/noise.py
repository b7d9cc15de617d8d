"""Uniform random noise in the budget ball, seeded: the weakest possible attack.

A masking check (Carlini et al. 2019, "On Evaluating Adversarial Robustness", §5): if random
points in the ball find errors that gradient attacks missed, the gradients are misleading.
Several samples per example; the first misclassified one is kept. Written here: the libraries
have no such baseline.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.plugins.attacks.base import Attack, per_example, unit_l2
from bench.core.errors import BenchInputError


def sample_in_ball(x: torch.Tensor, norm: str, eps: float, generator: torch.Generator) -> torch.Tensor:
    """A uniform sample of the L∞ ball, or of the L2 ball (direction ~ Gaussian, radius ~ eps·U^(1/d)),
    clipped to [0, 1]."""
    cpu = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
    if norm == "linf":
        delta = (torch.rand(x.shape, generator=cpu) * 2 - 1) * eps
    else:
        d = x[0].numel()
        direction = unit_l2(torch.randn(x.shape, generator=cpu))
        radius = eps * torch.rand(len(x), generator=cpu) ** (1.0 / d)
        delta = direction * per_example(radius, x)
    return (x + delta.to(x.device)).clamp(0, 1)


class UniformNoise(Attack):
    """Uniform random points in the ε-ball (seeded); keeps the first that is misclassified."""

    name = "noise"
    description = "uniform random noise in the budget ball, several samples (masking check)"
    norms = frozenset({"linf", "l2"})
    role = "random"
    loss = "none"

    @dataclass(frozen=True)
    class Config:
        """samples: draws per example (Carlini et al. 2019 suggest random noise as a sanity check;
        100 draws make it a meaningful one at little cost)."""

        samples: int = 100

        def __post_init__(self):
            if self.samples < 1:
                raise BenchInputError(f"noise needs samples >= 1, got {self.samples}")

    def run(self, model, x, y, *, budget, num_classes, generator):
        best = x.clone()
        found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        with torch.no_grad():
            for _ in range(self.cfg.samples):
                candidate = sample_in_ball(x, budget.norm, budget.eps, generator)
                fooled = (model(candidate).argmax(1) != y) & ~found
                best[fooled] = candidate[fooled]
                found |= fooled
                if found.all():
                    break
        return best
