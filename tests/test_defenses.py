"""Each defense's mechanism, shown on real digits: not merely that training runs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bench.plugins.attacks.pgd import PGD
from bench.execute.evaluate import run_attack
from bench.plan.nodes import plan_model
from bench.plugins.registry import DEFENSES
from bench.core.specs import Budget
from conftest import CPU, DIGITS_BUDGET, train

ROOT = Path(__file__).resolve().parents[1]
ALL = ["vanilla", "defensive-distillation", "ta-chain", "multi-step", "adversarial-training", "trades", "ard", "ltd",
       "certified-training"]


def test_every_defense_is_registered_with_documented_defaults():
    assert set(ALL) <= set(DEFENSES.names())
    for name in ALL:
        cfg_cls = DEFENSES.get(name).obj.Config
        assert cfg_cls.__doc__ and len(cfg_cls.__doc__) > 80, f"{name}: config defaults need their source"
        cfg_cls()  # every field has a default


def _agreement_and_kl(teacher, student, x, temperature):
    with torch.no_grad():
        p = F.softmax(teacher(x) / temperature, dim=1)
        log_q = F.log_softmax(student(x) / temperature, dim=1)
    kl = lambda pp: (pp * (pp.clamp_min(1e-30).log() - log_q)).sum(1).mean()
    shuffled = p[torch.randperm(len(p), generator=torch.Generator().manual_seed(0))]
    return (p.argmax(1) == log_q.argmax(1)).float().mean(), kl(p), kl(shuffled)


@pytest.mark.parametrize("kind", ["ta-chain", "multi-step"])
def test_chain_students_agree_with_their_teachers_soft_labels(kind, digits, digits_models):
    from defenses.multistep import MultiStepDistillation
    from defenses.ta_chain import TAChain

    # the link after the distilled student: TA chain's student / multi-step's second step
    cls = TAChain if kind == "ta-chain" else MultiStepDistillation
    extra = {"assistants": 0} if kind == "ta-chain" else {"steps": 2}
    teacher = digits_models["student"]
    student = train(cls, digits, "digits-cnn", {"teacher": teacher}, epochs=30, temperature=100.0, **extra)
    agreement, matched, shuffled = _agreement_and_kl(teacher, student, digits.x_test, 100.0)
    assert agreement > 0.9 and matched < 0.05 * shuffled, (agreement, matched, shuffled)


def _pgd_acc(model, digits):
    x, y = digits.eval_slice(200)
    return run_attack(model, PGD(), x, y, Budget("linf", DIGITS_BUDGET["eps"]), num_classes=10, seed=0,
                      device=CPU, quiet=True).metrics["robust_acc"]


@pytest.mark.parametrize("name", ["adversarial-training", "trades", "ard", "ltd"])
def test_robust_defenses_resist_pgd_at_their_training_budget(name, digits, digits_models, robust_digits_models):
    vanilla = _pgd_acc(digits_models["vanilla"], digits)
    robust = _pgd_acc(robust_digits_models[name], digits)
    assert vanilla < 0.1
    assert robust > vanilla + 0.2, (name, robust, vanilla)


def test_ard_student_is_attacked_during_training(digits, monkeypatch):
    """A spy on the inner maximization and the student's inputs: the ARD loss sees x_adv."""
    from defenses.ard import AdversariallyRobustDistillation
    from defenses.perturb import LinfPGD
    from defenses.vanilla import Vanilla

    teacher = train(Vanilla, digits, "digits-cnn", epochs=1)
    produced, seen = [], []
    original = LinfPGD.perturb

    def spy(self, model, x, loss_fn):
        x_adv = original(self, model, x, loss_fn)
        produced.append((x.clone(), x_adv.clone()))
        if not getattr(model, "_spied", False):
            model.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()) if mod.training else None)
            model._spied = True
        return x_adv

    monkeypatch.setattr(LinfPGD, "perturb", spy)
    train(AdversariallyRobustDistillation, digits, "digits-cnn", {"teacher": teacher}, epochs=1, **DIGITS_BUDGET)
    assert produced, "ARD never ran its inner maximization"
    x, x_adv = produced[-1]
    delta = (x_adv - x).abs().amax()
    assert 0.05 < delta <= DIGITS_BUDGET["eps"] + 1e-6
    assert any(s.shape == x_adv.shape and torch.equal(s, x_adv) for s in seen), "the student never saw x_adv"


def test_ltd_folds_student_temperature_into_the_model(digits, robust_digits_models):
    from defenses.ltd import LowTemperatureDistillation

    student = train(LowTemperatureDistillation, digits, "digits-cnn", {"teacher": robust_digits_models["trades"]},
                    epochs=2, student_temperature=4.0, **DIGITS_BUDGET)
    assert student.logit_scale.item() == pytest.approx(0.25)
    x = digits.x_test[:8]
    with torch.no_grad():
        raw = student.body((x - student.mean) / student.std)
        assert torch.allclose(student(x), raw / 4.0)


def test_all_defenses_share_upstream_nodes():
    nodes = {}
    roots = [plan_model(d, {}, arch="digits-cnn", dataset="digits", seed=0, epochs=2) for d in ALL]
    for root in roots:
        for node in root.walk():
            nodes[node.model_id] = node
    # vanilla, vanilla@T=100 (teacher of DD, of the chain's first link, of multi-step via DD), DD,
    # multi-step steps 2 and 3, ta-chain's assistant and student, adversarial-training, its larger
    # twin on digits-cnn-wide (ARD's teacher), trades (LTD's teacher), ard, ltd, certified-training
    assert len(nodes) == 13
    by_name = {r.defense: r for r in roots}
    dd_teacher = by_name["defensive-distillation"].upstream["teacher"].model_id
    chain_first = by_name["ta-chain"].upstream["teacher"].upstream["teacher"].model_id
    assert chain_first == dd_teacher
    assert by_name["multi-step"].upstream["teacher"].upstream["teacher"].model_id == by_name["defensive-distillation"].model_id
    ard_teacher = by_name["ard"].upstream["teacher"]
    assert (ard_teacher.defense, ard_teacher.arch) == ("adversarial-training", "digits-cnn-wide")  # larger than its student
    assert by_name["ltd"].upstream["teacher"].model_id == by_name["trades"].model_id


def test_explicit_budget_keeps_the_robust_teacher_shared():
    at = plan_model("adversarial-training", {"eps": "0.2"}, arch="digits-cnn-wide", dataset="digits", seed=0)
    ard = plan_model("ard", {"eps": "0.2"}, arch="digits-cnn", dataset="digits", seed=0)
    assert ard.upstream["teacher"].model_id == at.model_id


def test_ta_chain_with_decreasing_architectures():
    node = plan_model("ta-chain", {"chain": "resnet18,papernot-mnist,digits-cnn"}, arch="digits-cnn",
                      dataset="digits", seed=0)
    assistant = node.upstream["teacher"]
    assert (node.arch, assistant.arch, assistant.upstream["teacher"].arch) == ("digits-cnn", "papernot-mnist", "resnet18")
    assert assistant.upstream["teacher"].defense == "vanilla"


def test_run_all_trains_each_node_once(tmp_path, capsys):
    from bench.cli import main

    argv = ["run", "--defense", "all", "--attacks", "pgd", "--norm", "linf", "--dataset", "digits", "--epochs", "1",
            "--n-eval", "30", "--set", "pgd_steps=2", "--out", str(tmp_path)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    trained = [line.split()[-1] for line in captured.err.splitlines() if line.startswith("train ")]
    # the 12 nodes above, fast-at, rslad, iad, adaad and trades on digits-cnn-wide (the teacher of rslad and adaad)
    assert len(trained) == len(set(trained)) == 18
    assert len(list((tmp_path / "models").iterdir())) == 18
    for name in ALL:
        assert name in captured.out


def test_example_plugin_package_installs_and_runs_end_to_end(tmp_path):
    """The package under examples/ installed by pip, then trained and attacked through `bench`."""
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--target", str(site), str(ROOT / "examples" / "acme-defenses")],
                         capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    env = {**__import__("os").environ, "PYTHONPATH": str(site)}
    bench = [str(Path(sys.executable).parent / "bench")]
    listing = subprocess.run(bench + ["list", "defenses"], capture_output=True, text=True, env=env)
    assert "label-smoothing  [acme-defenses==0.1.0]" in listing.stdout, listing.stdout + listing.stderr
    run = subprocess.run(bench + ["run", "--defense", "label-smoothing", "--attacks", "pgd", "--norm", "linf",
                                  "--dataset", "digits", "--epochs", "2", "--n-eval", "30", "--quiet",
                                  "--out", str(tmp_path / "runs")], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert "label-smoothing" in run.stdout
    # the attack the plugin declares for its models ran in the adaptive stage, marked as such
    records = [__import__("json").loads(p.read_text()) for p in (tmp_path / "runs" / "records").glob("*/record.json")]
    declared = [r for r in records if r.get("adaptive")]
    assert [r["spec"]["attack"]["name"] for r in declared] == ["pgd-margin"]
    assert declared[0]["spec"]["attack"]["config"]["restarts"] == 3
    assert declared[0]["adaptive"]["rules"] == ["declared by label-smoothing"]
    archs = subprocess.run(bench + ["list", "archs"], capture_output=True, text=True, env=env)
    assert "acme-quantized-papernot-mnist" in archs.stdout, archs.stdout + archs.stderr
