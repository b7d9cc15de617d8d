"""The binarization test (bench/execute/binarization.py) on real digits: the suite's attacks find
the adversarial point that exists by construction; a weakened attack and a do-nothing attack do not."""
from __future__ import annotations

import pytest
import torch
from conftest import CPU

from bench.core.specs import Budget
from bench.execute.binarization import binarization_test, binarize
from bench.plugins.attacks.autoattack import AutoAttackStandard
from bench.plugins.attacks.base import Attack
from bench.plugins.attacks.pgd_margin import PGDMargin

N = 20


class ReturnsItsInput(Attack):
    name = "returns-its-input"
    norms = frozenset({"linf", "l2"})
    role = "gradient"
    loss = "margin"

    def run(self, model, x, y, *, budget, num_classes, generator):
        return x.clone()


def binarized_run(model, attack, digits, budget):
    x, y = digits.eval_slice(N)
    return binarization_test(model, attack, x, y, budget, num_classes=10, seed=0, device=CPU)


@pytest.mark.parametrize("attack", [PGDMargin(), AutoAttackStandard()], ids=["pgd-margin", "autoattack"])
@pytest.mark.parametrize("budget", [Budget("linf", 0.1), Budget("l2", 0.5)], ids=["linf", "l2"])
def test_the_suites_attacks_pass_on_an_undefended_model(attack, budget, digits, digits_models):
    result = binarized_run(digits_models["vanilla"], attack, digits, budget)
    assert len(result.counted) >= 10, result.to_json()
    assert result.passed and result.success_rate == 1.0, result.to_json()


@pytest.mark.parametrize("attack", [PGDMargin(PGDMargin.Config(steps=3, step_factor=0.3)), ReturnsItsInput()],
                         ids=["three-short-steps", "returns-its-input"])
def test_a_weakened_attack_fails(attack, digits, digits_models):
    result = binarized_run(digits_models["vanilla"], attack, digits, Budget("linf", 0.1))
    assert len(result.counted) >= 10
    assert result.passed is False and result.success_rate < 0.5, result.to_json()


def test_the_binarized_model_has_an_adversarial_point_inside_the_budget(digits, digits_models):
    """By construction: the readout classifies x as its label and a point of the ε-ball's surface
    as the adversarial class; the rest of the network is the model's own, unchanged."""
    model = digits_models["vanilla"].eval()
    x, y = digits.eval_slice(5)
    gen = torch.Generator().manual_seed(0)
    budget = Budget("linf", 0.1)
    for i in range(5):
        binary, valid, _ = binarize(model, x[i], int(y[i]), budget, 10, gen)
        assert valid
        with torch.no_grad():
            assert binary(x[i:i + 1]).argmax(1).item() == int(y[i])
        before = dict(model.named_parameters())
        for name, p in binary.named_parameters():  # every parameter but the head's is the model's own
            assert torch.equal(p, before[name])
