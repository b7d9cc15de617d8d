"""PGD on the Carlini-Wagner margin loss, max_{i≠y} Z_i − Z_y, L∞ or L2.

Our own, because torchattacks' PGD and PGDL2 optimise cross-entropy only. The margin loss works
on logits, so it is blind to a saturated softmax: where `pgd` (cross-entropy) stalls on a
defensively distilled model and `pgd-margin` does not, the gap is gradient masking (docs/masking.md,
rule 6). Same schedule as `pgd` (α = step_factor · ε / steps, random start, restarts), so the two
columns differ only by the loss; the test suite checks that with cross-entropy swapped in, this
loop matches torchattacks' PGD.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.attacks.base import Attack, per_example, unit_l2
from bench.attacks.cw import margin
from bench.errors import BenchInputError

LOSSES = ("margin", "ce")


def _project(x_adv, x, norm, eps):
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        norms = per_example(delta.flatten(1).norm(dim=1).clamp_min(1e-12), x)
        delta = delta * torch.clamp(eps / norms, max=1.0)
    return (x + delta).clamp(0, 1)


def pgd(model, x, y, *, norm: str, eps: float, steps: int, alpha: float, loss: str, random_start: bool,
        generator: torch.Generator) -> torch.Tensor:
    """One PGD run maximising `loss` ("margin" or "ce") inside the ε-ball."""
    x_adv = x.clone()
    if random_start:
        from bench.attacks.noise import sample_in_ball

        x_adv = sample_in_ball(x, norm, eps, generator)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        logits = model(x_adv)
        objective = -margin(logits, y).sum() if loss == "margin" else F.cross_entropy(logits, y, reduction="sum")
        grad, = torch.autograd.grad(objective, x_adv)
        with torch.no_grad():
            if norm == "linf":
                step = grad.sign()
            else:
                step = unit_l2(grad)
            x_adv = _project(x_adv + alpha * step, x, norm, eps)
    return x_adv.detach()


class PGDMargin(Attack):
    """PGD on the C&W margin loss (logits), L∞ or L2, random start, restarts."""

    name = "pgd-margin"
    description = "PGD on the Carlini-Wagner margin loss over logits (blind to softmax saturation)"
    norms = frozenset({"linf", "l2"})
    role = "gradient"
    loss = "margin"

    @dataclass(frozen=True)
    class Config:
        """Same schedule as `pgd` (40 steps, α = 2.5 ε / steps, random start) so that the CE and
        margin columns differ only by the loss; loss 'ce' gives plain PGD on cross-entropy."""

        steps: int = 40
        step_factor: float = 2.5
        random_start: bool = True
        restarts: int = 1
        loss: str = "margin"

        def __post_init__(self):
            if self.steps < 1 or self.restarts < 1 or not self.step_factor > 0:
                raise BenchInputError(f"pgd-margin needs steps >= 1, restarts >= 1, step_factor > 0; got {self}")
            if self.loss not in LOSSES:
                raise BenchInputError(f"pgd-margin loss {self.loss!r} unknown; allowed: {', '.join(LOSSES)}")

    def run(self, model, x, y, *, budget, num_classes, generator):
        cfg = self.cfg
        best = x.clone()
        found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(cfg.restarts):
            todo = (~found).nonzero().squeeze(1)
            if len(todo) == 0:
                break
            x_adv = pgd(model, x[todo], y[todo], norm=budget.norm, eps=budget.eps, steps=cfg.steps,
                        alpha=cfg.step_factor * budget.eps / cfg.steps, loss=cfg.loss,
                        random_start=cfg.random_start, generator=generator)
            with torch.no_grad():
                fooled = model(x_adv).argmax(1) != y[todo]
            best[todo] = x_adv
            found[todo[fooled]] = True
        return best
