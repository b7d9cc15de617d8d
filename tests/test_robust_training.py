"""Robust training (issue 23): the validation split's curve stored with the model and drawn on its
page, early stopping on validation robust accuracy, the catastrophic-overfitting guard, fast AT's
FGSM-RS, fast ARD's free replays, RSLAD / IAD / AdaAD's losses, a teacher larger than its student,
and model cards."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from bench.plan.nodes import plan_model
from bench.plugins.training import Optim, TrainingCurve, Validation, fit
from bench.plugins.validation import ValidationAttack
from conftest import CPU, DIGITS_BUDGET, train
from defenses.base import TrainContext

EPS = 0.1


def _ce(m, x, y):
    logits = m(x)
    return F.cross_entropy(logits, y), logits


def test_early_stopping_returns_the_epoch_of_highest_validation_robust_accuracy(digits):
    from bench.plugins.archs import create_model

    torch.manual_seed(0)
    model = create_model("digits-cnn", digits)
    attack = ValidationAttack("linf", EPS, iterations=10)
    validation = Validation(digits.x_val, digits.y_val, 10, attack, every=1)
    curve = TrainingCurve(len(digits.y_val), attack.describe())
    fit(model, digits.x_train, digits.y_train, _ce, Optim(epochs=6, lr=3e-3, optimizer="adam"), device=CPU, seed=0,
        quiet=True, validation=validation, curve=curve)
    robust = {e["epoch"]: e["val_robust_acc"] for e in curve.epochs}
    assert len(robust) == 6 and all(0 <= v <= 1 for v in robust.values())
    assert curve.selected_epoch == max(robust, key=lambda k: (robust[k], -k))
    # the weights returned are that epoch's: re-measured with the same seed they give its number
    again = attack.robust_correct(model, digits.x_val, digits.y_val, seed=curve.selected_epoch - 1, num_classes=10)
    assert float(again.float().mean()) == pytest.approx(robust[curve.selected_epoch])
    assert all(e["val_clean_acc"] >= e["val_robust_acc"] for e in curve.epochs)


def test_the_guard_stops_a_training_whose_validation_robustness_collapses_and_keeps_the_best_epoch(digits):
    """Epoch 1 learns; from epoch 2 the loss drives every logit to zero (a constant prediction):
    robust accuracy collapses, the guard stops at once and the epoch-1 weights come back."""
    from bench.plugins.archs import create_model

    torch.manual_seed(0)
    model = create_model("digits-cnn", digits)
    calls = [0]
    steps_per_epoch = -(-len(digits.y_train) // 64)

    def collapsing(m, x, y):
        calls[0] += 1
        logits = m(x)
        if calls[0] <= 2 * steps_per_epoch:
            return F.cross_entropy(logits, y), logits
        return 1e3 * logits.pow(2).mean(), logits

    validation = Validation(digits.x_val, digits.y_val, 10, ValidationAttack("linf", 0.05, iterations=5), every=1,
                            stop_drop=0.2)
    curve = TrainingCurve(len(digits.y_val), "apgd")
    fit(model, digits.x_train, digits.y_train, collapsing, Optim(epochs=8, lr=3e-3, optimizer="adam", batch_size=64),
        device=CPU, seed=0, quiet=True, validation=validation, curve=curve)
    assert curve.stopped_early and "catastrophic overfitting" in curve.stopped_early
    assert len(curve.epochs) < 8 and curve.selected_epoch <= 2
    with torch.no_grad():
        accuracy = (model(digits.x_val).argmax(1) == digits.y_val).float().mean()
    assert accuracy > 0.5  # the collapsed weights were not returned


def test_fgsm_with_a_random_start_stays_in_the_ball_and_raises_the_loss(digits_models, digits):
    from defenses.fast_at import fgsm_rs

    model = digits_models["vanilla"]
    x, y = digits.x_test[:64], digits.y_test[:64]
    torch.manual_seed(0)
    x_adv = fgsm_rs(model, x, y, EPS, 1.25 * EPS)
    assert (x_adv - x).abs().max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        noise = (x + torch.empty_like(x).uniform_(-EPS, EPS)).clamp(0, 1)
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(noise), y)


def test_fast_at_trains_with_its_guard_and_stores_its_curve(digits, tmp_path):
    from bench.execute.runner import Runner
    from bench.store.artifacts import Store

    node = plan_model("fast-at", {"eps": str(EPS)}, arch="digits-cnn", dataset="digits", seed=0, epochs=3)
    store = Store(tmp_path / "runs")
    Runner(store, digits, CPU, quiet=True, log=lambda m: None).model(node)
    spec = store.model_spec(node.model_id)
    curve, = spec["training_curves"]
    assert [e["epoch"] for e in curve["epochs"]] == [1, 2, 3]
    assert all(e["val_robust_acc"] is not None for e in curve["epochs"])  # every epoch: the guard watches
    assert "APGD-CE then APGD-T" in curve["attack"] and curve["validation_n"] == len(digits.y_val)


def test_the_curve_is_inside_the_models_hash(digits, tmp_path):
    from bench.execute.runner import Runner
    from bench.store.artifacts import Store

    node = plan_model("adversarial-training", {k: str(v) for k, v in DIGITS_BUDGET.items()}, arch="digits-cnn",
                      dataset="digits", seed=0, epochs=2)
    store = Store(tmp_path / "runs")
    Runner(store, digits, CPU, quiet=True, log=lambda m: None).model(node)
    path = tmp_path / "runs" / "models" / node.model_id / "spec.json"
    spec = json.loads(path.read_text())
    assert spec["training_curves"][0]["selection"].startswith("highest validation robust accuracy")
    spec["training_curves"][0]["epochs"][0]["val_robust_acc"] = 0.99
    path.write_text(json.dumps(spec))
    with pytest.raises(Exception, match="(?i)corrupt|hash|integrity|differ"):
        Store(tmp_path / "runs").model_spec(node.model_id)


def test_fast_ard_replays_every_batch(digits):
    """Free adversarial training: each batch is given to the loss `replays` times (an optimizer step each)."""
    from defenses.ard import AdversariallyRobustDistillation as ARD
    from defenses.vanilla import Vanilla

    teacher = train(Vanilla, digits, "digits-cnn", epochs=1)
    deltas = []
    ctx = TrainContext(digits, "digits-cnn", CPU, 0, quiet=True)
    original = ctx.fit

    def fit_recording(model, loss_fn, optim, extra=None, **kw):
        def loss(m, x, y):
            out = loss_fn(m, x, y)
            deltas.append(None)
            return out
        return original(model, loss, optim, extra, **kw)

    ctx.fit = fit_recording
    ARD().train(ARD.Config(epochs=1, inner="free", replays=2, eps=EPS, early_stopping=False), ctx, {"teacher": teacher})
    batches = -(-len(digits.y_train) // 128)
    assert len(deltas) == 2 * batches  # every batch replayed twice


def test_rslad_and_adaad_learn_from_the_teacher_alone_never_from_the_labels(digits):
    """With α = 1 (their defaults) neither loss reads y: shuffled labels train the same weights."""
    from defenses.adaad import AdaptiveAdversarialDistillation
    from defenses.rslad import RSLAD
    from defenses.vanilla import Vanilla

    teacher = train(Vanilla, digits, "digits-cnn", epochs=1)
    shuffled = dataclasses.replace(digits, y_train=digits.y_train[torch.randperm(len(digits.y_train),
                                                                          generator=torch.Generator().manual_seed(1))])
    for cls, extra in ((RSLAD, {"adv_weight": 5 / 6}), (AdaptiveAdversarialDistillation, {})):
        cfg = dict(epochs=1, eps=EPS, pgd_steps=2, pgd_step_size=0.05, early_stopping=False, **extra)
        a = train(cls, digits, "digits-cnn", {"teacher": teacher}, **cfg)
        b = train(cls, shuffled, "digits-cnn", {"teacher": teacher}, **cfg)
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values())), cls.name
    # and CE-trained adversarial training does read them
    from defenses.adversarial_training import AdversarialTraining

    cfg = dict(epochs=1, eps=EPS, pgd_steps=2, pgd_step_size=0.05, early_stopping=False)
    a, b = train(AdversarialTraining, digits, "digits-cnn", **cfg), train(AdversarialTraining, shuffled, "digits-cnn", **cfg)
    assert not all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_rslad_inner_maximisation_raises_the_kl_to_the_teachers_clean_soft_labels(digits_models, digits):
    from defenses.perturb import LinfPGD
    from defenses.rslad import kl_to_teacher

    student, teacher = digits_models["vanilla"], digits_models["teacher"]
    x = digits.x_test[:64]
    with torch.no_grad():
        probs = F.softmax(teacher(x), 1)
    torch.manual_seed(0)
    x_adv = LinfPGD(EPS, 10, 0.02, "normal").perturb(student, x, lambda logits: kl_to_teacher(logits, probs))
    with torch.no_grad():
        assert kl_to_teacher(student(x_adv), probs) > 2 * kl_to_teacher(student(x), probs)


def test_adaad_queries_the_teacher_at_the_adversarial_point(digits_models, digits):
    from defenses.adaad import kl_teacher_student
    from defenses.perturb import LinfPGD

    student, teacher = digits_models["vanilla"], digits_models["student"]
    x = digits.x_test[:64]
    torch.manual_seed(0)
    x_adv = LinfPGD(EPS, 10, 0.02, "normal").perturb(student, x, lambda xa: kl_teacher_student(teacher(xa), student(xa)),
                                                     of_input=True)
    with torch.no_grad():
        at_adv = kl_teacher_student(teacher(x_adv), student(x_adv))
        teacher_fixed_at_x = kl_teacher_student(teacher(x), student(x_adv))
        assert at_adv > kl_teacher_student(teacher(x), student(x))
    assert not torch.isclose(at_adv, teacher_fixed_at_x)  # the teacher's answer at x′ is what is matched


def test_iad_trusts_the_teacher_where_it_is_confidently_right_and_introspects_where_it_is_not():
    from defenses.iad import introspection_weight

    y = torch.tensor([0, 0])
    logits = torch.tensor([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])  # right and confident; confidently wrong
    w = introspection_weight(logits, y, beta=0.1)
    assert w[0] < 0.01 and w[1] > 0.6


def test_iad_introspection_starts_after_its_warm_up(digits):
    """Before the warm-up IAD is ARD at T = 1: the same weights as its own loss without the second term."""
    from defenses.iad import IntrospectiveAdversarialDistillation as IAD
    from defenses.vanilla import Vanilla

    teacher = train(Vanilla, digits, "digits-cnn", epochs=1)
    cfg = dict(epochs=2, eps=EPS, pgd_steps=2, pgd_step_size=0.05, early_stopping=False)
    never = train(IAD, digits, "digits-cnn", {"teacher": teacher}, warmup=1.0, **cfg)
    halfway = train(IAD, digits, "digits-cnn", {"teacher": teacher}, warmup=0.5, **cfg)
    assert not all(torch.equal(p, q) for p, q in zip(never.state_dict().values(), halfway.state_dict().values()))


@pytest.mark.parametrize("defense", ["ard", "rslad", "iad", "adaad"])
def test_robust_distillation_teachers_are_larger_than_their_students(defense):
    node = plan_model(defense, {}, arch="papernot-mnist", dataset="mnist-5k", seed=0)
    teacher = node.upstream["teacher"]
    assert teacher.arch == "papernot-mnist-wide" and node.arch == "papernot-mnist"
    from bench.plugins.archs import create_model
    from bench.plugins.datasets import load_dataset

    ds = load_dataset("digits")
    size = lambda arch: sum(p.numel() for p in create_model(arch, ds).parameters())
    assert size("digits-cnn-wide") > 2 * size("digits-cnn")
    same = plan_model(defense, {"teacher_arch": "papernot-mnist"}, arch="papernot-mnist", dataset="mnist-5k", seed=0)
    assert same.upstream["teacher"].arch == "papernot-mnist"  # self-distillation stays a configuration


def test_the_reference_codes_dropout_network_has_dropout_after_the_first_dense_layer_only(mnist5k):
    from bench.plugins.archs import create_model

    body = create_model("papernot-mnist-dropout", mnist5k).body
    dropouts = [m.p for m in body if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.5, 0.0]
    kinds = [type(m).__name__ for m in body]
    assert kinds[kinds.index("Linear") + 2] == "Dropout"


def test_every_robust_defense_has_a_card_with_the_papers_number_and_its_departures():
    from bench.plugins.registry import DEFENSES

    for name in ("adversarial-training", "trades", "ard", "ltd", "fast-at", "rslad", "iad", "adaad"):
        card = DEFENSES.get(name).obj.card
        assert card is not None and card.paper and card.recipe, name
        assert any(any(ch.isdigit() for ch in v) for _, v in card.reported), name
        assert any("data" in d for d in card.departures), name


def test_model_pages_show_the_card_and_the_training_curve_and_the_json_carries_both(tmp_path):
    from bench.cli import main
    from bench.report.publish import build_pages

    out = tmp_path / "runs"
    assert main(["run", "--defense", "adversarial-training", "--dataset", "digits", "--epochs", "2", "--out", str(out),
                 "--set", "eps=0.2", "--set", "pgd_steps=5", "--set", "pgd_step_size=0.05", "--attacks", "pgd",
                 "--norm", "linf", "--eps", "0.2", "--n-eval", "20", "--no-adaptive", "--quiet",
                 "--leaderboard", str(tmp_path / "board.md")]) == 0
    from bench.store.artifacts import Store

    pages = build_pages(Store(out))
    page = next(v.decode() for k, v in pages.items() if k.startswith("models/") and k.endswith(".md"))
    assert "## Paper, recipe and departures" in page and "Madry" in page and "89.3%" in page
    assert "## Training curve (validation split)" in page and "-training.png)" in page
    assert any(k.endswith("-training.png") and v[:4] == b"\x89PNG" for k, v in pages.items())
    board = json.loads(pages["leaderboard.json"])
    model = next(iter(board["models"].values()))
    assert model["card"]["reported"] and model["training_curves"][0]["epochs"][1]["epoch"] == 2


def test_rslad_and_adaad_start_their_inner_maximisation_where_their_config_says(digits, monkeypatch):
    """mnist-5k's measured default is a uniform start in the ε-ball; other datasets keep the
    reference code's x + 0.001·N(0, 1); an explicit inner_start wins; a wrong one is refused."""
    from bench.core.errors import BenchInputError
    from defenses.adaad import AdaptiveAdversarialDistillation
    from defenses.perturb import LinfPGD, inner_start
    from defenses.rslad import RSLAD
    from defenses.vanilla import Vanilla

    mnist5k = dataclasses.replace(digits, name="mnist-5k")
    for cls in (RSLAD, AdaptiveAdversarialDistillation):
        assert inner_start(cls.Config(), mnist5k) == "uniform"
        assert inner_start(cls.Config(), digits) == "normal"
        assert inner_start(cls.Config(inner_start="none"), mnist5k) == "none"
        with pytest.raises(BenchInputError, match="inner_start"):
            cls.Config(inner_start="gaussian")

    starts = []
    original = LinfPGD.perturb

    def recording(self, *args, **kwargs):
        starts.append(self.start)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LinfPGD, "perturb", recording)
    teacher = train(Vanilla, digits, "digits-cnn", epochs=1)
    for cls in (RSLAD, AdaptiveAdversarialDistillation):
        for dataset, start in ((digits, "normal"), (mnist5k, "uniform")):
            starts.clear()
            train(cls, dataset, "digits-cnn", {"teacher": teacher}, epochs=1, eps=EPS, pgd_steps=1,
                  pgd_step_size=0.05, early_stopping=False)
            assert starts and set(starts) == {start}, (cls.name, dataset.name)
