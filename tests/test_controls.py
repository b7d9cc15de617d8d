"""Controls for the adaptive evaluation, one per family of gradient masking, written as a
third-party plugin (tests/plugins/masking_controls.py) registered through entry points the way an
installed package registers them. Each runs `bench run --attacks all` end to end on real digits:
the run completes, the model gets its verdict, and the adaptive stage attacks it the way its
symptom calls for."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench.cli import main

PLUGINS = Path(__file__).parent / "plugins"
ENTRY_POINTS = """\
[distill_bench.archs]
binarized-digits-cnn = masking_controls:BINARIZED
noisy-digits-cnn = masking_controls:NOISY
shattered-digits-cnn = masking_controls:SHATTERED
roundtrip-digits-cnn = masking_controls:ROUNDTRIP
obfuscated-digits-cnn = masking_controls:OBFUSCATED
label-only-digits-cnn = masking_controls:LABEL_ONLY

[distill_bench.defenses]
gaussian-augmentation = masking_controls:GaussianAugmentation
"""


@pytest.fixture(scope="module")
def controls(tmp_path_factory):
    """Install the control plugins' metadata on sys.path (a dist-info folder, as pip leaves it)."""
    from bench.plugins.registry import ARCH_PLUGINS, ATTACKS, DEFENSES

    site = tmp_path_factory.mktemp("site")
    info = site / "masking_controls-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: masking-controls\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    sys.path[:0] = [str(site), str(PLUGINS)]
    for registry in (ARCH_PLUGINS, ATTACKS, DEFENSES):
        registry.reload()
    yield tmp_path_factory.mktemp("runs")
    sys.path.remove(str(site))
    sys.path.remove(str(PLUGINS))
    for registry in (ARCH_PLUGINS, ATTACKS, DEFENSES):
        registry.reload()


def _run(out: Path, defense: str, arch: str = "digits-cnn", n: int = 40) -> dict:
    board = out / f"{defense}-{arch}.md"
    argv = ["run", "--defense", defense, "--arch", arch, "--attacks", "all", "--norm", "linf", "--eps", "0.3",
            "--dataset", "digits", "--epochs", "30", "--n-eval", str(n), "--out", str(out), "--quiet",
            "--leaderboard", str(board), "--set", "square.n_queries=1000"]
    assert main(argv) == 0
    rows = json.loads(board.with_suffix(".json").read_text())["pages"][0]["tables"][0]["rows"]
    models = json.loads(board.with_suffix(".json").read_text())["models"]
    row = next(r for r in rows if r["arch"] == arch and r["defense"] == defense)
    return {**row, "model": models[row["model_ids"][0]]}


def _attack(row: dict, name: str) -> float:
    return row["attacks"][name]["value"]


@pytest.fixture(scope="module")
def undefended(controls):
    return _run(controls, "vanilla")


def test_binarized_input_is_flagged_and_bpda_breaks_it(controls, undefended):
    row = _run(controls, "vanilla", "binarized-digits-cnn")
    assert "R10" in row["rules_fired"], row["verdict"]
    assert row["attacks"]["pgd"]["value"] >= row["clean"]["value"] - 0.05  # PGD found no gradient to follow
    assert "bpda" in row["adaptive_attacks"] and row["adapted"]
    assert _attack(row, "bpda") <= _attack(row, "pgd") - 0.3  # BPDA through the declared identity works
    assert row["robust"]["value"] <= row["robust_before_adaptation"]["value"]


def test_noise_at_inference_is_flagged_as_randomized_and_eot_is_at_least_as_strong(controls):
    row = _run(controls, "vanilla", "noisy-digits-cnn")
    assert "R9" in row["rules_fired"], row["verdict"]
    eot = [k for k in row["attacks"] if k.startswith("pgd-margin")]
    assert row["adapted"] and any("R9" == f["rule"] and f["fired"] for f in row["model"]["findings"])
    # EOT-PGD (margin, 20 draws) against plain PGD-margin: at least as strong (both in the merged number)
    assert row["attacks"]["pgd-margin"]["value"] <= _attack(row, "pgd") + 0.05 and eot


def test_noisy_backward_is_flagged_and_its_worst_case_is_the_undefended_models(controls, undefended):
    row = _run(controls, "vanilla", "shattered-digits-cnn")
    assert row["rules_fired"], row["verdict"]
    assert _attack(row, "transfer") <= 0.25  # the surrogate is the plain base architecture's vanilla model
    assert row["robust"]["value"] <= undefended["robust"]["value"] + 0.15


def test_training_noise_only_is_not_flagged(controls):
    row = _run(controls, "gaussian-augmentation")
    assert row["rules_fired"] == [] and len(row["rules_evaluated"]) >= 6, row["verdict"]


@pytest.mark.parametrize("arch", ["roundtrip-digits-cnn", "obfuscated-digits-cnn", "label-only-digits-cnn"])
def test_a_plugin_architecture_without_base_is_attacked_from_an_undefended_model(controls, undefended, arch):
    """The plugin declares no `base`: the transfer surrogate (and R7's reference) is the dataset's
    default architecture, undefended — never vanilla trained on the defended forward, which would
    inherit it (the transfer node failed on the round trip; transfer was useless on the obfuscated
    gradient). The run completes, the model gets a verdict, and its worst case is within the
    undefended model's reach."""
    board = controls / f"nobase-{arch}.md"
    argv = ["run", "--defense", "vanilla", "--arch", arch, "--attacks", "pgd,transfer,square", "--norm", "linf",
            "--eps", "0.3", "--dataset", "digits", "--epochs", "30", "--n-eval", "40", "--out", str(controls),
            "--quiet", "--leaderboard", str(board), "--set", "square.n_queries=300"]
    assert main(argv) == 0
    data = json.loads(board.with_suffix(".json").read_text())
    row = next(r for r in data["pages"][0]["tables"][0]["rows"] if r["arch"] == arch)
    if arch != "obfuscated-digits-cnn":  # a noisy backward at ε 0.3 on digits still lets PGD through: no flag needed
        assert row["rules_fired"], row["verdict"]  # no input gradient: diagnosed (R10)
    assert _attack(row, "transfer") <= undefended["robust"]["value"] + 0.25
    assert row["robust"]["value"] <= undefended["robust"]["value"] + 0.25
    model = data["models"][row["model_ids"][0]]
    assert model["reference_model_id"] == undefended["model_ids"][0]  # R7 compares with the undefended model
    if arch == "label-only-digits-cnn":  # scores carry no information: the decision-based attack ran and breaks it
        assert "hsj" in row["adaptive_attacks"]
        assert _attack(row, "hsj") <= row["clean"]["value"] - 0.3
