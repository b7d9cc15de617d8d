"""Gradient-masking diagnostics: every rule fires where it must and stays quiet where it must
not, and the controls prove the whole: defensive distillation and a defense that only breaks
gradients are flagged; vanilla and PGD adversarial training are not."""
from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch

from bench.attacks.cw import CarliniWagnerL2
from bench.attacks.fgsm import FGSM
from bench.attacks.noise import UniformNoise
from bench.attacks.pgd import PGD
from bench.attacks.pgd_margin import PGDMargin
from bench.attacks.square import Square
from bench.evaluate import run_attack
from bench.masking import RULES, AttackResult, ModelResults, diagnose
from bench.probes import probe_model
from bench.specs import Budget
from conftest import CPU

N = 60


# --- unit tests of each rule on hand-made outcomes ---------------------------------------------
def _result(correct: list[bool], **metrics) -> AttackResult:
    series = pd.Series(correct, index=range(len(correct)), dtype=bool)
    return AttackResult(float(series.mean()), series, {"robust_acc": float(series.mean()), **metrics})


def _acc(k: int, n: int = 100) -> list[bool]:
    return [True] * k + [False] * (n - k)


def _model(by_threat, probes=None, reference=None, n=100):
    return ModelResults("m", "id", n, by_threat, probes, reference)


CLEAN = {"zero_grad_share": 0.0, "saturated_share": 0.02, "logit_l1_median": 50.0, "model_id": "ref"}
RULE = {r.__name__: r for r in RULES}

CASES = {
    # rule: (outcomes where it fires, outcomes where it does not)
    "rule_fgsm_beats_pgd": (
        _model({("linf", 0.3): {"fgsm": _result(_acc(20)), "pgd": _result(_acc(60))}}),
        _model({("linf", 0.3): {"fgsm": _result(_acc(70)), "pgd": _result(_acc(60))}})),
    "rule_black_box_beats_white_box": (
        _model({("linf", 0.3): {"square": _result(_acc(10)), "pgd": _result(_acc(80))}}),
        _model({("linf", 0.3): {"square": _result(_acc(62)), "pgd": _result(_acc(60))}})),
    "rule_unbounded_attack_fails": (
        _model({("l2", 2.0): {"cw": _result(_acc(50), unbounded_success_rate=0.7)}}),
        _model({("l2", 2.0): {"cw": _result(_acc(50), unbounded_success_rate=1.0)}})),
    "rule_noise_beats_gradients": (
        _model({("linf", 0.3): {"noise": _result(_acc(50)), "pgd": _result(_acc(90))}}),
        _model({("linf", 0.3): {"noise": _result(_acc(95)), "pgd": _result(_acc(90))}})),
    "rule_budget_does_not_break": (
        _model({("linf", 0.1): {"pgd": _result(_acc(30))}, ("linf", 0.3): {"pgd": _result(_acc(60))}}),
        _model({("linf", 0.1): {"pgd": _result(_acc(60))}, ("linf", 0.3): {"pgd": _result(_acc(5))}})),
    "rule_ce_vs_margin_gap": (
        _model({("linf", 0.3): {"pgd": _result(_acc(85)), "pgd-margin": _result(_acc(5))}}),
        _model({("linf", 0.3): {"pgd": _result(_acc(60)), "pgd-margin": _result(_acc(45))}})),
    "rule_probes": (
        _model({}, {"zero_grad_share": 0.9, "saturated_share": 1.0, "logit_l1_median": 6000.0, "model_id": "x"}, CLEAN),
        _model({}, {"zero_grad_share": 0.0, "saturated_share": 0.1, "logit_l1_median": 60.0, "model_id": "x"}, CLEAN)),
    "rule_apparent_vs_actual": (
        _model({("linf", 0.3): {"pgd": _result(_acc(85)), "square": _result(_acc(0))}}),
        _model({("linf", 0.3): {"pgd": _result(_acc(45)), "square": _result(_acc(44))}})),
}


def test_every_rule_has_cases():
    assert set(CASES) == set(RULE)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_fires_with_evidence(rule):
    finding = RULE[rule](CASES[rule][0])
    assert finding.evaluated and finding.fired and finding.evidence and finding.source and finding.threshold


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_stays_quiet(rule):
    finding = RULE[rule](CASES[rule][1])
    assert finding.evaluated and not finding.fired


def test_rules_without_data_are_not_evaluated():
    diagnosis = diagnose(_model({}))
    assert diagnosis.fired == [] and diagnosis.evaluated == []
    assert diagnosis.verdict.startswith("not diagnosed")


# --- controls on real models ---------------------------------------------------------------------
class QuantizedInput(torch.nn.Module):
    """A test-only 'defense': inputs rounded to 4 grey levels. Rounding has zero gradient almost
    everywhere, so gradient attacks see nothing, yet the model is no more robust."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 3) / 3)


def _saturating(model):
    """A test-only 'defense': the vanilla model with logits scaled 10,000x (same decisions)."""
    scaled = copy.deepcopy(model)
    scaled.logit_scale.fill_(1e4)
    return scaled


def _diagnose(model, digits, reference_probes):
    x, y = digits.eval_slice(N)
    suites = {
        ("linf", 0.2): [PGD(), PGDMargin(), FGSM(), Square(Square.Config(n_queries=500)),
                        UniformNoise(UniformNoise.Config(samples=20))],
        ("l2", 1.0): [PGD(), CarliniWagnerL2(CarliniWagnerL2.Config(max_iterations=100, binary_search_steps=5,
                                                                   initial_const=0.1, learning_rate=0.1))],
    }
    by_threat = {}
    for (norm, eps), attacks in suites.items():
        for adapter in attacks:
            out = run_attack(model, adapter, x, y, Budget(norm, eps), num_classes=10, seed=0, device=CPU, quiet=True)
            frame = out.per_example.set_index("index")
            by_threat.setdefault((norm, eps), {})[adapter.name] = AttackResult(
                out.metrics["robust_acc"], frame["adv_correct"].astype(bool), out.metrics)
    probes = {**probe_model(model, x, y, CPU), "model_id": str(id(model))}
    return diagnose(ModelResults("control", str(id(model)), N, by_threat, probes, reference_probes))


@pytest.fixture(scope="module")
def vanilla_probes(digits, digits_models):
    x, y = digits.eval_slice(N)
    return {**probe_model(digits_models["vanilla"], x, y, CPU), "model_id": "vanilla"}


def test_defensive_distillation_is_flagged(digits, digits_models, vanilla_probes):
    diagnosis = _diagnose(digits_models["student"], digits, vanilla_probes)
    assert {"R6", "R7", "R8"} <= set(diagnosis.fired), diagnosis.verdict


@pytest.mark.parametrize("wrap, expected", [(_saturating, {"R6", "R7"}), (QuantizedInput, {"R2", "R7"})])
def test_a_defense_that_only_breaks_gradients_is_flagged(wrap, expected, digits, digits_models, vanilla_probes):
    diagnosis = _diagnose(wrap(digits_models["vanilla"]), digits, vanilla_probes)
    assert expected <= set(diagnosis.fired), diagnosis.verdict


@pytest.mark.parametrize("which", ["vanilla", "adversarial-training"])
def test_vanilla_and_adversarial_training_are_not_flagged(which, digits, digits_models, robust_digits_models,
                                                          vanilla_probes):
    model = digits_models["vanilla"] if which == "vanilla" else robust_digits_models[which]
    diagnosis = _diagnose(model, digits, vanilla_probes)
    assert diagnosis.fired == [], [f for f in diagnosis.findings if f.fired]
    assert len(diagnosis.evaluated) >= 6
