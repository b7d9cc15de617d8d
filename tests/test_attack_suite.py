"""The full suite on real digits: every attack succeeds where it must, stays in its budget, and
on the distilled model the suite exposes the masking that cross-entropy attacks fall for."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.plugins.attacks.autoattack import AutoAttackStandard
from bench.plugins.attacks.cw import CarliniWagnerL2
from bench.plugins.attacks.fgsm import FGSM
from bench.plugins.attacks.jsma import JSMA, jsma_targeted
from bench.plugins.attacks.noise import UniformNoise
from bench.plugins.attacks.pgd import PGD
from bench.plugins.attacks.pgd_margin import PGDMargin, pgd
from bench.plugins.attacks.square import Square
from bench.plugins.attacks.transfer import Transfer
from bench.execute.evaluate import run_attack
from bench.core.specs import Budget
from conftest import CPU, DIGITS_BUDGET, train

N = 100


def attack(model, adapter, digits, budget, n=N):
    x, y = digits.eval_slice(n)
    return run_attack(model, adapter, x, y, budget, num_classes=10, seed=0, device=CPU, quiet=True)


def _transfer(digits):
    from defenses.vanilla import Vanilla

    adapter = Transfer()
    adapter.surrogate_model = train(Vanilla, digits, "digits-cnn", seed=1, epochs=30)  # an independent vanilla net
    return adapter


@pytest.mark.parametrize("name, make, budget, floor", [
    ("pgd", lambda d: PGD(), Budget("linf", 0.5), 0.99),
    ("pgd-margin", lambda d: PGDMargin(), Budget("linf", 0.5), 0.99),
    ("pgd-margin l2", lambda d: PGDMargin(), Budget("l2", 3.0), 0.99),
    ("fgsm", lambda d: FGSM(), Budget("linf", 0.5), 0.9),
    ("square", lambda d: Square(Square.Config(n_queries=1000)), Budget("linf", 0.5), 0.99),
    ("autoattack", lambda d: AutoAttackStandard(), Budget("linf", 0.5), 0.99),
    ("transfer", _transfer, Budget("linf", 0.5), 0.9),
    ("jsma", lambda d: JSMA(), Budget("l0", 0.5), 0.97),
])
def test_attack_succeeds_on_undefended_model_at_large_budget_and_stays_inside(name, make, budget, floor,
                                                                               digits, digits_models):
    out = attack(digits_models["vanilla"], make(digits), digits, budget)
    assert out.metrics["success_rate"] >= floor, (name, out.metrics)
    sizes = out.per_example.perturbation.dropna()
    assert (sizes <= budget.eps * (1 + 1e-5) + 1e-6).all()


def test_noise_is_a_weak_baseline_that_stays_in_its_ball(digits, digits_models):
    out = attack(digits_models["vanilla"], UniformNoise(UniformNoise.Config(samples=20)), digits, Budget("linf", 0.1))
    assert out.metrics["robust_acc"] > 0.8 * out.metrics["clean_acc"]
    assert (out.per_example.perturbation.dropna() <= 0.1 + 1e-6).all()


def test_jsma_changes_at_most_gamma_of_the_features(digits, digits_models):
    out = attack(digits_models["vanilla"], JSMA(), digits, Budget("l0", 0.145))
    changed = out.per_example.perturbation.dropna()
    assert len(changed) > 0 and (changed <= 0.145 + 1e-9).all()
    assert out.metrics["success_rate"] > 0.3  # 9 of 64 pixels are enough for many digits


def test_jsma_success_is_at_least_arts(digits, digits_models):
    """Same model, same inputs, same targets, same γ: ours (pairs, θ = +1) vs ART's SaliencyMapMethod,
    both judged as the harness judges every point: a success counts only inside the budget. ART 1.20
    changes up to 10 of digits' 64 features at γ = 0.145 (9.28 allowed; measured on 34 of these 60
    examples), so its raw success rate counts points no record would accept."""
    from art.attacks.evasion import SaliencyMapMethod
    from art.estimators.classification import PyTorchClassifier

    model = digits_models["vanilla"]
    x, y = digits.eval_slice(60)
    target = (y + 1 + torch.randint(0, 9, (len(y),), generator=torch.Generator().manual_seed(0))) % 10
    gamma = 0.145
    ours = jsma_targeted(model, x, target, gamma=gamma, use_logits=False, chunk=16)
    classifier = PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
                                   clip_values=(0.0, 1.0), device_type="cpu")
    art = SaliencyMapMethod(classifier, theta=1.0, gamma=gamma, batch_size=60, verbose=False)
    theirs = torch.from_numpy(art.generate(x.numpy(), y=np.eye(10)[target.numpy()]).astype(np.float32))
    inside = lambda adv: (adv != x).flatten(1).float().mean(1) <= gamma + 1e-9
    with torch.no_grad():
        our_rate = ((model(ours).argmax(1) == target) & inside(ours)).float().mean().item()
        their_rate = ((model(theirs).argmax(1) == target) & inside(theirs)).float().mean().item()
    assert our_rate >= their_rate > 0.2, (our_rate, their_rate)
    assert inside(ours).all()


def test_pgd_loop_matches_torchattacks_with_cross_entropy(digits, digits_models):
    """Our PGD loop (used for the margin loss) is torchattacks' PGD when given its loss."""
    import torchattacks

    model = digits_models["vanilla"]
    x, y = digits.eval_slice(40)
    theirs = torchattacks.PGD(model, eps=0.1, alpha=0.01, steps=10, random_start=False)(x, y)
    ours = pgd(model, x, y, norm="linf", eps=0.1, steps=10, alpha=0.01, loss="ce", random_start=False,
               generator=torch.Generator().manual_seed(0), keep_best=False)
    assert torch.allclose(ours, theirs, atol=1e-6)
    # keeping the best iterate: never fewer successes than the last iterate, and every kept
    # iterate that differs from the last one is itself misclassified (a success found mid-run)
    best = pgd(model, x, y, norm="linf", eps=0.1, steps=10, alpha=0.01, loss="ce", random_start=False,
               generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fooled_best, fooled_last = model(best).argmax(1) != y, model(theirs).argmax(1) != y
    assert fooled_best.sum() >= fooled_last.sum() and bool(fooled_best[fooled_last].all())
    differs = (best - theirs).flatten(1).abs().amax(1) > 0
    assert bool(fooled_best[differs].all())


def test_autoattack_is_at_least_as_strong_as_pgd_on_a_robust_model(digits, robust_digits_models):
    model = robust_digits_models["adversarial-training"]
    budget = Budget("linf", DIGITS_BUDGET["eps"])
    pgd_acc = attack(model, PGD(), digits, budget).metrics["robust_acc"]
    aa = attack(model, AutoAttackStandard(), digits, budget)
    assert aa.metrics["robust_acc"] <= pgd_acc
    # which component broke each example is kept (the masking rules compare its Square with the rest)
    by = aa.per_example["adapter_broken_by"].fillna("")
    broken = aa.per_example["clean_correct"] & ~aa.per_example["adv_correct"]
    assert set(by[broken]) <= {"apgd-ce", "apgd-t", "fab-t", "square"} and (by[broken] != "").all()
    assert (by[~broken] == "").all()
    assert aa.metrics["robust_acc"] > 0.1  # the model is robust; AutoAttack did not just break everything


def test_distilled_model_masks_cross_entropy_but_not_logit_attacks(digits, digits_models):
    """Carlini & Wagner 2016 on real data: PGD on CE leaves the distilled model far more accurate than
    C&W, AutoAttack and PGD on the margin loss do."""
    model = digits_models["student"]
    ce = attack(model, PGD(), digits, Budget("linf", 0.3)).metrics["robust_acc"]
    margin = attack(model, PGDMargin(), digits, Budget("linf", 0.3)).metrics["robust_acc"]
    aa = attack(model, AutoAttackStandard(), digits, Budget("linf", 0.3)).metrics["robust_acc"]
    cw_cfg = CarliniWagnerL2.Config(max_iterations=100, binary_search_steps=5, initial_const=0.1, learning_rate=0.1)
    ce_l2 = attack(model, PGD(), digits, Budget("l2", 1.5)).metrics["robust_acc"]
    cw = attack(model, CarliniWagnerL2(cw_cfg), digits, Budget("l2", 1.5)).metrics["robust_acc"]
    assert ce > margin + 0.5 and ce > aa + 0.5, (ce, margin, aa)
    assert ce_l2 > cw + 0.5, (ce_l2, cw)
