"""The minimal-norm L2 attacks beside C&W on real digits: ours (`ddn-margin`) agrees with Foolbox's
DDN where the softmax is informative, keeps its way where the softmax saturates (the reason it
exists), and matches C&W's perturbations; Foolbox's FMN reaches its minimal points at every norm."""
from __future__ import annotations

import pytest
import torch
from conftest import CPU

from bench.core.specs import Budget
from bench.execute.evaluate import run_attack
from bench.plugins.attacks.cw import CarliniWagnerL2
from bench.plugins.attacks.ddn import DDN
from bench.plugins.attacks.ddn_margin import DDNMargin
from bench.plugins.attacks.fmn import FMN
from bench.plugins.attacks.jsma import JSMA
from bench.plugins.attacks.pgd_margin import PGDMargin

N = 100


def attack(model, adapter, digits, budget):
    x, y = digits.eval_slice(N)
    out = run_attack(model, adapter, x, y, budget, num_classes=10, seed=0, device=CPU, quiet=True)
    return out.metrics, float(out.per_example.perturbation.median())


class Saturated(torch.nn.Module):
    """The vanilla net with its logits ×1000: the same decisions, a softmax saturated in float32
    (the cross-entropy gradient is exactly zero on almost every input), as after defensive
    distillation deployed at T = 1."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x) * 1000.0


def test_ddn_margin_matches_foolbox_ddn_and_cw_on_an_undefended_model(digits, digits_models):
    """Where the softmax is informative, the log-sum-exp margin's normalised gradient is the
    cross-entropy's: the same steps as Foolbox's DDN, to float noise."""
    model = digits_models["vanilla"]
    ours, ours_l2 = attack(model, DDNMargin(), digits, Budget("l2", 1.0))
    foolbox, foolbox_l2 = attack(model, DDN(), digits, Budget("l2", 1.0))
    cw_cfg = CarliniWagnerL2.Config(binary_search_steps=9, max_iterations=100, initial_const=0.1, learning_rate=0.1)
    cw, cw_l2 = attack(model, CarliniWagnerL2(cw_cfg), digits, Budget("l2", 1.0))
    assert ours["unbounded_success_rate"] == foolbox["unbounded_success_rate"] == 1.0
    assert abs(ours_l2 - foolbox_l2) <= 0.01 * foolbox_l2, (ours_l2, foolbox_l2)
    assert ours_l2 <= 1.05 * cw_l2 and ours["robust_acc"] <= cw["robust_acc"] + 0.02, (ours_l2, cw_l2, ours, cw)


def test_ddn_margin_is_blind_to_a_saturated_softmax(digits, digits_models):
    plain = digits_models["vanilla"]
    saturated = Saturated(plain).eval()
    x, y = digits.eval_slice(N)
    x = x.clone().requires_grad_(True)
    ce = torch.nn.functional.cross_entropy(saturated(x), y, reduction="sum")
    zero = (torch.autograd.grad(ce, x)[0].flatten(1).norm(dim=1) == 0).float().mean().item()
    assert zero > 0.9, zero  # the premise: cross-entropy carries no gradient on this model

    ours_plain, plain_l2 = attack(plain, DDNMargin(), digits, Budget("l2", 1.0))
    ours, ours_l2 = attack(saturated, DDNMargin(), digits, Budget("l2", 1.0))
    foolbox, foolbox_l2 = attack(saturated, DDN(), digits, Budget("l2", 1.0))
    # the log-sum-exp margin keeps a direction where the cross-entropy has none: every input reached,
    # at about the perturbations it finds on the unsaturated model
    assert ours["unbounded_success_rate"] == 1.0 and abs(ours_l2 - plain_l2) <= 0.1 * plain_l2, (ours_l2, plain_l2)
    # cross-entropy DDN survives only through its random-noise fallback, and ends no better
    assert ours["robust_acc"] <= foolbox["robust_acc"] and ours_l2 <= foolbox_l2, (ours, foolbox, ours_l2, foolbox_l2)
    assert ours_plain["unbounded_success_rate"] == 1.0


@pytest.mark.parametrize("budget, reference", [
    (Budget("linf", 0.1), PGDMargin()),
    (Budget("l0", 0.1), JSMA()),
])
def test_fmn_is_at_least_as_strong_as_the_suite_at_linf_and_l0(budget, reference, digits, digits_models):
    model = digits_models["vanilla"]
    fmn, _ = attack(model, FMN(), digits, budget)
    ref, _ = attack(model, reference, digits, budget)
    assert fmn["unbounded_success_rate"] >= 0.99
    assert fmn["robust_acc"] <= ref["robust_acc"] + 0.03, (budget, fmn, ref)


def test_fmn_at_l2_reaches_every_input_but_stays_above_ddn(digits, digits_models):
    """Foolbox's L2 FMN is weaker than DDN on the same inputs (measured: median L2 ~0.9 against
    ~0.55 on this model; 2.50 against 1.61 on mnist-5k, benchmarks/README.md): in the suite it adds
    evidence, and the minimal-norm requirement is met by C&W or ddn-margin beside it."""
    model = digits_models["vanilla"]
    fmn, fmn_l2 = attack(model, FMN(), digits, Budget("l2", 1.0))
    _, ddn_l2 = attack(model, DDNMargin(), digits, Budget("l2", 1.0))
    assert fmn["unbounded_success_rate"] >= 0.98
    assert ddn_l2 < fmn_l2


def test_fmn_l0_projection_keeps_epsilon_entries_where_foolbox_keeps_one_more():
    """Foolbox 3.3.4's L0 projection thresholds at sorted position ε and so keeps ε + 1 entries of
    δ; ours (bench/plugins/attacks/fmn.py) keeps ε, and at ε = d, where Foolbox indexes past the
    end, keeps them all."""
    import eagerpy as ep
    import foolbox

    from bench.plugins.attacks.fmn import l0_project

    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(6, 1, 8, 8, generator=gen)
    x = x0 + torch.randn(6, 1, 8, 8, generator=gen)  # no ties among the |δ|
    eps = torch.tensor([1.0, 2.0, 5.0, 17.0, 40.0, 63.0])
    ours = l0_project(ep.astensor(x), ep.astensor(x0), ep.astensor(eps)).raw
    theirs = foolbox.attacks.L0FMNAttack().project(ep.astensor(x), ep.astensor(x0), ep.astensor(eps)).raw
    kept = ((ours - x0).flatten(1) != 0).sum(1)
    assert kept.tolist() == eps.long().tolist()
    assert ((theirs - x0).flatten(1) != 0).sum(1).tolist() == (eps.long() + 1).tolist()
    # the largest entries are the ones kept, unchanged
    top = (x - x0).flatten(1).abs().topk(5, dim=1).indices[2]
    assert torch.equal((ours - x0).flatten(1)[2, top], (x - x0).flatten(1)[2, top])
    full = torch.full((6,), 64.0)
    assert torch.equal(l0_project(ep.astensor(x), ep.astensor(x0), ep.astensor(full)).raw, x)
    with pytest.raises(IndexError):
        foolbox.attacks.L0FMNAttack().project(ep.astensor(x), ep.astensor(x0), ep.astensor(full))


class Confident(torch.nn.Module):
    """Says class 3 whatever the input (a margin of 5 against a gradient of 10⁻³ per pixel): no
    L0 perturbation flips it, so FMN's L0 radius grows by one per step up to the 64 features."""

    def forward(self, x):
        return torch.eye(10)[3] * 5.0 + 1e-3 * x.flatten(1)[:, :10]


def test_fmn_l0_on_a_model_it_cannot_break_is_a_finding_not_a_crash(digits):
    """Foolbox's own L0 FMN raises IndexError once the radius reaches the feature count; ours
    returns every input unbroken."""
    import foolbox

    model = Confident().eval()
    x, y = digits.eval_slice(N)
    with pytest.raises(IndexError):
        foolbox.attacks.L0FMNAttack(steps=80)(foolbox.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=None)
    out = run_attack(model, FMN(FMN.Config(steps=80)), x, y, Budget("l0", 0.1), num_classes=10, seed=0,
                     device=CPU, quiet=True)
    assert out.metrics["unbounded_success_rate"] == 0.0
