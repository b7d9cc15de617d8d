"""Gradient-masking diagnostics: every rule fires where it must and stays quiet where it must
not, and the controls prove the whole: defensive distillation and a defense that only breaks
gradients are flagged; vanilla and PGD adversarial training are not."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from bench.assess.assessment import ModelAssessment, assess
from bench.plugins.attacks.cw import CarliniWagnerL2
from bench.plugins.attacks.fgsm import FGSM
from bench.plugins.attacks.noise import UniformNoise
from bench.plugins.attacks.pgd import PGD
from bench.plugins.attacks.pgd_margin import PGDMargin
from bench.plugins.attacks.square import Square
from bench.execute.evaluate import run_attack
from bench.assess.masking import RULES, diagnose
from bench.execute.probes import probe_model
from bench.core.specs import Budget
from conftest import CPU
from recordkit import make_record, model_spec, probes, result_set

N = 60
MODEL = model_spec("00000000000000aa")
REFERENCE = model_spec("00000000000000bb")


# --- unit tests of each rule on hand-made outcomes ---------------------------------------------
def _acc(k: int, n: int = 100) -> list[bool]:
    return [True] * k + [False] * (n - k)


def _model(by_threat, probe=None, reference=None, fooled=None):
    """An assessment of MODEL from {(norm, eps): {attack: survived list}} (and probes)."""
    records = [make_record(MODEL, attack, norm, eps, survived,
                           fooled_any_size=(fooled or {}).get(attack))
               for (norm, eps), attacks in by_threat.items() for attack, survived in attacks.items()]
    probe_list = [p for p in (probe, reference) if p]
    if not records:  # a model with probes but no record yet
        records = []
    rs = result_set(records, [MODEL, REFERENCE], probe_list)
    if not records:
        from bench.assess.evidence import ModelEvidence
        from bench.store.records import ModelInfo

        ref = rs.probes_of(REFERENCE["model_id"], "digits") if reference else None
        return ModelAssessment.of(ModelEvidence(ModelInfo.from_spec(MODEL), {}, rs.probes_of(MODEL["model_id"], "digits"),
                                                None, ref))
    m = assess(rs)[MODEL["model_id"]]
    if reference:  # the hand-made reference has no vanilla spec match by design: set it directly
        m = ModelAssessment.of(dataclasses.replace(m, reference_probes=rs.probes_of(REFERENCE["model_id"], "digits")))
    return m


CLEAN = probes(REFERENCE["model_id"], logit_l1=50.0, saturated=0.02)
RULE = {r.__name__: r for r in RULES}

# The 'quiet' cases include gaps that a fixed slack would have flagged or that the paired test
# must call chance.
CASES = {
    # rule: (outcomes where it fires, outcomes where it does not)
    "rule_fgsm_beats_pgd": (
        lambda: _model({("linf", 0.3): {"fgsm": _acc(20), "pgd": _acc(60)}}),
        lambda: _model({("linf", 0.3): {"fgsm": _acc(70), "pgd": _acc(60)}})),
    "rule_black_box_beats_white_box": (
        lambda: _model({("linf", 0.3): {"square": _acc(10), "pgd": _acc(80)}}),
        lambda: _model({("linf", 0.3): {"square": _acc(62), "pgd": _acc(60)}})),
    "rule_unbounded_attack_fails": (
        lambda: _model({("l2", 2.0): {"cw": _acc(50)}}, fooled={"cw": [False] * 50 + _acc(20, 50)}),
        lambda: _model({("l2", 2.0): {"cw": _acc(50)}}, fooled={"cw": [True] * 100})),
    "rule_noise_beats_gradients": (
        lambda: _model({("linf", 0.3): {"noise": _acc(50), "pgd": _acc(90)}}),
        lambda: _model({("linf", 0.3): {"noise": _acc(95), "pgd": _acc(90)}})),
    "rule_budget_does_not_break": (
        lambda: _model({("linf", 0.1): {"pgd": _acc(30)}, ("linf", 0.3): {"pgd": _acc(60)}}),
        lambda: _model({("linf", 0.1): {"pgd": _acc(60)}, ("linf", 0.3): {"pgd": _acc(5)}})),
    "rule_ce_vs_margin_gap": (
        lambda: _model({("linf", 0.3): {"pgd": _acc(85), "pgd-margin": _acc(5)}}),
        lambda: _model({("linf", 0.3): {"pgd": _acc(60), "pgd-margin": _acc(45)}})),
    "rule_probes": (
        lambda: _model({}, probes(MODEL["model_id"], zero=0.9, saturated=1.0, logit_l1=6000.0), CLEAN),
        lambda: _model({}, probes(MODEL["model_id"], zero=0.0, saturated=0.1, logit_l1=60.0), CLEAN)),
    "rule_randomized": (
        lambda: _model({}, probes(MODEL["model_id"], randomized=0.4)),
        lambda: _model({}, probes(MODEL["model_id"], randomized=0.0))),
    "rule_gradients_unavailable": (
        lambda: _model({}, probes(MODEL["model_id"], unavailable=1.0)),
        lambda: _model({}, probes(MODEL["model_id"]))),
    "rule_apparent_vs_actual": (
        lambda: _model({("linf", 0.3): {"pgd": _acc(85), "square": _acc(0)}}),
        lambda: _model({("linf", 0.3): {"pgd": _acc(45), "square": _acc(44)}})),
}


def test_every_rule_has_cases():
    assert set(CASES) == set(RULE)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_fires_with_evidence(rule):
    finding = RULE[rule](CASES[rule][0]())
    assert finding.evaluated and finding.fired and finding.evidence and finding.source and finding.threshold


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_stays_quiet(rule):
    finding = RULE[rule](CASES[rule][1]())
    assert finding.evaluated and not finding.fired


def test_r3_judges_the_union_of_minimal_norm_attacks_one_that_stops_short_is_w4_not_masking():
    """C&W stopped short on half the examples; DDN on the margin reached them all: the gradients work,
    so R3 (masking) stays quiet and W4 (that attack's weakness) is what the adaptive stage answers."""
    short = {"cw": [False] * 50 + _acc(20, 50), "ddn-margin": [True] * 100}
    finding = RULE["rule_unbounded_attack_fails"](_model({("l2", 2.0): {"cw": _acc(50), "ddn-margin": _acc(50)}},
                                                         fooled=short))
    assert finding.evaluated and not finding.fired
    both_short = {"cw": [False] * 50 + _acc(20, 50), "ddn-margin": _acc(30)}  # 50-69 and 0-29
    finding = RULE["rule_unbounded_attack_fails"](_model({("l2", 2.0): {"cw": _acc(50), "ddn-margin": _acc(50)}},
                                                         fooled=both_short))
    evidence = finding.evidence["l2 2"]
    assert finding.fired and evidence["unbounded_success"] == 0.5  # 20 + 30 of 100 reached by either
    assert evidence["per_attack"] == {"cw": 0.2, "ddn-margin": 0.3}


def _with_autoattack_components(square_broke: list[int], margin_survived: int):
    """AutoAttack broke examples 0..59 with APGD-T and `square_broke` with its Square; pgd-margin
    leaves the first `margin_survived` robust."""
    by = ["apgd-t" if i < 60 else "" for i in range(100)]
    for i in square_broke:
        by[i] = "square"
    aa_survived = [b == "" for b in by]
    records = [make_record(MODEL, "autoattack", "linf", 0.3, aa_survived, columns={"adapter_broken_by": by}),
               make_record(MODEL, "pgd-margin", "linf", 0.3, [i >= 60 and i < 60 + margin_survived or i >= 100
                                                              for i in range(100)])]
    return assess(result_set(records, [MODEL, REFERENCE]))[MODEL["model_id"]]


def test_r2_with_autoattack_components_asks_autoattacks_own_question():
    # Square inside AutoAttack broke 10 examples that every white-box attack left robust: masking
    fired = RULE["rule_black_box_beats_white_box"](_with_autoattack_components(list(range(60, 70)), 40))
    assert fired.fired and fired.evidence["linf 0.3"]["broken_only_by_black_box"] == 10
    # Square broke 2 examples that pgd-margin had broken anyway (a TRADES-like model): not masking
    quiet = RULE["rule_black_box_beats_white_box"](_with_autoattack_components([98, 99], 30))
    assert quiet.evaluated and not quiet.fired


def test_r6_compares_losses_at_their_strongest_autoattacks_apgd_ce_included():
    """PGD-CE (40 steps) leaves 80, APGD-T 30: on its own that is a 50-point CE-vs-margin gap. If
    AutoAttack's APGD-CE alone already leaves only 35, cross-entropy was merely run weakly: no masking."""
    def model(apgd_ce_breaks: int):
        by = ["apgd-ce" if i < apgd_ce_breaks else ("apgd-t" if i < 70 else "") for i in range(100)]
        records = [make_record(MODEL, "autoattack", "linf", 0.3, [b == "" for b in by], columns={"adapter_broken_by": by}),
                   make_record(MODEL, "pgd", "linf", 0.3, _acc(80)[::-1]),
                   make_record(MODEL, "apgd", "linf", 0.3, [i >= 70 for i in range(100)],
                               attack_config={"component": "apgd-t"})]
        return assess(result_set(records, [MODEL, REFERENCE]))[MODEL["model_id"]]

    assert not RULE["rule_ce_vs_margin_gap"](model(65)).fired  # APGD-CE leaves 35: a weak PGD, not masking
    assert RULE["rule_ce_vs_margin_gap"](model(5)).fired  # APGD-CE leaves 95 too: the loss is blind


def test_rules_without_data_are_not_evaluated():
    diagnosis = _model({}).diagnosis
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
    """Run a small real suite on `model` and diagnose it through the same path as the leaderboard."""
    x, y = digits.eval_slice(N)
    suites = {
        ("linf", 0.2): [PGD(), PGDMargin(), FGSM(), Square(Square.Config(n_queries=500)),
                        UniformNoise(UniformNoise.Config(samples=20))],
        ("l2", 1.0): [PGD(), CarliniWagnerL2(CarliniWagnerL2.Config(max_iterations=100, binary_search_steps=5,
                                                                   initial_const=0.1, learning_rate=0.1))],
    }
    records = []
    for (norm, eps), attacks in suites.items():
        for adapter in attacks:
            out = run_attack(model, adapter, x, y, Budget(norm, eps), num_classes=10, seed=0, device=CPU, quiet=True)
            rec, _ = make_record(MODEL, adapter.name, norm, eps, [True] * N)
            records.append((rec, out.per_example))
    own = {**probes(MODEL["model_id"], n=N), **probe_model(model, x, y, CPU), "model_id": MODEL["model_id"]}
    m = assess(result_set(records, [MODEL, REFERENCE], [own, reference_probes]))[MODEL["model_id"]]
    return diagnose(dataclasses.replace(m, reference_probes=next(p for p in result_set([], [], [reference_probes]).probes)))


@pytest.fixture(scope="module")
def vanilla_probes(digits, digits_models):
    x, y = digits.eval_slice(N)
    return {**probes(REFERENCE["model_id"], n=N), **probe_model(digits_models["vanilla"], x, y, CPU),
            "model_id": REFERENCE["model_id"]}


def test_defensive_distillation_is_flagged(digits, digits_models, vanilla_probes):
    diagnosis = _diagnose(digits_models["student"], digits, vanilla_probes)
    assert {"R6", "R7"} <= set(diagnosis.fired), diagnosis.verdict
    # PGD-CE's claim is far above the worst case, but a margin-loss gradient attack closes the gap:
    # R8 reports a weak attack rather than firing twice for the same saturation
    r8 = next(f for f in diagnosis.findings if f.rule == "R8")
    assert r8.evaluated and "weak attack, not masking" in r8.evidence


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


def test_r7_never_fires_on_saturation_of_the_undefended_model_itself_only_on_its_dlr_gradients():
    """A long-trained vanilla model saturates its softmax (75% of mnist-5k's test inputs after 50
    epochs): it is its own R7 reference, so saturation alone is the baseline, not a finding. The
    same probes on a defense with no reference in the store fire R7; zero DLR gradients fire it
    on the undefended model too."""
    from bench.assess.evidence import ModelEvidence
    from bench.assess.probe_rules import rule_probes
    from bench.store.records import ModelInfo

    saturated = probes(MODEL["model_id"], zero=0.0, saturated=0.75)
    rs = result_set([], [MODEL], [saturated])
    p = rs.probes_of(MODEL["model_id"], "digits")
    vanilla = rule_probes(ModelEvidence(ModelInfo.from_spec(MODEL), {}, p, None, None))
    assert vanilla.evaluated and not vanilla.fired
    assert vanilla.evidence["reference_model"].startswith("itself")
    defended = rule_probes(ModelEvidence(ModelInfo.from_spec(model_spec("00000000000000cc", "defensive-distillation")),
                                         {}, p, None, None))
    assert defended.fired
    dead_probes = {**probes(MODEL["model_id"], zero=0.9, saturated=0.75), "zero_dlr_grad_share": 0.9}
    dead = result_set([], [MODEL], [dead_probes]).probes_of(MODEL["model_id"], "digits")
    assert rule_probes(ModelEvidence(ModelInfo.from_spec(MODEL), {}, dead, None, None)).fired


def test_the_assessment_knows_which_model_is_its_own_reference():
    from bench.assess.reference import is_own_reference
    from bench.store.records import ModelInfo

    assert is_own_reference(ModelInfo.from_spec(MODEL))
    assert not is_own_reference(ModelInfo.from_spec(model_spec("00000000000000cc", "defensive-distillation")))
    assert not is_own_reference(ModelInfo.from_spec(model_spec("00000000000000dd", config={"epochs": 5, "temperature": 100})))
