"""Attack-failure indicators (issue 24, items 1-3; Pintor et al. 2022) from the harness's own view of
each attack's queries (bench/execute/observer.py): a silent success is judged and counted, a point
outside the budget never is; an attack stopped after two steps is flagged (W3), its remedy runs and
the flag clears; a minimal-norm attack that never breaks some examples is flagged (W4) until an
attack breaks them at some size."""
from __future__ import annotations

import json

import pytest
import torch

from bench.core.specs import Budget
from bench.execute.evaluate import run_attack
from bench.plugins.attacks.base import Attack
from bench.plugins.attacks.pgd_margin import PGDMargin
from recordkit import make_record, model_spec, probes, result_set

CPU = torch.device("cpu")


class SilentPGD(Attack):
    """Runs our margin PGD on the model it is given, then returns the clean inputs: every success
    of PGD is silent."""

    name, norms, loss, role = "silent-pgd", frozenset({"linf"}), "margin", "gradient"

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self.inner = PGDMargin(PGDMargin.Config())

    def run(self, model, x, y, *, budget, num_classes, generator):
        self.inner.run(model, x, y, budget=budget, num_classes=num_classes, generator=generator)
        return x


class OutsideQuery(Attack):
    """Queries the model at points far outside the budget (the other examples' images, which it
    misclassifies as the wrong label), then returns the clean inputs."""

    name, norms, loss, role = "outside-query", frozenset({"linf"}), "margin", "gradient"

    def run(self, model, x, y, *, budget, num_classes, generator):
        model(x.roll(1, 0))
        return x


def _run(model, attack, x, y, eps=0.1):
    return run_attack(model, attack, x, y, Budget("linf", eps), num_classes=10, seed=0, device=CPU, quiet=True)


def test_a_silent_success_is_judged_by_the_harness_and_counted(digits, digits_models):
    model = digits_models["vanilla"].eval()
    x, y = digits.x_test[:60], digits.y_test[:60]
    pgd = _run(model, PGDMargin(PGDMargin.Config()), x, y)
    silent = _run(model, SilentPGD(), x, y)
    assert pgd.metrics["robust_acc"] < pgd.metrics["clean_acc"] - 0.2  # PGD breaks examples at ε 0.1
    assert silent.metrics["robust_acc"] == pytest.approx(pgd.metrics["robust_acc"], abs=2 / 60)
    broken = int(((silent.per_example.clean_correct) & ~silent.per_example.adv_correct).sum())
    assert silent.metrics["silent_success"] == broken > 0
    assert silent.per_example["silent_success"].sum() == broken
    assert any("silent success" in n for n in silent.notes)
    assert pgd.metrics["silent_success"] == 0  # PGD returns its best point itself
    # the harness saw every query: 40 steps + the final check per example
    attacked = silent.per_example[silent.per_example.clean_correct]
    assert (attacked.trace_queries > 40).all()


def test_a_query_outside_the_budget_is_never_counted(digits, digits_models):
    model = digits_models["vanilla"].eval()
    x, y = digits.x_test[:60], digits.y_test[:60]
    outside = _run(model, OutsideQuery(), x, y)
    assert outside.metrics["robust_acc"] == outside.metrics["clean_acc"]
    assert outside.metrics["silent_success"] == 0


def test_an_attack_that_queries_subsets_is_traced_on_every_example(digits, digits_models):
    """Square queries only the examples it has not broken yet: each row is matched to its example."""
    from bench.plugins.attacks.square import Square

    model = digits_models["vanilla"].eval()
    x, y = digits.x_test[:40], digits.y_test[:40]
    out = _run(model, Square(Square.Config(n_queries=200)), x, y)
    attacked = out.per_example[out.per_example.clean_correct]
    assert (attacked.trace_queries > 1).all()
    robust = attacked[attacked.adv_correct]
    assert (robust.trace_queries >= 200).all()


def test_an_attack_stopped_after_two_steps_is_flagged_its_remedy_runs_and_the_flag_clears(tmp_path, capsys):
    """Through the command line: margin PGD with 2 steps leaves examples whose margin still rises at
    the end (W3); without the adaptive stage the row is not ranked for that reason; with it, PGD with
    200 steps and APGD-CE with 500 iterations run, the indicator clears and the row is ranked."""
    from bench.cli import main

    args = ["run", "--defense", "vanilla", "--dataset", "digits", "--epochs", "10", "--attacks",
            "pgd,pgd-margin,autoattack,square", "--norm", "linf", "--eps", "0.1", "--n-eval", "40",
            "--set", "square.n_queries=300",
            "--set", "pgd-margin.steps=2", "--set", "pgd-margin.step_factor=0.5", "--quiet", "--out", str(tmp_path)]
    assert main([*args, "--no-adaptive"]) == 0
    board = json.loads((tmp_path / "leaderboard.json").read_text())
    (model,) = board["models"].values()
    w3 = next(f for f in model["strength"] if f["rule"] == "W3")
    assert w3["fired"] and w3["evidence"]["linf 0.1"]["still improving per attack"]["pgd-margin"] >= 2
    rows = {r["attack"]: r for r in model["indicators"]["linf 0.1"]}
    assert rows["pgd-margin"]["still_improving"] >= 2 and rows["pgd-margin"]["traced"] > 0
    (row,) = board["pages"][0]["tables"][0]["rows"]
    assert not row["ranked"] and any("W3" in r and "pgd-margin (steps=200)" in r for r in row["reasons"])
    capsys.readouterr()
    assert main(["leaderboard", "publish", "--out", str(tmp_path), "--dest", str(tmp_path / "pub")]) == 0
    page = (tmp_path / "pub" / "models" / f"{next(iter(board['models']))}.md").read_text()
    assert "## Attack-failure indicators" in page and "| pgd-margin |" in page

    assert main(args) == 0
    board = json.loads((tmp_path / "leaderboard.json").read_text())
    (model,) = board["models"].values()
    w3 = next(f for f in model["strength"] if f["rule"] == "W3")
    assert not w3["fired"]
    (row,) = board["pages"][0]["tables"][0]["rows"]
    assert row["ranked"], row["reasons"]


AT = model_spec("c000000000000002", "adversarial-training", {"epochs": 5})
N = 100


def _minimal(attack, survived, fooled_any_size, config=None):
    rec, frame = make_record(AT, attack, "l2", 1.5, survived, fooled_any_size=fooled_any_size, attack_config=config)
    rec["spec"]["attack"]["minimal_norm"] = True
    return rec, frame


def test_a_minimal_norm_attack_that_never_breaks_examples_is_flagged_until_one_does():
    from bench.assess.assessment import assess

    robust = [True] * 60 + [False] * 40
    cw = _minimal("cw", robust, [False] * 50 + [True] * 50)  # 50 of the 60 robust never broken at any size
    pgd = make_record(AT, "pgd-margin", "l2", 1.5, robust)
    m = assess(result_set([cw, pgd], [AT]))[AT["model_id"]]
    w4 = next(f for f in m.diagnosis.strength if f.rule == "W4")
    assert w4.fired and w4.evidence["l2 1.5"]["robust examples no minimal-norm attack broke at any size"] == 50
    assert any("W4" in r and "ddn-margin (steps=1000)" in r for r in m.rank_blockers(("l2", 1.5)))

    ddn = _minimal("ddn-margin", robust, [False] * 60 + [True] * 40, {"steps": 1000})
    fmn = _minimal("fmn", robust, [True] * 100, {"steps": 1000})  # breaks every example at some size
    m = assess(result_set([cw, pgd, ddn, fmn], [AT]))[AT["model_id"]]
    w4 = next(f for f in m.diagnosis.strength if f.rule == "W4")
    assert w4.evaluated and not w4.fired
    assert not any("W4" in r for r in m.rank_blockers(("l2", 1.5)))


def test_an_indicator_that_persists_after_its_remedies_keeps_the_row_unranked():
    from bench.assess.assessment import assess

    robust = [True] * 60 + [False] * 40
    cw = _minimal("cw", robust, [False] * 50 + [True] * 50)
    pgd = make_record(AT, "pgd-margin", "l2", 1.5, robust)
    ddn = _minimal("ddn-margin", robust, [False] * 50 + [True] * 50, {"steps": 1000})
    fmn = _minimal("fmn", robust, [False] * 50 + [True] * 50, {"steps": 1000})
    m = assess(result_set([cw, pgd, ddn, fmn], [AT]))[AT["model_id"]]
    assert any("W4 still fires after its remedies ran" in r for r in m.rank_blockers(("l2", 1.5)))


def test_a_transfer_that_fooled_only_its_surrogate_prescribes_an_attack_that_queries_the_model():
    """W5 (Pintor et al. 2022, transfer failure): transfer points that fooled the surrogate and not the
    model on robust examples. The row then needs Square (restarts 3) as its black-box evidence."""
    from bench.assess.assessment import assess

    robust = [True] * 60 + [False] * 40
    fooled_surrogate = {"surrogate_fooled": [True] * 30 + [False] * 30 + [True] * 40}
    transfer = make_record(AT, "transfer", "l2", 1.5, robust, columns=fooled_surrogate)
    pgd = make_record(AT, "pgd-margin", "l2", 1.5, robust)
    m = assess(result_set([transfer, pgd], [AT]))[AT["model_id"]]
    w5 = next(f for f in m.diagnosis.strength if f.rule == "W5")
    assert w5.fired and "on 30 robust examples" in w5.evidence["l2 1.5"]["transfer"]
    assert any("W5" in r and "square (restarts=3)" in r for r in m.rank_blockers(("l2", 1.5)))

    square = make_record(AT, "square", "l2", 1.5, robust, attack_config={"restarts": 3})
    m = assess(result_set([transfer, pgd, square], [AT]))[AT["model_id"]]
    assert not any("W5" in r for r in m.rank_blockers(("l2", 1.5)))
    # a transfer whose points fooled its surrogate only where the model was fooled too: nothing fires
    agreeing = make_record(AT, "transfer", "l2", 1.5, robust,
                           columns={"surrogate_fooled": [False] * 60 + [True] * 40})
    m = assess(result_set([agreeing, pgd], [AT]))[AT["model_id"]]
    w5 = next(f for f in m.diagnosis.strength if f.rule == "W5")
    assert w5.evaluated and not w5.fired


def test_the_harness_predicts_transfer_points_on_the_surrogate_it_provided(digits, digits_models):
    """run_attack judges every transfer point on the surrogate the harness loaded (the adapter gets a
    copy): a vanilla surrogate is fooled by its own PGD points on nearly every example."""
    from bench.core.specs import Budget
    from bench.execute.evaluate import run_attack
    from bench.plugins.attacks.transfer import Transfer

    vanilla = digits_models["vanilla"]
    x, y = digits.x_test[:60], digits.y_test[:60]
    attack = Transfer(Transfer.Config(steps=10))
    out = run_attack(vanilla, attack, x, y, Budget("linf", 0.3), num_classes=10, seed=0, device=CPU, quiet=True,
                     surrogate=vanilla)
    fooled = out.per_example["surrogate_fooled"]
    assert attack.surrogate_model is not vanilla  # the adapter crafted on a copy
    assert fooled.sum() >= 0.9 * out.per_example["clean_correct"].sum()
    assert out.metrics["surrogate_fooled"] == int(fooled.sum())


class InputNoise(torch.nn.Module):
    """A randomized defense: Gaussian noise on the input in every forward, eval mode included."""

    def __init__(self, model, sigma):
        super().__init__()
        self.model, self.sigma = model, sigma

    def forward(self, x):
        return self.model((x + self.sigma * torch.randn_like(x)).clamp(0, 1))


class Quantized(torch.nn.Module):
    """A deterministic shattered surface: inputs rounded to `levels` grey levels."""

    def __init__(self, model, levels):
        super().__init__()
        self.model, self.levels = model, levels

    def forward(self, x):
        return self.model(torch.round(x * (self.levels - 1)) / (self.levels - 1))


def test_loss_instability_is_small_on_smooth_models_and_saturates_on_random_or_shattered_ones(digits, digits_models):
    """Pintor et al. 2022's unstable-predictions metric (the probes' loss_instability): measured
    undefended and distilled models stay far below W6's threshold; noise in the forward and a
    quantized input exceed its threshold."""
    from bench.assess.indicators import INSTABILITY_THRESHOLD
    from bench.execute.probes import loss_instability

    x, y = digits.x_test[:100], digits.y_test[:100]
    for name in ("vanilla", "student"):
        assert loss_instability(digits_models[name].eval(), x, y) < 0.6 * INSTABILITY_THRESHOLD, name
    torch.manual_seed(0)
    assert loss_instability(InputNoise(digits_models["vanilla"], 0.05).eval(), x, y) > INSTABILITY_THRESHOLD
    # digits' pixels are multiples of 1/16: 4 levels put many of them on a rounding edge ±4/255 away
    assert loss_instability(Quantized(digits_models["vanilla"], 4).eval(), x, y) > INSTABILITY_THRESHOLD
    # 17 levels hold them all: the surface is flat within ±4/255 and nothing changes at all
    assert loss_instability(Quantized(digits_models["vanilla"], 17).eval(), x, y) == 0.0


class ScaledLogits(torch.nn.Module):
    """Logits multiplied by a constant: the predictions are the model's, the losses underflow to 0
    on confident inputs and reach hundreds a step past the boundary (a distilled model at T = 1)."""

    def __init__(self, model, scale):
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x):
        return self.model(x) * self.scale


def _margin(model, x, y):
    logits = model(x)
    return logits.gather(1, y[:, None])[:, 0] - logits.masked_fill(
        torch.nn.functional.one_hot(y, logits.shape[1]).bool(), -torch.inf).amax(1)


@torch.no_grad()
def test_loss_instability_is_capped_per_input_so_one_boundary_input_of_huge_logits_cannot_decide_it(
        digits, digits_models):
    """Logits × 1,000 (as a distilled model deployed at T = 1): the confident inputs' losses are 0,
    and one input close to the boundary (cross-entropy 0.01 there) changes its loss a
    thousandfold ±4/255 away. Capping only the mean (probes of version 4) read this model, whose
    predictions almost never change, as unstable as a randomized one; capped per input, that input
    counts for at most 1/n."""
    from bench.assess.indicators import INSTABILITY_THRESHOLD
    from bench.execute.probes import INSTABILITY_RADIUS, loss_instability

    plain = digits_models["vanilla"].eval()
    model = ScaledLogits(plain, 1000.0).eval()
    x, y = digits.x_test[:100].clone(), digits.y_test[:100]
    pred = plain(x).argmax(1)
    i = int(torch.nonzero(pred == y)[0])
    j = int(torch.nonzero(pred != pred[i])[0])
    lo, hi = 0.0, 1.0  # on the segment from input i towards input j: where the margin is 4.6e-3
    for _ in range(40):
        t = (lo + hi) / 2
        xt = x[i] + t * (x[j] - x[i])
        lo, hi = (t, hi) if _margin(plain, xt[None], y[i:i + 1]) > 4.6e-3 else (lo, t)
    x[i] = x[i] + lo * (x[j] - x[i])
    reference = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
    assert 1e-3 < reference[i] < 0.1
    scale = reference.abs().masked_fill(reference == 0, 1.0)
    gen = torch.Generator().manual_seed(0)
    per_input, flips = torch.zeros_like(reference), 0
    for _ in range(100):
        u = (torch.rand(x.shape, generator=gen) - 0.5) * INSTABILITY_RADIUS
        out = model((x + u).clamp(0, 1))
        per_input += (reference - torch.nn.functional.cross_entropy(out, y, reduction="none")).abs() / scale / 100
        flips += int((out.argmax(1) != model(x).argmax(1)).sum())
    assert per_input.mean() > 1  # the version-4 value: capped to 1.0, W6 would fire
    assert flips < 0.01 * 100 * len(y)  # yet its predictions change on under 1% of the draws
    value = loss_instability(model, x, y)
    assert value == pytest.approx(float(per_input.clamp(max=1).mean()), abs=1e-6)
    assert value < INSTABILITY_THRESHOLD / 10


def test_an_unstable_loss_prescribes_eot_and_square_and_is_answered_once_they_ran():
    """W6 fires from the probes on every threat model of the row and asks for the EOT attacks and
    Square with 3 restarts; once they ran the row is no longer held back by it. A stable model is
    evaluated and W6 stays quiet."""
    from bench.assess.assessment import assess

    robust = [True] * 60 + [False] * 40
    pgd = make_record(AT, "pgd-margin", "linf", 0.3, robust)
    unstable = probes(AT["model_id"], instability=0.93)
    m = assess(result_set([pgd], [AT], [unstable]))[AT["model_id"]]
    w6 = next(f for f in m.diagnosis.strength if f.rule == "W6")
    assert w6.fired and w6.evidence["linf 0.3"] == {"loss_instability": 0.93}
    blockers = [r for r in m.rank_blockers(("linf", 0.3)) if "W6" in r]
    assert blockers and "pgd-margin (eot_draws=20)" in blockers[0] and "square (restarts=3)" in blockers[0]

    remedies = [make_record(AT, "pgd-margin", "linf", 0.3, robust, attack_config={"eot_draws": 20}),
                make_record(AT, "apgd", "linf", 0.3, robust, attack_config={"component": "apgd-ce", "eot_iter": 20}),
                make_record(AT, "autoattack", "linf", 0.3, robust, attack_config={"version": "rand"}),
                make_record(AT, "square", "linf", 0.3, robust, attack_config={"restarts": 3})]
    m = assess(result_set([pgd] + remedies, [AT], [unstable]))[AT["model_id"]]
    assert not any("W6" in r for r in m.rank_blockers(("linf", 0.3)))

    m = assess(result_set([pgd], [AT], [probes(AT["model_id"], instability=0.03)]))[AT["model_id"]]
    w6 = next(f for f in m.diagnosis.strength if f.rule == "W6")
    assert w6.evaluated and not w6.fired
