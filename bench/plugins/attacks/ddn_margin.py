"""DDN on a logit margin: Rony et al.'s Decoupled Direction and Norm (2019), blind to a saturated softmax.

Our own, because Foolbox's `DDNAttack` (the `ddn` adapter) ascends the cross-entropy, and on a
defensively distilled network the softmax saturates: the cross-entropy gradient underflows to
exactly zero, Foolbox steps along Gaussian noise instead, and the attack loses its way on the very
models a minimal-norm attack is in this suite to expose (Carlini & Wagner 2016; measured in
benchmarks/README.md: median L2 2.29 against C&W's 1.61 on a distilled papernot-mnist).

The loss is the log-sum-exp margin LSE_{i≠y}(Z_i) − Z_y. Its gradient is the cross-entropy's
direction without the cross-entropy's vanishing factor: ∇CE = (1 − p_y) · ∇[LSE_{i≠y}(Z_i) − Z_y]
(∂CE/∂Z_y = p_y − 1 and ∂CE/∂Z_i = p_i = (1 − p_y) · softmax_{j≠y}(Z)_i). DDN normalises every
gradient, so where the softmax is informative the attack takes Foolbox's DDN steps exactly, and
where p_y rounds to 1 it still has a direction (on huge logits the log-sum-exp becomes C&W's hard
margin max_{i≠y} Z_i − Z_y). Everything else is DDN as the paper and Foolbox have it
(tests/test_minimal_norm.py checks success and median L2 against Foolbox's):
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
        others = logits.scatter(1, y[:, None], float("-inf")).logsumexp(1)
        soft_margin = others - logits.gather(1, y[:, None]).squeeze(1)
        # only the input's gradient: nothing accumulates on the model's parameters
        grad, = torch.autograd.grad(soft_margin.sum(), point)
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
    """DDN L2 on the log-sum-exp logit margin (ours), untargeted; minimal-norm."""

    name = "ddn-margin"
    description = "Decoupled Direction and Norm L2 on the log-sum-exp logit margin (ours; blind to softmax saturation), minimal-norm"
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
