"""The certifier contract: a sound verifier of a model at a budget, the lower half of the sandwich.

A certifier registers under `distill_bench.attacks` like an attack (it runs at each budget, its
result is a cached record with one outcome per example), but declares role "certificate" and
never returns inputs: `certify` says, per example, whether no input in the ball can change the
prediction away from the true label. The harness keeps its records out of the worst case (an
upper bound) and shows them as the "certified" column beside it (docs/certified.md); a certified
example that some attack broke is a bug the assessment reports.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from bench.core.errors import AttackContractError
from bench.core.specs import Budget
from bench.plugins.attacks.base import Attack
from bench.plugins.bounds import NotCertifiable, chain_of


class Certifier(Attack):
    role: ClassVar[str] = "certificate"
    loss: ClassVar[str] = "none"
    needs_input_gradient: ClassVar[bool | None] = False
    norms: ClassVar[frozenset[str]] = frozenset({"linf", "l2"})

    def margins(self, ops, x: torch.Tensor, y: torch.Tensor, budget: Budget) -> tuple[torch.Tensor, dict]:
        """Lower bounds (N, K−1) of z_y − z_j over the ball, and what was done (for the record)."""
        raise NotImplementedError

    def certify(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, budget: Budget) -> tuple[torch.Tensor, dict]:
        """(certified per example, details). Raises NotCertifiable when the model has a part the
        bounds cannot follow."""
        ops = chain_of(model)
        with torch.no_grad():
            margins, details = self.margins(ops, x, y, budget)
        return (margins > 0).all(1), details

    def run(self, model, x, y, *, budget, num_classes, generator):
        raise AttackContractError(f"{self.name} is a certifier: it certifies examples and returns no inputs")


__all__ = ["Certifier", "NotCertifiable"]
