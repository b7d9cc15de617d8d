"""The attack adapter contract (docs/architecture.md).

An adapter turns (model, x, y, budget) into x_adv and nothing more: the harness, not the adapter,
re-predicts on x_adv, measures perturbation norms, and rejects anything outside the budget or
[0, 1]. Minimal-norm attacks (C&W, JSMA) may return perturbations larger than the budget (the
smallest they found); the harness counts those as failures at that budget and records their size.
Where an attack fails on an example it returns the clean input for it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from bench.core.specs import Budget


# What an attack is, so that the leaderboard's minimum suite (docs/leaderboard.md) and the masking
# rules (docs/masking.md) can pick attacks by what they do rather than by name: a plugin attack
# that declares its role takes part in both automatically.
ROLES = {
    "gradient": "white-box, follows the model's input gradient",
    "black-box": "score-based, queries the model's outputs only (no gradients)",
    "transfer": "crafted on another model, replayed on the target",
    "random": "random sampling in the budget ball (a sanity baseline)",
    "ensemble": "a reference ensemble of several attacks (AutoAttack)",
    "certificate": "a sound verifier (IBP, CROWN): certifies examples, a lower bound, never an attack",
    "unknown": "undeclared: counted in the worst case, never used by the rules or the minimum suite",
}
LOSSES = {
    "ce": "cross-entropy on the softmax",
    "softmax": "the softmax probabilities themselves (Papernot's JSMA)",
    "margin": "a margin or DLR loss on the logits",
    "logits": "the logits directly",
    "mixed": "several losses (an ensemble)",
    "none": "no loss (random sampling)",
    "unknown": "undeclared",
}


class Attack:
    name: ClassVar[str]
    description: ClassVar[str] = ""
    norms: ClassVar[frozenset[str]]
    minimal_norm: ClassVar[bool] = False
    library: ClassVar[str] = "distill-bench"
    role: ClassVar[str] = "unknown"  # a key of ROLES
    loss: ClassVar[str] = "unknown"  # a key of LOSSES
    single_step: ClassVar[bool] = False  # FGSM-like: one gradient step (a masking check, not an evaluation)
    in_all: ClassVar[bool] = True  # part of `--attacks all`; False for attacks the adaptive stage runs
    # Does the attack follow the model's own input gradient? Then the harness skips it on examples
    # whose gradient is unavailable (a finding, not a crash). BPDA brings its own backward pass.
    needs_input_gradient: ClassVar[bool | None] = None  # None: gradient and ensemble roles do

    @classmethod
    def uses_input_gradient(cls) -> bool:
        if cls.needs_input_gradient is not None:
            return cls.needs_input_gradient
        return cls.role in ("gradient", "ensemble", "unknown")

    @dataclass(frozen=True)
    class Config:
        pass

    def __init__(self, cfg=None):
        self.cfg = cfg if cfg is not None else self.Config()

    @classmethod
    def loss_for(cls, config: dict) -> str:
        """The loss this attack optimises under `config` (a config field may switch it, e.g. JSMA's
        `use_logits`). Recorded in every record so the rules read it without importing the attack."""
        return cls.loss

    @property
    def library_version(self) -> str:
        if self.library == "distill-bench":
            from bench import __version__

            return __version__
        from importlib.metadata import version

        return version(self.library)

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, budget: Budget, num_classes: int,
            generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


@contextlib.contextmanager
def seeded_global_rng(generator: torch.Generator, device: torch.device):
    """Run a library attack that draws from torch's global RNG with a seed taken from `generator`,
    leaving the caller's global RNG state untouched."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def per_example(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-example vector shaped to broadcast over a batch like `like` (N, 1, 1, 1)."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def unit_l2(t: torch.Tensor) -> torch.Tensor:
    """Each example of `t` scaled to L2 norm 1 (zero stays zero)."""
    return t / per_example(t.flatten(1).norm(dim=1).clamp_min(1e-12), t)
