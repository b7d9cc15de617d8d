from __future__ import annotations


from bench.cli import main
from bench.execute.probes import probe_model
from conftest import CPU


def test_probes_expose_the_mechanics_of_distillation(digits, digits_models):
    vanilla = probe_model(digits_models["vanilla"], digits.x_test, digits.y_test, CPU)
    distilled = probe_model(digits_models["student"], digits.x_test, digits.y_test, CPU)
    assert vanilla["zero_grad_share"] == 0.0 and vanilla["saturated_share"] < 0.2
    assert distilled["zero_grad_share"] > 0.5 and distilled["saturated_share"] > 0.5
    assert distilled["logit_l1_median"] > 20 * vanilla["logit_l1_median"]
    assert distilled["ce_grad_l1"]["median"] == 0.0 < vanilla["ce_grad_l1"]["median"]
    assert len(distilled["ce_grad_l1_per_example"]) == len(digits.y_test)
    # the DLR loss (AutoAttack's zero-gradient check) is scale invariant: distillation's saturation
    # zeroes the cross-entropy gradient, not the DLR one
    assert distilled["zero_dlr_grad_share"] < 0.1 < distilled["zero_grad_share"]
    assert vanilla["randomized_share"] == distilled["randomized_share"] == 0.0
    assert vanilla["grad_unavailable_share"] == vanilla["grad_nonfinite_share"] == 0.0


def test_budget_sweep_gives_a_security_curve_table_and_plot(tmp_path, capsys):
    argv = ["run", "--defense", "vanilla", "--attacks", "pgd,fgsm", "--norm", "linf", "--eps", "0.05,0.3",
            "--dataset", "digits", "--epochs", "5", "--n-eval", "40", "--quiet", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "### Security curve" in out and "ε = 0.05" in out and "ε = 0.3" in out
    # pgd and fgsm are not the minimum suite: the row is ranked at no budget, every worst case an upper bound
    curve = out.split("### Security curve", 1)[1].split("###", 1)[0]
    worst = next(line for line in curve.splitlines() if line.startswith("| vanilla · worst case"))
    assert worst.count("≤ ") == 2
    pgd = next(line for line in curve.splitlines() if line.startswith("| vanilla · pgd"))
    assert "≤" not in pgd  # one attack's accuracy is plainly that attack's
    assert "### Model probes" in out
    png = tmp_path / "curves-digits-linf.png"
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"


def test_a_model_that_gets_nothing_right_is_probed_and_its_probes_stored(digits, tmp_path):
    """No correct prediction: the mean confidence on correct inputs has no value (null, never NaN,
    which a spec refuses), and the probes are saved, verified and read back."""
    import torch
    from torch import nn

    from bench.store.artifacts import Store
    from bench.store.records import Probes

    x, y = digits.x_test[:30], torch.zeros(30, dtype=torch.long)
    always_one = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), digits.num_classes))
    with torch.no_grad():
        always_one[1].weight.zero_()
        always_one[1].bias.copy_(torch.arange(digits.num_classes) == 1)
    probes = probe_model(always_one.eval(), x, y, CPU)
    assert probes["clean_acc"] == 0.0 and probes["confidence_correct"] is None
    store = Store(tmp_path / "store")
    store.save_probes("0123456789abcdef", {"probe_id": "0123456789abcdef", "model_id": "m" * 16, "dataset": "digits",
                                           **probes})
    back = Probes.from_json(store.load_probes("0123456789abcdef"))
    assert back.clean_acc == 0.0 and back.confidence_correct is None
