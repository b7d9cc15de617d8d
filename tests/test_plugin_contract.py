"""Every registered plugin passes its contract, built-in or third-party (as timm tests every entry
of `list_models()`): the lists below are read from the registries at collection time, so a newly
registered or installed plugin is tested without anyone adding it here.

- a defense trains on a tiny split (its upstream nodes first) and returns an eval-mode model that
  the store reloads bit-identically (weights and outputs);
- an attack declares a known role and loss, supports at least one norm, and, run on a real model
  at each norm it supports, returns finite inputs in [0, 1] inside the budget (a minimal-norm attack
  may go beyond it: the harness counts that as a failure at the budget); a certifier (role
  "certificate") returns a verdict per example;
- an architecture builds for an input of its minimum side, outputs logits (N, K), and rebuilds from
  its name and weights to the same outputs.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from bench.core.errors import BenchInputError
from bench.core.specs import Budget
from bench.execute.runner import Runner
from bench.plan.nodes import plan_model
from bench.plugins.archs import all_archs, create_model
from bench.plugins.attacks.base import LOSSES, ROLES
from bench.plugins.registry import ATTACKS, DEFENSES
from bench.store.artifacts import Store
from conftest import CPU

TRAINABLE = [name for name in DEFENSES.names() if name != "external"]  # external: audited, never trained
# small settings so that every contract runs in seconds; an attack plugin's unknown fields are left alone
FAST_ATTACK = {"max_iterations": 20, "binary_search_steps": 2, "n_queries": 100, "steps": 5, "restarts": 1,
               "samples": 5, "n_iter": 5, "iterations": 5, "eot_iter": 2, "draws": 2}
FAST_DEFENSE = {"pgd_steps": 2}


@pytest.fixture(scope="module")
def tiny_digits(digits):
    """256 training images of digits: enough to train one epoch of anything."""
    return dataclasses.replace(digits, x_train=digits.x_train[:256], y_train=digits.y_train[:256])


@pytest.mark.parametrize("name", TRAINABLE)
def test_defense_trains_to_an_eval_mode_model_the_store_reloads_bit_identically(name, tiny_digits, tmp_path):
    cls = DEFENSES.get(name).obj
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    overrides = {k: str(v) for k, v in FAST_DEFENSE.items() if k in fields}
    node = plan_model(name, overrides, arch="digits-cnn", dataset="digits", seed=0, epochs=1)
    store = Store(tmp_path / "runs")
    model = Runner(store, tiny_digits, CPU, quiet=True, log=lambda m: None).model(node)
    assert not model.training, f"{name} returned a model in train mode"
    reloaded = Store(tmp_path / "runs").load_model(node.model_id, tiny_digits, CPU)
    assert not reloaded.training
    ours, theirs = model.state_dict(), reloaded.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours), f"{name}: reloaded weights differ"
    x = tiny_digits.x_test[:16]
    with torch.no_grad():
        assert torch.equal(model(x), reloaded(x))


def test_the_external_defense_refuses_to_train_with_one_line():
    cls = DEFENSES.get("external").obj
    with pytest.raises(BenchInputError, match="audited, not trained"):
        cls().train(cls.Config(), None, {})


def _fast(cls):
    fields = {f.name: f for f in dataclasses.fields(cls.Config)}
    values = {k: type(fields[k].default)(v) for k, v in FAST_ATTACK.items()
              if k in fields and isinstance(fields[k].default, (int, float)) and not isinstance(fields[k].default, bool)}
    return cls(cls.Config(**values))


BUDGETS = {"linf": 0.3, "l2": 2.0, "l0": 0.145}


@pytest.mark.parametrize("name", ATTACKS.names())
def test_attack_declares_its_role_and_stays_inside_its_budget_and_the_input_range(name, digits, digits_models):
    cls = ATTACKS.get(name).obj
    assert cls.role in ROLES and cls.loss_for({}) in LOSSES, f"{name}: role {cls.role!r} / loss {cls.loss_for({})!r}"
    assert cls.norms and set(cls.norms) <= set(BUDGETS), f"{name} supports {cls.norms}"
    model = digits_models["vanilla"]
    x, y = digits.eval_slice(8)
    if cls.role == "certificate":  # a verifier returns a verdict per example, never inputs
        for norm in sorted(cls.norms):
            ok, details = _fast(cls).certify(model, x, y, budget=Budget(norm, BUDGETS[norm] / 100))
            assert ok.shape == (len(y),) and ok.dtype == torch.bool and isinstance(details, dict)
        return
    for norm in sorted(cls.norms):
        attack = _fast(cls)
        if getattr(cls, "surrogate", None):  # transfer: the harness hands it the surrogate model
            attack.surrogate_model = model
        budget = Budget(norm, BUDGETS[norm])
        x_adv = attack.run(model, x.clone(), y.clone(), budget=budget, num_classes=10,
                           generator=torch.Generator().manual_seed(0))
        assert x_adv.shape == x.shape and torch.isfinite(x_adv).all()
        assert x_adv.min() >= 0 and x_adv.max() <= 1, f"{name} at {norm} leaves [0, 1]"
        delta = (x_adv - x).flatten(1)
        size = {"linf": delta.abs().max(1).values, "l2": delta.norm(dim=1),
                "l0": (delta.abs() > 1e-6).float().mean(1)}[norm]
        if not cls.minimal_norm:
            assert (size <= BUDGETS[norm] * (1 + 1e-5) + 1e-6).all(), f"{name} at {norm} leaves its budget"


@pytest.mark.parametrize("name", sorted(all_archs()))
def test_architecture_builds_and_rebuilds_from_its_name_and_weights(name, digits):
    info = all_archs()[name]
    side = max(info.min_side, 8)
    shape = (1, side, side)
    data = dataclasses.replace(digits, name=f"contract-{side}", shape=shape)
    model = create_model(name, data).eval()
    again = create_model(name, data).eval()
    again.load_state_dict(model.state_dict())
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
        assert out.shape == (4, data.num_classes) and torch.isfinite(out).all()
        assert torch.equal(out, again(x)), f"{name} does not rebuild from its weights"
