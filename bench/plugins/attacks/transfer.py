"""Transfer attack: PGD crafted on a surrogate (the `vanilla` model of the same dataset,
architecture and seed, a DAG node shared with the rest of the run), evaluated on the target.

A masking check (Athalye et al. 2018; Carlini et al. 2019): if examples made without the
target's gradients fool it more than its own white-box attacks do, its gradients are masked.
The attack loop is PGD on cross-entropy from torchattacks, as in `pgd`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from bench.plugins.attacks.base import Attack, model_device, seeded_global_rng
from bench.core.errors import BenchInputError


class Transfer(Attack):
    """PGD examples crafted on the vanilla surrogate model, replayed on the target."""

    name = "transfer"
    description = "PGD on the vanilla model of the same dataset/arch, replayed on the target (masking check)"
    norms = frozenset({"linf", "l2"})
    role = "transfer"
    loss = "ce"
    library = "torchattacks"
    surrogate: ClassVar[str] = "vanilla"  # the harness trains (or reuses) this node and sets surrogate_model

    @dataclass(frozen=True)
    class Config:
        """PGD settings on the surrogate, as `pgd` (40 steps, α = 2.5 ε / steps, random start)."""

        steps: int = 40
        step_factor: float = 2.5
        # 'vanilla': the undefended model of the same dataset, base architecture and seed; 'teacher':
        # the model's own upstream teacher (distillation), attacked at its training temperature so its
        # softmax does not saturate (Carlini & Wagner 2016). A model with no teacher uses 'vanilla'.
        source: str = "vanilla"

        def __post_init__(self):
            if self.steps < 1 or not self.step_factor > 0:
                raise BenchInputError(f"transfer needs steps >= 1 and step_factor > 0; got {self}")
            if self.source not in ("vanilla", "teacher"):
                raise BenchInputError(f"transfer source {self.source!r} unknown; allowed: vanilla, teacher")

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self.surrogate_model = None
        self.surrogate_temperature = 1.0  # set by the harness for a teacher trained at T

    def run(self, model, x, y, *, budget, num_classes, generator):
        import torchattacks

        if self.surrogate_model is None:
            raise RuntimeError("transfer: the harness did not provide the surrogate model")
        surrogate = self.surrogate_model.eval()
        if self.surrogate_temperature != 1.0:
            surrogate = _Tempered(surrogate, self.surrogate_temperature)
        alpha = self.cfg.step_factor * budget.eps / self.cfg.steps
        cls = torchattacks.PGD if budget.norm == "linf" else torchattacks.PGDL2
        with seeded_global_rng(generator, model_device(model)):
            return cls(surrogate, eps=budget.eps, alpha=alpha, steps=self.cfg.steps, random_start=True)(x, y)


class _Tempered(torch.nn.Module):
    """The surrogate's logits divided by its training temperature."""

    def __init__(self, model, temperature: float):
        super().__init__()
        self.model, self.temperature = model, temperature

    def forward(self, x):
        return self.model(x) / self.temperature
