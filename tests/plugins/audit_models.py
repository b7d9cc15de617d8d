"""Models built outside any plugin, for `bench audit --model audit_models:<factory>` tests."""
from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """A linear classifier of 8x8 digits written by hand: logits out, [0, 1] in."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


def tiny():
    return TinyNet().eval()


def probabilities():
    """Returns softmax probabilities instead of logits (a common wrapper mistake)."""
    return nn.Sequential(TinyNet(), nn.Softmax(dim=1)).eval()


class _Scaled(nn.Module):
    def __init__(self, inner, factor):
        super().__init__()
        self.inner, self.factor = inner, factor

    def forward(self, x):
        return self.inner(x) * self.factor


def scaled_probabilities():
    """Softmax × 100: outside [0, 1], yet probabilities up to scale (every row sums to 100)."""
    return _Scaled(probabilities(), 100.0).eval()


def in_train_mode():
    return TinyNet().train()


def broken():
    raise RuntimeError("cannot build the model")


def not_a_module():
    return "a string"
