"""BPDA (Athalye et al. 2018 §4.1, Backward Pass Differentiable Approximation): PGD on the margin
loss where the forward pass is the model's own and the backward pass goes through a differentiable
approximation of its non-differentiable input transform: the approximation the architecture
declares (`input_transform.approximation(x)`), or the identity (the straight-through estimator,
right for transforms that keep x close to itself: binarization, quantization, JPEG, denoising).

Ours: no library implements BPDA generically; it reuses our PGD loop (best iterate kept). On a
model without an input transform it has nothing to approximate and returns the clean inputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.plugins.attacks.base import Attack
from bench.core.errors import BenchInputError


class _StraightThrough(nn.Module):
    """Forward: the transform's output. Backward: the gradient of its approximation."""

    def __init__(self, transform: nn.Module):
        super().__init__()
        self.transform = transform

    def forward(self, x):
        approx = self.transform.approximation(x) if hasattr(self.transform, "approximation") else x
        with torch.no_grad():
            exact = self.transform(x.detach())
        return approx + (exact - approx).detach()


class _BPDAModel(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.ste = _StraightThrough(model.input_transform)

    def forward(self, x):
        m = self.model
        x = self.ste(x)
        return m.body((x - m.mean) / m.std) * m.logit_scale


class BPDA(Attack):
    """PGD on the margin loss through a differentiable approximation of the input transform."""

    name = "bpda"
    description = "BPDA: margin PGD, backward pass through the declared approximation (or identity) of the input transform"
    norms = frozenset({"linf", "l2"})
    role = "gradient"
    loss = "margin"
    in_all = False  # run by the adaptive stage when input gradients are unavailable
    needs_input_gradient = False  # its backward pass goes through the approximation

    @dataclass(frozen=True)
    class Config:
        """100 steps (Athalye et al. use hundreds; 40 suffice on MNIST-sized models), α = 2.5 ε / steps,
        random start, 3 restarts."""

        steps: int = 100
        step_factor: float = 2.5
        restarts: int = 3

        def __post_init__(self):
            if self.steps < 1 or self.restarts < 1 or not self.step_factor > 0:
                raise BenchInputError(f"bpda needs steps >= 1, restarts >= 1, step_factor > 0; got {self}")

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self.notes: list[str] = []

    def run(self, model, x, y, *, budget, num_classes, generator):
        from bench.plugins.attacks.pgd_margin import pgd_restarts

        if getattr(model, "input_transform", None) is None:
            note = "bpda: the model declares no input transform; nothing to approximate (inputs returned clean)"
            if note not in self.notes:
                self.notes.append(note)
            return x.clone()
        surrogate = _BPDAModel(model).eval()
        return pgd_restarts(surrogate, model, x, y, norm=budget.norm, eps=budget.eps, steps=self.cfg.steps,
                            alpha=self.cfg.step_factor * budget.eps / self.cfg.steps, loss="margin",
                            restarts=self.cfg.restarts, random_start=True, generator=generator)
