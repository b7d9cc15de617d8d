"""An example distill-bench plugin package from outside the project.

- `label-smoothing`, a defense: label smoothing (Szegedy et al. 2016) softens one-hot targets; it
  is sometimes reported to add robustness, which a worst-case evaluation shows to be mostly
  gradient masking. It ships the attack adapted to it (`adaptive_attacks`): margin-loss PGD with
  restarts, since smoothing changes the softmax, not the logits' ranking.
- `acme-quantized-papernot-mnist`, an architecture: the Papernot MNIST net behind 4-level input
  quantization, whose rounding has a zero gradient almost everywhere; it declares the identity as
  the differentiable approximation BPDA uses (Athalye et al. 2018 §4.1), and its undefended base.

Install this package (`pip install examples/acme-defenses`): `bench list defenses` and
`bench list archs` show them.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.plugins.archs import ARCHS, ArchInfo
from defenses.base import Defense, TrainingConfig


class LabelSmoothing(Defense):
    """Cross-entropy against labels smoothed towards uniform."""

    name = "label-smoothing"
    description = "cross-entropy with label smoothing (example third-party plugin)"

    @dataclass(frozen=True)
    class Config(TrainingConfig):
        """smoothing 0.1: Szegedy et al. 2016, §7. Optimisation: distill-bench's TrainingConfig."""

        smoothing: float = 0.1

    def train(self, cfg, ctx, upstream):
        model = ctx.create_model()  # normalization inside; the store rebuilds it from its arch

        def loss_fn(m, x, y):
            logits = m(x)
            return F.cross_entropy(logits, y, label_smoothing=cfg.smoothing), logits

        return ctx.fit(model, loss_fn, cfg.optim())

    def adaptive_attacks(self, cfg):
        return [("pgd-margin", {"restarts": 3})]


class Quantize(nn.Module):
    """Inputs rounded to `levels` grey levels (in pixel space, before normalization)."""

    levels = 4

    def forward(self, x):
        return torch.round(x * (self.levels - 1)) / (self.levels - 1)

    def approximation(self, x):
        return x  # BPDA: rounding ≈ identity


QUANTIZED_MNIST = ArchInfo(
    "acme-quantized-papernot-mnist", "Papernot MNIST net behind 4-level input quantization (example plugin)",
    ARCHS["papernot-mnist"].build, ARCHS["papernot-mnist"].min_side, input_transform=Quantize,
    base="papernot-mnist")
