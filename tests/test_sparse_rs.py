"""Sparse-RS, our gradient-free L0 attack, against torchattacks' OnePixel (differential evolution) on
the same model and inputs at the same number of changed features; it needs no gradient at all."""
from __future__ import annotations

import torch
import torchattacks

from bench.plugins.attacks.sparse_rs import SparseRS
from bench.execute.evaluate import run_attack
from bench.core.specs import Budget
from conftest import CPU


def test_sparse_rs_succeeds_at_least_as_often_as_onepixel_within_the_budget(digits, digits_models):
    model = digits_models["vanilla"]
    x, y = digits.eval_slice(40)
    budget = Budget("l0", 0.145)
    k = int(budget.eps * x[0].numel())  # 9 of the 64 features
    ours = run_attack(model, SparseRS(SparseRS.Config(n_queries=300)), x, y, budget, num_classes=10, seed=0,
                      device=CPU, quiet=True)
    correct = model(x).argmax(1) == y
    theirs = torchattacks.OnePixel(model, pixels=k, steps=10, popsize=10)(x[correct], y[correct])
    their_success = float((model(theirs).argmax(1) != y[correct]).float().mean())
    assert ((theirs - x[correct]).flatten(1) != 0).sum(1).max() <= k  # the same threat model
    assert ours.metrics["success_rate"] >= their_success and ours.metrics["success_rate"] > 0.9
    assert ours.per_example["perturbation"].dropna().max() <= budget.eps + 1e-9


def test_sparse_rs_needs_no_gradient(digits, digits_models):
    class NoGraph(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            with torch.no_grad():
                return self.inner(x)

    x, y = digits.eval_slice(20)
    out = run_attack(NoGraph(digits_models["vanilla"]), SparseRS(SparseRS.Config(n_queries=200)), x, y,
                     Budget("l0", 0.145), num_classes=10, seed=0, device=CPU, quiet=True)
    assert out.metrics["success_rate"] > 0.8 and out.metrics["gradient_unavailable"] == 0
