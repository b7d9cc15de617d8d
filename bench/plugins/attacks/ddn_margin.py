"""DDN on the logit margin: Rony et al.'s Decoupled Direction and Norm (2019) with the loss C&W use.

Our own, because Foolbox's `DDNAttack` (the `ddn` adapter) ascends the cross-entropy, and on a
defensively distilled network the softmax saturates: the cross-entropy gradient underflows to
exactly zero, Foolbox steps along Gaussian noise instead, and the attack fails on the very models
a minimal-norm attack is in this suite to expose (Carlini & Wagner 2016). The margin
Z_y − max_{i≠y} Z_i lives on the logits and keeps its gradient. Everything else is DDN as the
paper and Foolbox have it, so that on an unmasked model the two agree (tests/test_minimal_norm.py
checks success and median L2 against Foolbox's):
  - a step of size α (cosine-annealed from `max_stepsize` to 1% of it) along the L2-normalised
    gradient that lowers the margin;
  - the norm ε shrinks by γ while the current point is adversarial and grows by γ while it is not,
    capped at the largest L2 reachable inside [0, 1];
  - the perturbation is rescaled onto the sphere of radius ε and clipped to [0, 1];
  - the smallest adversarial point seen is kept (the input where none was found).
A zero gradient (a dead ReLU region) is replaced by Gaussian noise from the harness's generator,
as Foolbox does with its global RNG.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bench.core.errors import BenchInputError
from bench.plugins.attacks.base import Attack, per_example, unit_l2
from bench.plugins.attacks.cw import margin


def ddn_margin(model, x: torch.Tensor, y: torch.Tensor, *, steps: int, init_epsilon: float, gamma: float,
               max_stepsize: float, generator: torch.Generator) -> torch.Tensor:
    n = len(x)
    noise_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
    delta = torch.zeros_like(x)
    eps = torch.full((n,), init_epsilon, device=x.device)
    reachable = torch.maximum(x, 1 - x).flatten(1).norm(dim=1)
    best_l2 = torch.full((n,), float("inf"), device=x.device)
    best_adv = x.clone()
    for i in range(steps):
        alpha = 0.01 * max_stepsize + (max_stepsize - 0.01 * max_stepsize) * (1 + math.cos(math.pi * i / steps)) / 2
        point = (x + delta).requires_grad_(True)
        logits = model(point)
        m = margin(logits, y)
        # only the input's gradient: nothing accumulates on the model's parameters
        grad, = torch.autograd.grad(-m.sum(), point)
        with torch.no_grad():
            adversarial = logits.argmax(1) != y
            l2 = delta.flatten(1).norm(dim=1)
            better = adversarial & (l2 < best_l2)
            best_l2 = torch.where(better, l2, best_l2)
            best_adv[better] = point[better].detach()
            dead = grad.flatten(1).norm(dim=1) == 0
            if dead.any():
                grad[dead] = torch.randn(grad[dead].shape, generator=noise_gen).to(grad.device)
            delta = delta + alpha * unit_l2(grad)
            eps = torch.minimum(eps * torch.where(adversarial, 1 - gamma, 1 + gamma), reachable)
            delta = unit_l2(delta) * per_example(eps, delta)
            delta = (x + delta).clamp(0, 1) - x
    return best_adv


class DDNMargin(Attack):
    """DDN L2 on the logit margin (ours), untargeted; minimal-norm."""

    name = "ddn-margin"
    description = "Decoupled Direction and Norm L2 on the logit margin (ours; blind to softmax saturation), minimal-norm"
    norms = frozenset({"l2"})
    role = "gradient"
    loss = "margin"
    minimal_norm = True

    @dataclass(frozen=True)
    class Config:
        """Defaults: DDN's (the paper's and Foolbox's) — 100 steps, initial ε 1.0, γ 0.05, step size
        cosine-annealed from 1.0 to 0.01."""

        steps: int = 100
        init_epsilon: float = 1.0
        gamma: float = 0.05
        max_stepsize: float = 1.0

        def __post_init__(self):
            if self.steps < 1 or not self.init_epsilon > 0 or not 0 < self.gamma < 1 or not self.max_stepsize > 0:
                raise BenchInputError(f"ddn-margin needs steps >= 1, init_epsilon > 0, 0 < gamma < 1, "
                                      f"max_stepsize > 0; got {self}")

    def run(self, model, x, y, *, budget, num_classes, generator):
        c = self.cfg
        return ddn_margin(model, x, y, steps=c.steps, init_epsilon=c.init_epsilon, gamma=c.gamma,
                          max_stepsize=c.max_stepsize, generator=generator)
