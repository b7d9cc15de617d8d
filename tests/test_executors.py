"""Plan, then execute: the same store from the local executor and from Ray; a node that raises is
retried, then reported while the others' results are kept; `--dry-run` prints the plan and writes
nothing; GPU code paths where a GPU exists."""
from __future__ import annotations

import sys

import pytest
import torch

from bench.plugins.attacks.base import Attack
from bench.plugins.registry import ATTACKS, Entry
from bench.store.artifacts import Store

from test_cli import bench

RUN = ["run", "--defense", "vanilla,defensive-distillation", "--attacks", "pgd,noise", "--norm", "linf",
       "--dataset", "digits", "--epochs", "2", "--n-eval", "30", "--no-adaptive", "--quiet"]


def _contents(out):
    store = Store(out)
    models = sorted(m["model_id"] for m in store.models())
    records = {r["record_id"]: (r["model_id"], r["spec"]["attack"]["name"], r["metrics"]["clean_acc"],
                                r["metrics"]["robust_acc"], r["metrics"]["unbounded_success_rate"])
               for r in store.records()}
    return models, records


def test_local_and_ray_executors_make_the_same_store(tmp_path):
    ray = pytest.importorskip("ray")
    assert bench(*RUN, "--out", tmp_path / "local") == 0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert bench(*RUN, "--out", tmp_path / "ray", "--executor", "ray") == 0
    finally:
        ray.shutdown()
    local, remote = _contents(tmp_path / "local"), _contents(tmp_path / "ray")
    assert len(local[0]) == 3 and len(local[1]) == 4
    assert local == remote


class Flaky(Attack):
    """Fails on its first `fails` calls (a lost worker, an out-of-memory), then returns the clean input."""
    name, norms, role = "flaky", frozenset({"linf"}), "black-box"
    fails = 2
    calls = 0

    def run(self, model, x, y, *, budget, num_classes, generator):
        type(self).calls += 1
        if type(self).calls <= self.fails:
            raise RuntimeError(f"transient failure {type(self).calls}")
        return x


@pytest.fixture()
def flaky(monkeypatch):
    ATTACKS.entries  # discover first
    monkeypatch.setitem(ATTACKS.entries, "flaky", Entry("flaky", Flaky, "tests"))
    Flaky.calls = 0
    return Flaky


def test_a_node_that_raises_is_retried(tmp_path, flaky, capsys):
    flaky.fails = 2
    assert bench(*RUN, "--attacks", "pgd,flaky", "--out", tmp_path / "runs", "--retries", "2") == 0
    assert flaky.calls == 2 + 2  # two failures, then one success on each of the two models


def test_a_node_that_keeps_failing_is_reported_and_the_others_are_kept(tmp_path, flaky, capsys):
    flaky.fails = 10**6
    code = bench(*RUN, "--attacks", "pgd,flaky", "--out", tmp_path / "runs", "--retries", "1")
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.count("failed after 2 attempt(s): attack flaky") == 2 and "Traceback" not in err
    models, records = _contents(tmp_path / "runs")
    assert len(models) == 3 and sorted(r[1] for r in records.values()) == ["pgd", "pgd"]
    assert flaky.calls == 4


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "runs"
    assert bench(*RUN, "--out", out, "--dry-run") == 0
    text = capsys.readouterr().out
    assert not out.exists()
    assert "plan: 9 node(s) (attack: 4 to run, 0 cached; probe: 2 to run, 0 cached; train: 3 to run, 0 cached)" in text
    assert bench(*RUN, "--out", out) == 0
    capsys.readouterr()
    assert bench(*RUN, "--attacks", "pgd,noise,fgsm", "--out", out, "--dry-run") == 0
    text = capsys.readouterr().out
    assert "attack: 2 to run, 4 cached" in text and "train: 0 to run, 3 cached" in text
    assert "estimated cost of the 2 node(s) to run" in text


def test_ray_missing_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    assert bench(*RUN, "--out", tmp_path / "runs", "--executor", "ray") == 2
    assert "--executor ray needs Ray: pip install 'distill-bench[ray]'" in capsys.readouterr().err


@pytest.mark.gpu
def test_training_and_attacks_on_the_gpu_match_the_cpu_within_noise(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    for device in ("cpu", "cuda"):
        assert bench(*RUN, "--out", tmp_path / device, "--device", device) == 0
    cpu, gpu = _contents(tmp_path / "cpu"), _contents(tmp_path / "cuda")
    assert cpu[0] == gpu[0]  # model ids do not depend on the device
    by_key = lambda recs: sorted((m, a, round(r, 1)) for m, a, c, r, u in recs.values())
    assert [(m, a) for m, a, _ in by_key(cpu[1])] == [(m, a) for m, a, _ in by_key(gpu[1])]
    assert all(abs(x[2] - y[2]) <= 0.2 for x, y in zip(by_key(cpu[1]), by_key(gpu[1])))


@pytest.mark.gpu
def test_auto_attack_batch_size_fills_the_gpu_and_is_500_on_the_cpu(digits):
    from bench.execute.devices import auto_attack_batch_size

    assert auto_attack_batch_size("digits-cnn", digits, torch.device("cpu")) == 500
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    size = auto_attack_batch_size("digits-cnn", digits, torch.device("cuda"))
    assert size >= 64 and size & (size - 1) == 0


def test_a_failed_node_never_leaves_another_models_adaptive_stage_unrun(tmp_path, flaky, capsys):
    """flaky fails on every model; defensive distillation is still flagged and still gets its adaptive
    attacks (before, one failed node skipped the adaptive stage of every model of the run)."""
    flaky.fails = 10**6
    argv = [a for a in RUN if a != "--no-adaptive"]
    code = bench(*argv, "--attacks", "pgd,flaky", "--out", tmp_path / "runs", "--retries", "0")
    err = capsys.readouterr().err
    assert code == 1 and "failed after 1 attempt(s): attack flaky" in err
    adaptive = [r for r in Store(tmp_path / "runs").records() if r.get("adaptive")]
    assert adaptive, "no adaptive record: the failure stopped every model's adaptive stage"
    assert all(r["spec"]["attack"]["name"] != "flaky" for r in adaptive)


class ExitingAttack(Attack):
    """A hostile or careless plugin that calls sys.exit(0) from inside its attack."""
    name, norms, role = "evil-exit", frozenset({"linf"}), "black-box"

    def run(self, model, x, y, *, budget, num_classes, generator):
        raise SystemExit(0)


def test_a_plugin_raising_system_exit_is_a_failed_node_not_a_silent_exit_0(tmp_path, monkeypatch, capsys):
    ATTACKS.entries
    monkeypatch.setitem(ATTACKS.entries, "evil-exit", Entry("evil-exit", ExitingAttack, "tests"))
    code = bench(*RUN, "--attacks", "evil-exit,pgd", "--out", tmp_path / "runs", "--retries", "0")
    err = capsys.readouterr().err
    assert code == 1 and "failed after 1 attempt(s): attack evil-exit" in err and "SystemExit" in err
    _, records = _contents(tmp_path / "runs")
    assert sorted(r[1] for r in records.values()) == ["pgd", "pgd"]  # PGD still ran on both models


def test_a_closed_pipe_ends_the_listing_quietly():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "list", "attacks"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before anything is written (as `| head -1` after one line)
    err = proc.stderr.read()
    assert proc.wait() == 0 and "BrokenPipeError" not in err and "Traceback" not in err, err


def test_an_empty_store_gets_an_estimate_for_every_node_from_the_cost_model(tmp_path, capsys):
    """The mission's command on a store that has seen nothing: every node estimated (passes × the
    model's measured seconds per pass, bench/plan/costs.py), each line saying where its estimate
    came from; after a run, nodes like those come from history."""
    out = tmp_path / "runs"
    assert bench("run", "--defense", "ta-chain", "--attacks", "all", "--dataset", "digits", "--out", out,
                 "--dry-run") == 0
    lines = capsys.readouterr().out.splitlines()
    nodes = [line for line in lines if line.startswith("run ")]
    assert len(nodes) >= 25 and not out.exists()
    assert all(line.split()[3] != "?" and line.split()[5] == "model" for line in nodes), nodes
    assert any(f"0 from similar nodes in the store, {len(nodes)} from the cost model" in line for line in lines)
    assert bench(*RUN, "--out", out) == 0
    capsys.readouterr()
    assert bench(*RUN, "--out", out, "--force", "--dry-run") == 0
    text = capsys.readouterr().out
    assert " history " in text


def test_history_estimates_keep_robust_models_and_binarization_tests_apart():
    """AutoAttack stops on broken examples: on vanilla it cost 0.2 s per example, on adversarial
    training 3.0 s (mnist-5k, one core). A robust model's estimate comes from robust models'
    records; a binarization test (one attack per sampled example) from binarization tests."""
    from types import SimpleNamespace as NS

    from bench.report.plan_text import _from_history, _history

    def model(mid, config):
        return {"model_id": mid, "defense": "d", "arch": "a", "dataset": "ds", "config": config, "provenance": {}}

    def record(mid, wall, n):
        return {"model_id": mid, "provenance": {"wall_seconds": wall}, "metrics": {"n": n},
                "spec": {"attack": {"name": "autoattack"}, "budget": {"norm": "linf"}, "arch": "a",
                         "dataset": {"name": "ds"}}}

    store = NS(models=lambda: [model("v", {"epochs": 5}), model("r", {"epochs": 5, "eps": 0.3})],
               records=lambda: [record("v", 200.0, 1000), record("r", 3000.0, 1000)],
               all_binarizations=lambda: [{"model_id": "v", "attack": "autoattack", "norm": "linf",
                                           "samples": 100, "wall_seconds": 280.0}])
    history = _history(store)

    def task(kind, config, n=1000, samples=100):
        attack = NS(name="autoattack", spec=NS(budget=NS(norm="linf"), n=n))
        return NS(kind=kind, node=NS(arch="a", dataset="ds", config=config), attack=attack, samples=samples)

    assert _from_history(task("attack", NS(epochs=5)), None, history) == pytest.approx(200.0)
    assert _from_history(task("attack", NS(epochs=5, eps=0.3)), None, history) == pytest.approx(3000.0)
    assert _from_history(task("binarize", NS(epochs=5)), None, history) == pytest.approx(280.0)
    assert _from_history(task("binarize", NS(epochs=5, eps=0.3)), None, history) is None  # the cost model's
