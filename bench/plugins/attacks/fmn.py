"""Fast Minimum-Norm attack (Pintor et al. 2021, "Fast Minimum-norm Adversarial Attacks through
Adaptive Norm Constraints"), from Foolbox (`L0FMNAttack`, `L2FMNAttack`, `LInfFMNAttack`).

Minimal-norm in about 100 steps for L0, L2 and L∞: a normalised step on the logit difference
Z_y − max_{i≠y} Z_i, then a projection onto an Lp ball whose radius shrinks by γ while the point is
adversarial and, before the first success, jumps to a linear estimate of the distance to the
boundary. Because its loss is a logit margin, it is blind to softmax saturation, like C&W.

At L0 the projection is ours, not Foolbox 3.3.4's. Foolbox keeps the entries of δ at least as large
as the one at sorted position ε (0-based), which keeps ε + 1 of them, and indexes past the end when
the radius reaches the number of features (it is clipped to that, its worst norm, before the first
success): `IndexError: index 64 is out of bounds for dimension 1 with size 64`, measured on a
teacher-assistant chain on digits under `--attacks all`. `l0_project` keeps the ε largest
(threshold at position ε − 1, ε clipped to [1, d]); tests/test_minimal_norm.py checks both against
Foolbox's.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.core.errors import BenchInputError
from bench.plugins.attacks.base import Attack
from bench.plugins.attacks.foolbox_minimize import foolbox_minimize


def l0_project(x, x0, epsilon):
    """x0 + the `epsilon` largest-magnitude entries of x − x0 per example (eagerpy tensors, as
    Foolbox's `project`); ties at the threshold keep them all, as Foolbox does."""
    import eagerpy as ep
    import torch

    delta = (x - x0).raw.flatten(1)
    k = epsilon.raw.round().long().clamp(1, delta.shape[1])
    magnitude = delta.abs()
    threshold = magnitude.sort(dim=1, descending=True).values.gather(1, (k - 1).unsqueeze(1))
    kept = torch.where(magnitude >= threshold, delta, torch.zeros_like(delta))
    return x0 + ep.astensor(kept.reshape(x0.raw.shape).to(x0.raw.dtype))


def _l0_attack():
    import foolbox

    class L0FMN(foolbox.attacks.L0FMNAttack):
        def project(self, x, x0, epsilon):
            return l0_project(x, x0, epsilon)

    return L0FMN


class FMN(Attack):
    """FMN (Foolbox), untargeted, logit margin; minimal-norm at L0, L2 or L∞."""

    name = "fmn"
    description = "Fast Minimum-Norm (Foolbox FMN, L0/L2/L∞), logit margin, minimal-norm in ~100 steps"
    norms = frozenset({"l0", "l2", "linf"})
    role = "gradient"
    loss = "margin"
    minimal_norm = True
    library = "foolbox"

    @dataclass(frozen=True)
    class Config:
        """Defaults: Foolbox's and the paper's — 100 steps, step size cosine-annealed from
        `max_stepsize` (1.0) to a hundredth of it, γ 0.05 (annealed to 0.001)."""

        steps: int = 100
        max_stepsize: float = 1.0
        gamma: float = 0.05

        def __post_init__(self):
            if self.steps < 1 or not self.max_stepsize > 0 or not 0 < self.gamma < 1:
                raise BenchInputError(f"fmn needs steps >= 1, max_stepsize > 0, 0 < gamma < 1; got {self}")

    def run(self, model, x, y, *, budget, num_classes, generator):
        import foolbox

        cls = {"l0": _l0_attack(), "l2": foolbox.attacks.L2FMNAttack,
               "linf": foolbox.attacks.LInfFMNAttack}[budget.norm]
        attack = cls(steps=self.cfg.steps, max_stepsize=self.cfg.max_stepsize, gamma=self.cfg.gamma)
        return foolbox_minimize(attack, model, x, y, generator)
