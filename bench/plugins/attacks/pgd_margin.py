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

from bench.plugins.attacks.base import Attack, per_example, unit_l2
from bench.plugins.attacks.cw import margin
from bench.core.errors import BenchInputError

# margin: max_{i≠y} Z_i − Z_y; ce: cross-entropy (plain PGD); scaled-ce: cross-entropy on logits
# rescaled per example so the largest is 10 (Carlini & Wagner 2016's answer to a saturated softmax).
LOSSES = ("margin", "ce", "scaled-ce")


def _objective(logits, y, loss):
    if loss == "margin":
        return -margin(logits, y).sum()
    if loss == "scaled-ce":
        scale = logits.detach().abs().amax(1, keepdim=True).clamp_min(1e-12) / 10.0
        return F.cross_entropy(logits / scale, y, reduction="sum")
    return F.cross_entropy(logits, y, reduction="sum")


def _project(x_adv, x, norm, eps):
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        norms = per_example(delta.flatten(1).norm(dim=1).clamp_min(1e-12), x)
        delta = delta * torch.clamp(eps / norms, max=1.0)
    return (x + delta).clamp(0, 1)


def pgd(model, x, y, *, norm: str, eps: float, steps: int, alpha: float, loss: str, random_start: bool,
        generator: torch.Generator, eot_draws: int = 1, keep_best: bool = True) -> torch.Tensor:
    """One PGD run maximising `loss` inside the ε-ball. Returns, per example, the first iterate that
    was misclassified (checked at every step, so a success found mid-run is never lost: Pintor et
    al. 2022's "silent success"), else the last iterate. `eot_draws` > 1 averages the gradient over
    that many forward passes (Athalye et al. 2018's EOT, for randomized models)."""
    x_adv = x.clone()
    if random_start:
        from bench.plugins.attacks.noise import sample_in_ball

        x_adv = sample_in_ball(x, norm, eps, generator)
    best = x_adv.detach().clone()
    found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        grad = torch.zeros_like(x_adv)
        for _ in range(eot_draws):
            logits = model(x_adv)
            g, = torch.autograd.grad(_objective(logits, y, loss), x_adv)
            grad = grad + g
        with torch.no_grad():
            fooled = (logits.argmax(1) != y) & ~found & keep_best
            best[fooled] = x_adv.detach()[fooled]
            found |= fooled
            step = grad.sign() if norm == "linf" else unit_l2(grad)
            x_adv = _project(x_adv + alpha * step, x, norm, eps)
    with torch.no_grad():
        last = ~found
        best[last] = x_adv[last]
    return best.detach()


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
        eot_draws: int = 1

        def __post_init__(self):
            if self.steps < 1 or self.restarts < 1 or not self.step_factor > 0 or self.eot_draws < 1:
                raise BenchInputError(f"pgd-margin needs steps >= 1, restarts >= 1, step_factor > 0, "
                                      f"eot_draws >= 1; got {self}")
            if self.loss not in LOSSES:
                raise BenchInputError(f"pgd-margin loss {self.loss!r} unknown; allowed: {', '.join(LOSSES)}")

    @classmethod
    def loss_for(cls, config: dict) -> str:
        return {"margin": "margin", "ce": "ce", "scaled-ce": "logits"}[config.get("loss", "margin")]

    def run(self, model, x, y, *, budget, num_classes, generator):
        cfg = self.cfg
        return pgd_restarts(model, model, x, y, norm=budget.norm, eps=budget.eps, steps=cfg.steps,
                            alpha=cfg.step_factor * budget.eps / cfg.steps, loss=cfg.loss, restarts=cfg.restarts,
                            random_start=cfg.random_start, generator=generator, eot_draws=cfg.eot_draws)


def pgd_restarts(grad_model, model, x, y, *, restarts: int, **pgd_args) -> torch.Tensor:
    """`pgd` on `grad_model` with restarts, each on the examples `model` still classifies correctly;
    per example the first adversarial point found (x itself where none was)."""
    best = x.clone()
    found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for _ in range(restarts):
        todo = (~found).nonzero().squeeze(1)
        if len(todo) == 0:
            break
        x_adv = pgd(grad_model, x[todo], y[todo], **pgd_args)
        with torch.no_grad():
            fooled = model(x_adv).argmax(1) != y[todo]
        best[todo] = x_adv
        found[todo[fooled]] = True
    return best
