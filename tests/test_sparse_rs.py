"""Sparse-RS, our gradient-free L0 attack, against torchattacks' OnePixel (differential evolution) on
the same model and inputs at the same number of changed features; it needs no gradient at all."""
from __future__ import annotations

import pytest
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


def test_l0_budgets_of_one_or_more_count_features():
    """`--norm l0 --eps 5,10,20,40`: pixel counts (issue 20: budgets at which models differ), planned as
    the fractions the attacks take; Sparse-RS then changes exactly that many features."""
    from bench.core.errors import BenchInputError
    from bench.plan.budgets import budget_plan

    plan = budget_plan(["sparse-rs"], ("l0",), (5.0, 10.0, 0.25), "mnist", (1, 28, 28), attacks_named=True)
    assert [b.eps for _, b in plan] == [5 / 784, 10 / 784, 0.25]
    assert [max(1, int(b.eps * 784 + 1e-9)) for _, b in plan[:2]] == [5, 10]  # Sparse-RS's k
    for bad, message in ((2.5, "must be a whole number"), (785.0, "more features than an input has (784)")):
        with pytest.raises(BenchInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            budget_plan(["sparse-rs"], ("l0",), (bad,), "mnist", (1, 28, 28), attacks_named=True)


def test_a_page_names_an_l0_budget_by_its_count_of_features():
    from bench.report.curves import budget_text

    assert budget_text("l0", 5 / 784, "mnist-5k") == "0.00637755 (5 of 784 features)"
    assert budget_text("l0", 0.145, "mnist-5k") == "0.145"  # not a whole count: the fraction only
    assert budget_text("linf", 0.3, "mnist-5k") == "0.3" and budget_text("l0", 0.25, "no-such-dataset") == "0.25"
