"""Third-party-style plugins used as controls for the masking diagnosis and the adaptive stage,
one per family of gradient masking (registered through entry points by tests/test_controls.py,
exactly as an installed package would register them):

(a) `binarized-digits-cnn`: inputs binarized at 0.5 with `(x > 0.5).float()`, which leaves the
    autograd graph (no input gradient at all); declares the identity as its BPDA approximation;
(b) `noisy-digits-cnn`: Gaussian noise added inside the forward, at inference too (randomized);
(c) `shattered-digits-cnn`: identity forward with a backward that returns noise (gradients available
    and finite, but useless);
(d) `gaussian-augmentation`: a defense that trains on noisy inputs and is deterministic at
    inference: nothing masked, must not be flagged.
All wrap the plain `digits-cnn`, their `base`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.plugins.archs import ARCHS, ArchInfo
from defenses.base import Defense, TrainingConfig


class BinarizeInput(nn.Module):
    def forward(self, x):
        return (x > 0.5).float()  # a new tensor with no graph: the input gradient is gone

    def approximation(self, x):
        return x  # BPDA: binarization ≈ identity (Athalye et al. 2018 §4.1)


class GaussianNoiseInput(nn.Module):
    sigma = 0.3

    def forward(self, x):
        return x + self.sigma * torch.randn_like(x)


class _NoisyBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return torch.randn_like(grad)  # the true gradient is thrown away


class NoisyBackward(nn.Module):
    def forward(self, x):
        return _NoisyBackward.apply(x)


_base = ARCHS["digits-cnn"]
BINARIZED = ArchInfo("binarized-digits-cnn", "digits-cnn behind input binarization at 0.5 (no input gradient)",
                     _base.build, _base.min_side, input_transform=BinarizeInput, base="digits-cnn")
NOISY = ArchInfo("noisy-digits-cnn", "digits-cnn with Gaussian noise (σ 0.3) added at inference",
                 _base.build, _base.min_side, input_transform=GaussianNoiseInput, base="digits-cnn")
SHATTERED = ArchInfo("shattered-digits-cnn", "digits-cnn behind an identity whose backward returns noise",
                     _base.build, _base.min_side, input_transform=NoisyBackward, base="digits-cnn")


class GaussianAugmentation(Defense):
    """Cross-entropy on inputs with Gaussian noise added during training only."""

    name = "gaussian-augmentation"

    @dataclass(frozen=True)
    class Config(TrainingConfig):
        sigma: float = 0.3

    def train(self, cfg, ctx, upstream):
        model = ctx.create_model()

        def loss_fn(m, x, y):
            logits = m((x + cfg.sigma * torch.randn_like(x)).clamp(0, 1))
            return F.cross_entropy(logits, y), logits

        return ctx.fit(model, loss_fn, cfg.optim())


# --- third-party architectures that declare no `base` (issue 24, item 6) -------------------------
class NumpyRoundTrip(nn.Module):
    def forward(self, x):
        return torch.from_numpy(x.detach().cpu().numpy()).to(x.device)  # leaves the autograd graph


class LabelOnly(nn.Module):
    """In eval mode the scores are a scaled one-hot of the argmax: no information, no gradient."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        out = self.body(x)
        if self.training:
            return out
        return 10.0 * torch.nn.functional.one_hot(out.argmax(1), out.shape[1]).float()


ROUNDTRIP = ArchInfo("roundtrip-digits-cnn", "digits-cnn behind a NumPy round trip, no base declared",
                     _base.build, _base.min_side, input_transform=NumpyRoundTrip)
OBFUSCATED = ArchInfo("obfuscated-digits-cnn", "digits-cnn behind a noisy backward, no base declared",
                      _base.build, _base.min_side, input_transform=NoisyBackward)
LABEL_ONLY = ArchInfo("label-only-digits-cnn", "digits-cnn whose eval-mode output is a scaled one-hot, no base declared",
                      lambda c, hw, k: LabelOnly(_base.build(c, hw, k)), _base.min_side)
