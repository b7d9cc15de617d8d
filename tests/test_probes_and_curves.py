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
    assert "### Model probes" in out
    png = tmp_path / "curves-digits-linf.png"
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
